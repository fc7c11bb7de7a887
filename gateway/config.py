"""Deployment configuration: environment variables first, then an optional TOML file, then defaults.

The TOML file is ``GATEWAY_CONFIG`` or the ``gateway.toml`` that ``gateway init`` wrote in the
working directory; the public URL falls back to where ``gateway serve`` last served from this folder
(:mod:`gateway.local_deployment`).

Everything is validated once at start-up and every problem is reported together, so an operator
fixes a broken deployment in one pass instead of one error per restart.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "GATEWAY_"


class ConfigError(Exception):
    """The configuration cannot run a gateway; ``problems`` lists every reason found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid gateway configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Config:
    """Settings of one deployment.  Paths are resolved relative to the working directory."""

    database_url: str = "sqlite:///var/gateway.db"
    redis_url: str | None = None
    keys_dir: Path = Path("keys")
    seal_key: Path | None = None
    seal_cert: Path | None = None
    token_key: Path | None = None
    # The checkpoint signer's key and its record of what it signed (issue 13): settings of their own, so
    # they can live apart from the other keys, on the host that signs.
    audit_key: Path | None = None
    audit_state_dir: Path | None = None
    # Whether this process signs checkpoints (and so loads the checkpoint key).  `gateway serve` runs
    # one `gateway audit signer` for that and sets this false for its web and delivery workers, which
    # learn the verifier keys from the public ``audit_vkeys`` file the signer writes.
    signs_checkpoints: bool = True
    audit_vkeys: Path | None = None
    trust_anchors: tuple[Path, ...] = ()
    public_url: str = "http://127.0.0.1:8080"
    max_document_bytes: int = 10 * 1024 * 1024
    access_token_ttl: int = 300
    client_assertion_max_lifetime: int = 300
    allow_rsa_sha1: bool = False
    demo: bool = False
    log_level: str = "INFO"
    citizen_audience: str = "interconnect-gateway"
    citizen_dossiers_per_hour: int = 20
    agency_submissions_per_minute: int = 600
    # Unauthenticated requests that still write (issue 13): per source address and minute.
    token_requests_per_minute: int = 120
    logins_per_minute: int = 600  # every citizen API call logs in; many phones share a carrier's address
    refusal_summary_seconds: int = 60  # unauthenticated refusals are audited as one summary per interval
    delivery_lease_seconds: int = 60  # a claim whose worker died is taken over after this
    delivery_receipt_poll_seconds: int = 15  # how often to look for filesystem / stream receipts
    delivery_breaker_threshold: int = 5  # consecutive failures that open an agency's circuit
    delivery_breaker_cooldown_seconds: int = 30
    # Revocation (issue 9): OCSP first, CRL as fallback, cached per certificate for the freshness
    # window and refreshed in the background after the refresh interval (X-Road's 3600 s / 1200 s).
    revocation_freshness_seconds: int = 3600
    revocation_refresh_seconds: int = 1200
    revocation_unknown: str = "refuse"  # or "flag": accept a signature whose status cannot be had, flagged
    revocation_timeout_seconds: int = 3
    ocsp_responders: Mapping[str, str] = field(default_factory=dict)  # issuer sha256 → responder URL
    crl_urls: Mapping[str, str] = field(default_factory=dict)  # issuer sha256 → CRL URL
    # Trusted timestamps (RFC 3161): the TSA, and how long to keep accepting while it is unreachable.
    tsa_url: str | None = None
    timestamp_failure_seconds: int = 14400  # X-Road's timeStampingIntervalSeconds-style grace period
    certificate_expiry_warning_days: int = 30
    # Workbench sessions (issue 10, finding 4): absolute and idle lifetimes; the login's national-ID
    # token expiry ends a session sooner when it comes first.
    workbench_session_seconds: int = 8 * 3600
    workbench_idle_seconds: int = 15 * 60
    # The HTTP front (gateway.serving, issue 10 finding 1): how long a client may take to send a
    # request, how slowly its body may arrive, and how many connections one address may hold.
    request_header_timeout_seconds: int = 10
    request_body_min_bytes_per_second: int = 8192
    keepalive_seconds: int = 5
    max_connections_per_address: int = 64  # per server process; 0 behind a proxy that limits itself
    # The development identity provider's clients (demo only): client_id → exact redirect URIs.
    dev_idp_clients: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    metrics_token: str | None = None  # /metrics wants it as a bearer token (required outside demo mode)
    portal_agency: str | None = None
    procedures_file: Path | None = None
    issuers: tuple[Mapping[str, Any], ...] = ()
    auditors: tuple[str, ...] = ()  # personal ID numbers (national-ID login) or agency codes (gateway tokens)
    operators: tuple[str, ...] = ()  # the same kinds of identity, allowed to look after deliveries
    # Witnesses (issue 13) each checkpoint is sent to: "<witness vkey> <submission prefix URL>" each.
    witnesses: tuple[str, ...] = ()
    # The national document axis (issue 14): where `gateway vxp receive` takes the city's documents.
    vxp_endpoint: str | None = None
    vxp_systemid: str | None = None
    vxp_secret_file: Path | None = None
    vxp_poll_seconds: int = 30
    # How far an SDK call's timestamp may be from now: the SDK sets it once per service object.
    vxp_window_seconds: int = 900
    # The quorum the workbench's checkpoint page requires (a C2SP tlog-policy file, as auditors use).
    witness_policy: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The audit log's name as the database knows it (gateway.audit.origin); never read from settings.
    pinned_origin: str | None = None

    # Paths default to files inside keys_dir; these properties are what the rest of the code reads.
    @property
    def seal_key_path(self) -> Path:
        return self.seal_key or self.keys_dir / "gateway-seal.key"

    @property
    def seal_cert_path(self) -> Path:
        return self.seal_cert or self.keys_dir / "gateway-seal.crt"

    @property
    def token_key_path(self) -> Path:
        return self.token_key or self.keys_dir / "gateway-token.key"

    @property
    def trust_anchor_paths(self) -> tuple[Path, ...]:
        return self.trust_anchors or (self.keys_dir / "ca.crt",)

    @property
    def pepper_path(self) -> Path:
        """The per-deployment key that hashes citizens' personal IDs in the audit log."""
        return self.keys_dir / "citizen-id-pepper.key"

    @property
    def auditor_identities(self) -> frozenset[str]:
        """Demo mode makes the development provider's test citizen Lê Minh Châu an auditor unless told otherwise."""
        return frozenset(self.auditors or (("031085054321",) if self.demo else ()))

    def _witness_problems(self) -> list[str]:
        from gateway.audit.witnessing import WitnessEndpoint
        from gateway.policy import Refusal

        problems, names = [], set()
        for entry in self.witnesses:
            try:
                name = WitnessEndpoint.parse(entry).name
            except Refusal as refusal:
                problems.append(f"GATEWAY_WITNESSES: {entry[:60]!r}: {refusal.reason}")
                continue
            if name in names:
                problems.append(f"GATEWAY_WITNESSES: the witness {name} is listed twice")
            names.add(name)
        if self.witness_policy is not None:
            from gateway.audit.witness_policy import WitnessPolicy

            try:
                WitnessPolicy.load(self.witness_policy)
            except Refusal as refusal:
                problems.append(f"GATEWAY_WITNESS_POLICY: {self.witness_policy}: {refusal.reason}")
        return problems

    @property
    def audit_key_path(self) -> Path:
        """Ed25519 key that signs the audit log's checkpoints."""
        return self.audit_key or self.keys_dir / "audit-log.key"

    @property
    def audit_vkeys_path(self) -> Path:
        """The log's verifier keys, current first: public, written by the signer, read by everyone else."""
        return self.audit_vkeys or self.keys_dir / "audit-log.vkeys"

    @property
    def published_checkpoints_dir(self) -> Path:
        """The newest checkpoint signed for this log, outside the database (see gateway.audit.published):
        beside the checkpoint key unless set, since whoever holds the one must keep the other."""
        return self.audit_state_dir or self.audit_key_path.parent / "published-checkpoints"

    @property
    def audit_origin_path(self) -> Path:
        return self.keys_dir / "audit-log.origin"

    @property
    def audit_origin(self) -> str:
        """The checkpoints' origin line and the signed-note key name, e.g. ``gateway.example/audit``.

        The name the log already carries (:mod:`gateway.audit.origin`), else the one recorded in
        ``audit-log.origin``, else named after the public URL (a new log).
        """
        if self.pinned_origin:
            return self.pinned_origin
        try:
            recorded = self.audit_origin_path.read_text(encoding="utf-8").strip()
        except OSError:
            recorded = ""
        return recorded or urlsplit(self.public_url).netloc + "/audit"

    @property
    def dev_idp_key_path(self) -> Path:
        return self.keys_dir / "dev-idp.key"

    @property
    def dev_idp_issuer(self) -> str:
        return self.public_url.rstrip("/") + "/dev-idp"

    @property
    def effective_dev_idp_clients(self) -> Mapping[str, tuple[str, ...]]:
        """Registered clients, or demo mode's two: the workbench here and the README's citizen app."""
        return self.dev_idp_clients or {
            "audit-workbench": (self.public_url.rstrip("/") + "/audit/callback",),
            "citizen-app": ("http://127.0.0.1:9/cb",),
        }

    @property
    def token_endpoint(self) -> str:
        return self.public_url.rstrip("/") + "/oauth/token"

    @property
    def effective_tsa_url(self) -> str | None:
        """Demo mode timestamps with the development TSA the gateway serves itself."""
        return self.tsa_url or (self.public_url.rstrip("/") + "/dev-pki/tsa" if self.demo else None)

    @property
    def portal_key_path(self) -> Path:
        return self.keys_dir / "portal-signing.key"

    @property
    def portal_cert_path(self) -> Path:
        return self.keys_dir / "portal-signing.crt"

    @property
    def dev_revocations_path(self) -> Path:
        return self.keys_dir / "dev-revocations.json"

    @property
    def dev_tsa_key_path(self) -> Path:
        return self.keys_dir / "dev-tsa.key"

    @property
    def dev_tsa_cert_path(self) -> Path:
        return self.keys_dir / "dev-tsa.crt"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, toml_path: Path | None = None) -> Config:
        """Build and validate a configuration; raises :class:`ConfigError` listing every problem."""
        from gateway import local_deployment

        env = dict(os.environ if environ is None else environ)
        raw: dict[str, Any] = {}
        if environ is None:  # a command on this machine: the folder's own deployment (see local_deployment)
            path = toml_path or local_deployment.settings_file(env)
            served = local_deployment.served_url(env)
            if served is not None:
                raw["public_url"] = served  # unless the file or the environment names one
        else:
            path = toml_path or (Path(env["GATEWAY_CONFIG"]) if env.get("GATEWAY_CONFIG") else None)
        problems: list[str] = []
        if path is not None:
            try:
                raw.update(tomllib.loads(path.read_text(encoding="utf-8")))
            except FileNotFoundError:
                problems.append(f"GATEWAY_CONFIG: file {path} does not exist")
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                problems.append(f"GATEWAY_CONFIG: {path} is not valid TOML ({exc})")
        for f in fields(cls):
            if f.name in ("extra", "issuers", "ocsp_responders", "crl_urls", "pinned_origin"):
                continue  # tables: only in the TOML file; the pinned origin: from the log itself
            value = env.get(ENV_PREFIX + f.name.upper())
            if value is not None and value != "":
                raw[f.name] = value
        known = {f.name for f in fields(cls)} - {"pinned_origin"}
        unknown = sorted(set(raw) - known)
        if unknown:
            problems.append(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in raw and f.name != "extra":
                try:
                    values[f.name] = _coerce(f.name, raw[f.name])
                except ValueError as exc:
                    problems.append(f"{ENV_PREFIX}{f.name.upper()}: {exc}")
        config = cls(**values) if not problems else cls()
        problems.extend(config._problems())
        if problems:
            raise ConfigError(problems)
        return config

    def _problems(self) -> list[str]:
        problems: list[str] = []
        scheme = urlsplit(self.database_url).scheme
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            problems.append(
                f"GATEWAY_DATABASE_URL: scheme {scheme!r} is not supported; use sqlite:///path.db "
                "or postgresql+psycopg://user@host/db"
            )
        if self.redis_url is not None and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            problems.append("GATEWAY_REDIS_URL: must start with redis://, rediss:// or unix://")
        public = urlsplit(self.public_url)
        if public.scheme not in ("http", "https") or not public.netloc:
            problems.append("GATEWAY_PUBLIC_URL: must be an absolute http(s) URL such as https://gateway.example")
        if not 1024 <= self.max_document_bytes <= 512 * 1024 * 1024:
            problems.append("GATEWAY_MAX_DOCUMENT_BYTES: must be between 1024 and 536870912")
        if not 1 <= self.refusal_summary_seconds <= 3600:
            problems.append("GATEWAY_REFUSAL_SUMMARY_SECONDS: between 1 and 3600")
        for name in ("token_requests_per_minute", "logins_per_minute"):
            if not 1 <= getattr(self, name) <= 10**9:
                problems.append(f"GATEWAY_{name.upper()}: between 1 and 1000000000 (per source address and minute)")
        if not 30 <= self.access_token_ttl <= 3600:
            problems.append("GATEWAY_ACCESS_TOKEN_TTL: must be between 30 and 3600 seconds")
        if not 10 <= self.client_assertion_max_lifetime <= 3600:
            problems.append("GATEWAY_CLIENT_ASSERTION_MAX_LIFETIME: must be between 10 and 3600 seconds")
        if self.revocation_unknown not in ("refuse", "flag"):
            problems.append("GATEWAY_REVOCATION_UNKNOWN: refuse (the default) or flag")
        problems += self._witness_problems()
        if not 60 <= self.revocation_freshness_seconds <= 7 * 86400:
            problems.append("GATEWAY_REVOCATION_FRESHNESS_SECONDS: between 60 and 604800")
        if not 0 <= self.revocation_refresh_seconds < self.revocation_freshness_seconds:
            problems.append(
                "GATEWAY_REVOCATION_REFRESH_SECONDS: at least 0 and below GATEWAY_REVOCATION_FRESHNESS_SECONDS, "
                "so statuses are refreshed before they go stale"
            )
        if not 1 <= self.revocation_timeout_seconds <= 30:
            problems.append("GATEWAY_REVOCATION_TIMEOUT_SECONDS: between 1 and 30")
        if not 0 <= self.timestamp_failure_seconds <= 7 * 86400:
            problems.append("GATEWAY_TIMESTAMP_FAILURE_SECONDS: between 0 and 604800")
        for name, table in (("ocsp_responders", self.ocsp_responders), ("crl_urls", self.crl_urls)):
            for issuer, url in table.items():
                if len(issuer) != 64 or urlsplit(url).scheme not in ("http", "https"):
                    problems.append(f"{name}: map an issuer certificate's SHA-256 (64 hex digits) to an http(s) URL")
        if self.tsa_url is not None and urlsplit(self.tsa_url).scheme not in ("http", "https"):
            problems.append("GATEWAY_TSA_URL: must be an http(s) URL of an RFC 3161 timestamp authority")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            problems.append("GATEWAY_LOG_LEVEL: one of DEBUG, INFO, WARNING, ERROR")
        if not 60 <= self.workbench_idle_seconds <= self.workbench_session_seconds <= 86400:
            problems.append(
                "GATEWAY_WORKBENCH_IDLE_SECONDS / GATEWAY_WORKBENCH_SESSION_SECONDS: "
                "60 ≤ idle ≤ session ≤ 86400 seconds"
            )
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            problems.append("GATEWAY_METRICS_TOKEN: at least 16 characters (e.g. `openssl rand -hex 24`)")
        if not 1 <= self.request_header_timeout_seconds <= 300:
            problems.append("GATEWAY_REQUEST_HEADER_TIMEOUT_SECONDS: between 1 and 300")
        if not 1 <= self.request_body_min_bytes_per_second <= 10_000_000:
            problems.append("GATEWAY_REQUEST_BODY_MIN_BYTES_PER_SECOND: between 1 and 10000000")
        if not 1 <= self.keepalive_seconds <= 300:
            problems.append("GATEWAY_KEEPALIVE_SECONDS: between 1 and 300")
        if not 0 <= self.max_connections_per_address <= 100_000:
            problems.append("GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: between 0 (no cap) and 100000")
        return problems

    def missing_key_files(self) -> list[str]:
        """Key files the server needs and cannot find, phrased with the command that makes them."""
        wanted = [
            self.seal_key_path,
            self.seal_cert_path,
            self.token_key_path,
            self.pepper_path,
            *([self.audit_key_path] if self.signs_checkpoints else []),
            *self.trust_anchor_paths,
        ]
        if self.demo:
            wanted += [self.dev_idp_key_path, self.dev_tsa_key_path, self.dev_tsa_cert_path]
        if self.demo or self.portal_agency:
            wanted += [self.portal_key_path, self.portal_cert_path]
        return [
            f"{p} is missing: run `gateway keys init` (development) or point the setting at your key file"
            for p in wanted
            if not p.is_file()
        ]


_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _dev_idp_clients(value: Any) -> dict[str, tuple[str, ...]]:
    """A TOML table ``client = ["uri", …]`` or ``client=uri uri;client2=uri`` in the environment."""
    if isinstance(value, str):
        pairs = [item.partition("=") for item in value.split(";") if item.strip()]
        value = {k.strip(): v.split() for k, _, v in pairs}
    if not isinstance(value, dict):
        raise ValueError("a table of client_id = [redirect URIs]")
    clients: dict[str, tuple[str, ...]] = {}
    for client, uris in value.items():
        listed = [uris] if isinstance(uris, str) else uris
        if not isinstance(listed, list) or not listed:
            raise ValueError(f"client {client!r}: give a list of redirect URIs")
        for uri in listed:
            parts = urlsplit(str(uri))
            if parts.scheme not in ("http", "https") or not parts.netloc or any(ord(c) < 33 for c in str(uri)):
                raise ValueError(f"client {client!r}: {uri!r} is not an absolute http(s) URL")
        clients[str(client)] = tuple(str(u) for u in listed)
    return clients


def _int_fields() -> frozenset[str]:
    return frozenset(f.name for f in fields(Config) if f.type in ("int", int))


def _bool_fields() -> frozenset[str]:
    return frozenset(f.name for f in fields(Config) if f.type in ("bool", bool))


def _coerce(name: str, value: Any) -> Any:
    """Turn a TOML value or an environment string into the field's type."""
    if name == "issuers":
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise ValueError("issuers must be [[issuers]] tables in the TOML file")
        return tuple(value)
    if name == "dev_idp_clients":
        return _dev_idp_clients(value)
    if name in ("ocsp_responders", "crl_urls"):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a TOML table of issuer SHA-256 = URL")
        return {str(k).lower(): str(v) for k, v in value.items()}
    if name == "witnesses":
        items = value if isinstance(value, list) else str(value).split(",")
        return tuple(" ".join(str(i).split()) for i in items if str(i).strip())
    if name in ("auditors", "operators"):
        items = value if isinstance(value, list) else str(value).split(",")
        return tuple(str(i).strip() for i in items if str(i).strip())
    if name in (
        "keys_dir",
        "seal_key",
        "seal_cert",
        "token_key",
        "audit_key",
        "audit_state_dir",
        "audit_vkeys",
        "vxp_secret_file",
        "procedures_file",
        "witness_policy",
    ):
        return Path(str(value))
    if name == "trust_anchors":
        items = value if isinstance(value, list) else str(value).split(os.pathsep)
        return tuple(Path(str(p)) for p in items if str(p))
    if name in _int_fields():
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a whole number, got {value!r}") from None
    if name in _bool_fields():
        if isinstance(value, bool):
            return value
        try:
            return _BOOL[str(value).strip().lower()]
        except KeyError:
            raise ValueError(f"must be true or false, got {value!r}") from None
    return str(value)
