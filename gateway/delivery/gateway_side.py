"""What push adapters ask of the gateway: a token to present, and a check of the receiver's receipt."""

from __future__ import annotations

import hashlib

from adapters import Delivery
from gateway.identity.access_tokens import TokenAuthority
from gateway.identity.claims import decode_verified, peek
from gateway.policy import Refusal
from gateway.trust.pki import PublicKey

RECEIPT_TYPE = "receipt+jwt"


class GatewayCredentials:
    """Implements :class:`adapters.GatewaySide` for one recipient, whose registered client key signs receipts."""

    def __init__(self, tokens: TokenAuthority, recipient_key: PublicKey | None) -> None:
        self._tokens = tokens
        self._recipient_key = recipient_key

    def bearer_token(self, audience: str, delivery: Delivery) -> str:
        return self._tokens.delivery_token(
            audience, delivery.recipient, delivery.document_uuid, hashlib.sha256(delivery.content).hexdigest()
        )

    def verify_receipt(self, receipt: bytes, delivery: Delivery) -> None:
        """A compact JWS (``typ`` ``receipt+jwt``) by the recipient's client key naming this document and its hash."""
        if self._recipient_key is None:
            raise ValueError(f"{delivery.recipient} has no client key registered: it cannot sign receipts")
        try:
            token = receipt.decode("ascii")
            header = peek(token, "receipt-invalid").header
            if header.get("typ") != RECEIPT_TYPE:
                raise ValueError(f"typ must be {RECEIPT_TYPE}")
            claims = decode_verified(
                token,
                self._recipient_key,
                str(header.get("alg")),
                code="receipt-invalid",
                issuer=delivery.recipient,
                required=("iss", "iat", "document_id", "sha256"),
                leeway=300,
            )
        except UnicodeDecodeError:
            raise ValueError("not a compact JWS") from None
        except Refusal as refusal:
            raise ValueError(refusal.reason) from None
        if claims["document_id"] != delivery.document_uuid:
            raise ValueError("the receipt is for another document")
        if claims["sha256"] != hashlib.sha256(delivery.content).hexdigest():
            raise ValueError("the receipt names other document bytes")
