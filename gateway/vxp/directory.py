"""The axis's agency directory, kept here with both identifier forms, and what a sync would change.

Three calls of the SDK's ``AgencyServiceImp`` give it (williamdunbar/SDK, commit f3a67b38):
``getAgenciesList`` (``code, id, mail, name, pid, oldCode``), ``getAgenciesListQD20`` (``code, id,
mail, name, code102``: the Decision 20/2020 form beside the QCVN 102 one) and
``getSynchronizeUnit`` (``code, id, mail, name, pid, version, centerCode, deleted, modifyDate,
isAgency``).  They are merged by ``code``; :func:`changes` compares the merge with what is stored
and says what was added, renamed, given another code102 or parent, and deleted (``deleted`` set,
or gone from every list), so an operator sees the sync before ``--apply`` writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.routing.names import printable_name
from gateway.store.tables import vxp_directory
from gateway.vxp.client import AxisClient


@dataclass(frozen=True)
class AxisAgency:
    code: str
    name: str
    code102: str | None = None
    parent: str | None = None
    mail: str | None = None
    version: int | None = None
    modified: str | None = None


@dataclass(frozen=True)
class Change:
    kind: str  # added | renamed | changed | deleted
    code: str
    before: str | None
    after: str | None


def fetch(client: AxisClient) -> dict[str, AxisAgency]:
    """The axis's directory now: the three lists merged by code; units it marks deleted left out."""
    plain = client.call("getAgenciesList", {}).get("data") or []
    qd20 = client.call("getAgenciesListQD20", {}).get("data") or []
    units = client.call("getSynchronizeUnit", {}).get("data") or []
    merged: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    for source in (plain, qd20, units):
        for item in source if isinstance(source, list) else []:
            if not isinstance(item, dict) or not str(item.get("code") or "").strip():
                continue
            code = str(item["code"]).strip()
            found = merged.setdefault(code, {"code": code})
            for key, field in (("name", "name"), ("code102", "code102"), ("pid", "parent"), ("mail", "mail")):
                if item.get(key) not in (None, ""):
                    found[field] = printable_name(str(item[key])) if key == "name" else str(item[key])
            if item.get("version") is not None:
                found["version"] = int(item["version"])
            if item.get("modifyDate"):
                found["modified"] = str(item["modifyDate"])
            if item.get("deleted") is True:
                deleted.add(code)
    return {c: AxisAgency(**{"name": c, **v}) for c, v in merged.items() if c not in deleted}


def stored(conn: Connection) -> dict[str, AxisAgency]:
    rows = conn.execute(sa.select(vxp_directory).where(vxp_directory.c.deleted_at.is_(None)))
    return {r.code: AxisAgency(r.code, r.name, r.code102, r.parent, r.mail, r.version, r.modified) for r in rows}


def changes(before: Mapping[str, AxisAgency], after: Mapping[str, AxisAgency]) -> list[Change]:
    found: list[Change] = []
    for code in sorted(set(before) | set(after)):
        old, new = before.get(code), after.get(code)
        if old is None and new is not None:
            found.append(Change("added", code, None, new.name))
        elif new is None and old is not None:
            found.append(Change("deleted", code, old.name, None))
        elif old is not None and new is not None:
            if old.name != new.name:
                found.append(Change("renamed", code, old.name, new.name))
            for label, a, b in (("code102", old.code102, new.code102), ("parent", old.parent, new.parent)):
                if a != b:
                    found.append(Change("changed", code, f"{label} {a or '-'}", f"{label} {b or '-'}"))
    return found


def apply(conn: Connection, after: Mapping[str, AxisAgency], found: Iterable[Change]) -> None:
    """Write the changes (a deleted unit is kept, marked, so old documents still name it)."""
    now = datetime.now(UTC)
    for change in found:
        if change.kind == "deleted":
            conn.execute(sa.update(vxp_directory).where(vxp_directory.c.code == change.code).values(deleted_at=now))
            continue
        values = {**asdict(after[change.code]), "synced_at": now, "deleted_at": None}
        updated = conn.execute(
            sa.update(vxp_directory).where(vxp_directory.c.code == change.code).values(**values)
        ).rowcount
        if not updated:
            conn.execute(sa.insert(vxp_directory).values(**values))
