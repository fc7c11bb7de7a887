"""The composition root: builds every service of one deployment from its configuration, once.

The Flask app keeps one :class:`Services` in ``app.extensions``; blueprints and CLI commands get
it through :func:`services`, never through module-level globals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from flask import current_app

from adapters import Deployment
from gateway.audit import AuditBatch, AuditLog
from gateway.audit.checkpoints import CheckpointLog, SignedCheckpoint
from gateway.audit.origin import pin_audit_origin
from gateway.audit.published import PublishedCheckpoint
from gateway.audit.refusals import UnauthenticatedRefusals
from gateway.audit.statistics import StatisticsCache
from gateway.audit.witness_policy import WitnessPolicy
from gateway.audit.witnessing import WitnessEndpoint, WitnessPublisher
from gateway.citizen.catalog import load_catalog
from gateway.citizen.service import DossierService
from gateway.config import Config
from gateway.delivery.breaker import CircuitBreakers
from gateway.delivery.queue import DeliveryQueue
from gateway.delivery.wakeup import PollingWakeup, RedisWakeup, Wakeup
from gateway.delivery.worker import AdapterCache, DeliveryWorker
from gateway.documents import edxml
from gateway.documents.verification import EnvelopedSignatureVerifier, SignatureProfile
from gateway.documents.xmlsafe import XmlLimits
from gateway.identity.access_tokens import TokenAuthority
from gateway.identity.client_auth import ClientAssertionVerifier
from gateway.identity.dev_idp import DevIdpSettings
from gateway.identity.issuers import issuers_from_config
from gateway.identity.jwks import StaticKeySource
from gateway.identity.jws import JwkSet
from gateway.identity.national_id import IssuerPolicy, NationalIdVerifier
from gateway.identity.state import ProcessRateLimiter, RateLimiter, RedisStateStore, SqlStateStore, StateStore
from gateway.identity.workbench_sessions import WorkbenchSessions
from gateway.keyring import KeyRing
from gateway.keys import DevStatusUrls, GatewayKeys, load_development_ca
from gateway.policy import Refusal
from gateway.routing.registry import AgencyRegistry
from gateway.routing.registry_cache import RegistryCache
from gateway.routing.submission import SubmissionService
from gateway.store.db import Database
from gateway.trust.chain import issuer_among
from gateway.trust.dev_pki import DevRevocations
from gateway.trust.dev_tsa import DevTsa
from gateway.trust.pki import Issued, PublicKey, fingerprint, load_certificates, load_private_key, load_public_key
from gateway.trust.revocation import RevocationChecker, RevocationSettings
from gateway.trust.timestamper import Timestamper
from gateway.trust.timestamps import Timestamp
from gateway.vxp.credentials import VxpCredentials

DEMO_PORTAL = ("000.00.99.H29", "Cổng Dịch vụ công Thành phố Hồ Chí Minh (demo)")
EDXML_SIGNATURE_PARENT = f"{edxml.q('edXMLEnvelope')}/{edxml.q('edXMLHeader')}"


@dataclass
class Services:
    config: Config
    db: Database
    audit: AuditLog
    registry: AgencyRegistry  # changes to the registry, and what operators look at
    agencies: RegistryCache  # what the request path reads: cached, at most a second behind any change
    keys: GatewayKeys  # as loaded at start: what does not rotate (trust anchors, pepper, portal key)
    ring: KeyRing  # what rotates (token, seal and checkpoint keys), re-read within a second of a rotation
    tokens: TokenAuthority
    state: StateStore
    # Per-minute limits (agencies' submissions, unauthenticated requests per address): Redis when
    # shared, else this process.
    submission_limiter: RateLimiter
    refusals: UnauthenticatedRefusals  # counted here, audited as periodic summaries
    client_auth: ClientAssertionVerifier
    submissions: SubmissionService
    national_id: NationalIdVerifier
    dossiers: DossierService
    dev_idp: DevIdpSettings | None
    checkpoints: CheckpointLog
    witnesses: WitnessPublisher
    witness_policy: WitnessPolicy | None  # what the workbench requires of a checkpoint's cosignatures
    vxp_credentials: VxpCredentials  # departmental systems built on the national SDK (issue 14)
    deliveries: DeliveryQueue
    revocation: RevocationChecker
    timestamper: Timestamper
    sessions: WorkbenchSessions
    statistics: StatisticsCache
    dev_pki: DevPki | None = None

    def background_tick(self) -> None:
        """What every server process does about once a second besides answering requests."""
        try:
            self.ring.refresh()
        except Exception:  # a half-written key file is retried next second; the old keys keep working
            logging.getLogger(__name__).exception("reloading the gateway's keys failed")
        if self.checkpoints.signs:  # else `gateway audit signer` signs and publishes (issue 13)
            self.checkpoints.refresh_quietly()
            self.witnesses.publish_quietly()
        self.refusals.flush_quietly(self.db, self.audit)
        self.timestamper.run_quietly()
        try:
            self.revocation.refresh_due()
        except Exception:  # never let the tick thread die; the request path still checks by itself
            logging.getLogger(__name__).exception("revocation refresh failed")

    def witnessed_checkpoint(self) -> SignedCheckpoint:
        """A checkpoint covering every entry written so far, shown to the witnesses before anything
        built on it (a receipt, an export, an evidence package) is handed out: a receipt taken right
        after a document was sent then meets a policy's quorum instead of failing it (issue 13)."""
        signed = self.checkpoints.refresh(force=True)
        self.witnesses.cosign_now()
        return signed

    def delivery_worker(self, **options: Any) -> DeliveryWorker:
        options.setdefault(
            "breakers",
            CircuitBreakers(self.config.delivery_breaker_threshold, self.config.delivery_breaker_cooldown_seconds),
        )
        return DeliveryWorker(self.db, self.deliveries, self.adapters(), **options)

    def adapters(self) -> AdapterCache:
        return AdapterCache(self.db, self.tokens, adapter_deployment(self.config))

    @classmethod
    def build(cls, config: Config) -> Services:
        db = Database(config.database_url)
        config = pin_audit_origin(config, db)  # before the key ring names its checkpoint signers
        audit = AuditLog()
        db.group_commit.add_hook(AuditBatch)  # one sequencer acquisition per batch of grouped writes
        registry = AgencyRegistry(audit, adapter_deployment(config))
        agencies = RegistryCache(db, registry)
        ring = KeyRing(config)
        keys = ring.keys
        state: StateStore = RedisStateStore(config.redis_url) if config.redis_url else SqlStateStore(db)
        wakeup: Wakeup = RedisWakeup(config.redis_url) if config.redis_url else PollingWakeup()
        deliveries = DeliveryQueue(
            db,
            audit,
            wakeup,
            lease_seconds=config.delivery_lease_seconds,
            receipt_poll_seconds=config.delivery_receipt_poll_seconds,
        )

        def client_key(code: str) -> list[PublicKey]:
            agency = agencies.agency(code)
            if agency is None or not agency.enabled:
                return []
            return [load_public_key(pem) for pem in agency.client_keys(datetime.now(UTC))]

        dev_pki = DevPki.load(config) if config.demo else None
        revocation = RevocationChecker(
            RevocationSettings(
                freshness_seconds=config.revocation_freshness_seconds,
                refresh_seconds=config.revocation_refresh_seconds,
                unknown_policy="flag" if config.revocation_unknown == "flag" else "refuse",
                timeout=float(config.revocation_timeout_seconds),
                ocsp_responders=dict(config.ocsp_responders),
                crl_urls=dict(config.crl_urls),
                fallback_ocsp={fingerprint(dev_pki.ca.cert): DevStatusUrls(config.public_url).ocsp} if dev_pki else {},
                fallback_crl={fingerprint(dev_pki.ca.cert): DevStatusUrls(config.public_url).crl} if dev_pki else {},
            ),
            # Demo mode: `gateway keys revoke` is seen by the next verification, not after the refresh.
            generation=dev_pki.revocations_version if dev_pki is not None else None,
        )

        def check_tsa(stamp: Timestamp) -> None:
            """The TSA's certificate must not be revoked either: asked of its issuer, anchor or subordinate."""
            issuer = issuer_among(stamp.tsa_certificate, [*keys.trust.anchors, *stamp.certificates])
            if issuer is None:
                raise Refusal("timestamp-untrusted", "the TSA certificate's issuer is not in the token or the anchors")
            revocation.check(stamp.tsa_certificate, issuer)

        timestamper = Timestamper(
            db,
            audit=audit,
            url=config.effective_tsa_url,
            anchors=keys.trust.anchors,
            failure_seconds=config.timestamp_failure_seconds,
            check_tsa=check_tsa,
        )
        verifier = EnvelopedSignatureVerifier(
            keys.trust,
            SignatureProfile.for_deployment(config.allow_rsa_sha1),
            EDXML_SIGNATURE_PARENT,
            revocation=revocation,
        )
        submissions = SubmissionService(
            db=db,
            audit=audit,
            registry=registry,
            agencies=agencies,
            ring=ring,
            verifier=verifier,
            limits=XmlLimits(max_bytes=config.max_document_bytes),
            gateway_url=config.public_url,
            deliveries=deliveries,
            timestamper=timestamper,
        )
        dev_idp = None
        issuers = issuers_from_config(config.issuers)
        if config.demo:
            idp_key = load_private_key(config.dev_idp_key_path)
            if not isinstance(idp_key, rsa.RSAPrivateKey):
                raise ValueError(f"{config.dev_idp_key_path}: the development identity provider signs with RSA")
            dev_idp = DevIdpSettings(
                config.dev_idp_issuer, idp_key, config.citizen_audience, state, config.effective_dev_idp_clients
            )
            issuers.append(
                (
                    IssuerPolicy(issuer=config.dev_idp_issuer, audiences=(config.citizen_audience,)),
                    StaticKeySource(JwkSet.from_json(dev_idp.jwks())),
                )
            )
        portal = config.portal_agency or (DEMO_PORTAL[0] if config.demo else None)
        # The record of what was signed lives beside the key, with the signer: not in other processes.
        published = PublishedCheckpoint(config.published_checkpoints_dir, config.audit_origin)
        checkpoints = CheckpointLog(db, ring, published=published if config.signs_checkpoints else None)
        return cls(
            statistics=StatisticsCache(db),
            sessions=WorkbenchSessions(
                db,
                absolute_seconds=config.workbench_session_seconds,
                idle_seconds=config.workbench_idle_seconds,
            ),
            config=config,
            db=db,
            audit=audit,
            registry=registry,
            agencies=agencies,
            keys=keys,
            ring=ring,
            tokens=TokenAuthority(ring, config.public_url.rstrip("/"), config.access_token_ttl),
            state=state,
            submission_limiter=state if config.redis_url else ProcessRateLimiter(),
            refusals=UnauthenticatedRefusals(interval_seconds=config.refusal_summary_seconds),
            client_auth=ClientAssertionVerifier(
                token_endpoint=config.token_endpoint,
                issuer_url=config.public_url.rstrip("/"),
                client_key=client_key,
                replay=state,
                max_lifetime=config.client_assertion_max_lifetime,
            ),
            submissions=submissions,
            national_id=NationalIdVerifier(issuers, state, keys.pepper),
            dossiers=DossierService(
                db=db,
                audit=audit,
                agencies=agencies,
                submissions=submissions,
                keys=keys,
                catalog=load_catalog(config.procedures_file, config.demo),
                portal=portal,
                max_bytes=config.max_document_bytes,
                limiter=state,
                per_hour=config.citizen_dossiers_per_hour,
            ),
            dev_idp=dev_idp,
            checkpoints=checkpoints,
            witnesses=WitnessPublisher(db, checkpoints, [WitnessEndpoint.parse(w) for w in config.witnesses]),
            witness_policy=WitnessPolicy.load(config.witness_policy) if config.witness_policy else None,
            vxp_credentials=VxpCredentials(db, keys.pepper),
            deliveries=deliveries,
            revocation=revocation,
            timestamper=timestamper,
            dev_pki=dev_pki,
        )


@dataclass(frozen=True)
class DevPki:
    """The development CA's status services (demo mode only): what `gateway keys revoke` writes to."""

    ca: Issued
    revocations: DevRevocations
    tsa: DevTsa

    @classmethod
    def load(cls, config: Config) -> DevPki:
        ca = load_development_ca(config.keys_dir)
        tsa = Issued(load_private_key(config.dev_tsa_key_path), load_certificates(config.dev_tsa_cert_path)[0])
        return cls(ca, DevRevocations(config.dev_revocations_path), DevTsa(tsa, [ca.cert]))

    def revocations_version(self) -> object:
        try:
            found = self.revocations.path.stat()
        except FileNotFoundError:
            return None
        return (found.st_ino, found.st_mtime_ns, found.st_size)


def services() -> Services:
    found = current_app.extensions["gateway"]
    assert isinstance(found, Services)
    return found


def adapter_deployment(config: Config) -> Deployment:
    """One delivery attempt may take a third of the lease: a claim is never taken over mid-attempt."""
    return Deployment(demo=config.demo, attempt_seconds=config.delivery_lease_seconds / 3)
