"""Turning the operator's ``[[issuers]]`` tables into issuer policies and key sources.

Example (TOML, in the file named by ``GATEWAY_CONFIG``)::

    [[issuers]]
    issuer = "https://sso.dancuquocgia.gov.vn"      # exact iss
    audiences = ["interconnect-gateway"]
    discovery = true                                # or jwks_url = "...", or jwks_file = "keys/vneid.jwks.json"
    algorithms = ["RS256"]
    leeway = 30
    single_use = false
    acr_levels = { "1" = 1, "2" = 2 }
    workbench_client_id = "hue-audit-workbench"      # auditors log in to /audit/ here (optional)
    [issuers.claims]
    personal_id = "SoDinhDanh"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.identity.jwks import KeySource, RemoteKeySource, StaticKeySource, same_origin
from gateway.identity.national_id import DEFAULT_ALGORITHMS, ClaimNames, IssuerPolicy

_KNOWN = {
    "issuer",
    "audiences",
    "discovery",
    "jwks_url",
    "jwks_file",
    "algorithms",
    "leeway",
    "claims",
    "acr_levels",
    "trusted_extra_audiences",
    "client_id",
    "single_use",
    "token_types",
    "workbench_client_id",
}


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return tuple(value)


def issuer_from_table(table: Mapping[str, Any]) -> tuple[IssuerPolicy, KeySource]:
    issuer = table.get("issuer")
    if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://")):
        raise ValueError("issuer must be the issuer's URL, exactly as in its tokens' iss")
    unknown = sorted(set(table) - _KNOWN)
    if unknown:
        raise ValueError(f"issuer {issuer}: unknown setting(s) {', '.join(unknown)}")
    claims = table.get("claims", {})
    if not isinstance(claims, dict) or set(claims) - {"personal_id", "full_name", "birth_date", "level"}:
        raise ValueError(f"issuer {issuer}: claims takes personal_id, full_name, birth_date, level")
    levels = table.get("acr_levels", {"1": 1, "2": 2})
    policy = IssuerPolicy(
        issuer=issuer,
        audiences=_strings(table.get("audiences", []), "audiences"),
        algorithms=_strings(table.get("algorithms", list(DEFAULT_ALGORITHMS)), "algorithms"),
        leeway=int(table.get("leeway", 30)),
        claims=ClaimNames(**claims),
        acr_levels={str(k): int(v) for k, v in dict(levels).items()},
        trusted_extra_audiences=_strings(table.get("trusted_extra_audiences", []), "trusted_extra_audiences"),
        client_id=table.get("client_id"),
        single_use=bool(table.get("single_use", False)),
        token_types=_strings(table.get("token_types", ["JWT", "at+jwt"]), "token_types"),
    )
    jwks_file, jwks_url = table.get("jwks_file"), table.get("jwks_url")
    if jwks_file and jwks_url:
        raise ValueError(f"issuer {issuer}: give jwks_file or jwks_url, not both")
    if jwks_file:
        return policy, StaticKeySource.from_file(Path(str(jwks_file)))
    if jwks_url:
        if not str(jwks_url).startswith(("https://", "http://")) or not same_origin(str(jwks_url), issuer):
            raise ValueError(f"issuer {issuer}: jwks_url must be an http(s) URL on the issuer's own origin")
        return policy, RemoteKeySource(issuer, jwks_url=str(jwks_url))
    if table.get("discovery", True) is not True:
        raise ValueError(f"issuer {issuer}: without discovery, give jwks_url or jwks_file")
    return policy, RemoteKeySource(issuer)


def issuers_from_config(tables: Sequence[Mapping[str, Any]]) -> list[tuple[IssuerPolicy, KeySource]]:
    problems, built = [], []
    for table in tables:
        try:
            built.append(issuer_from_table(table))
        except (ValueError, TypeError, OSError) as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("national-ID issuer configuration: " + "; ".join(problems))
    return built
