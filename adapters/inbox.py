"""Pull delivery, the national document axis style: the recipient lists its inbox and acknowledges.

No worker delivers: the route is in the recipient's inbox from the moment the document is stored,
and the acknowledgement (``POST /v1/inbox/{id}/ack``) is the receipt.  Redelivery is idempotent by
construction: there is one route row per (document, recipient).
"""

from __future__ import annotations

from adapters.base import Adapter, Delivery, DeliveryResult


class InboxAdapter(Adapter):
    name = "inbox"
    pull = True

    def deliver(self, delivery: Delivery) -> DeliveryResult:
        return DeliveryResult("awaiting-pull", f"available in {delivery.recipient}'s inbox")
