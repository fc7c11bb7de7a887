"""Export a stretch of the audit log as a self-contained bundle, and verify one offline.

A bundle holds ``entries.jsonl`` (the exact entry bytes, one per line, indices [from, to)), the
signed checkpoints that cover it (``checkpoints/<size>.note``), consistency proofs between them,
the ``frontier`` (the stored perfect-subtree hashes of [0, from), so roots can be recomputed without
the older entries), the verifier key and a manifest of SHA-256 sums.  The verifier trusts none of
it but the verifier key given on its command line: every checkpoint signature is checked, every
root recomputed from the raw entries and compared, the consistency chain, index and time continuity.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit.checkpoint import AnyOfVerifiers, NoteVerifier, open_checkpoint
from gateway.audit.checkpoints import CheckpointLog, SignedCheckpoint
from gateway.audit.log import StoredTree, stored_node
from gateway.audit.merkle import consistency_path, hash_children, hash_leaf, verify_consistency
from gateway.audit.witness_policy import WitnessPolicy
from gateway.audit.witnessing import cosigned_note
from gateway.json_input import parse_json
from gateway.policy import Refusal
from gateway.store.tables import audit_checkpoints, audit_entries

FORMAT = "interconnect-gateway-audit-bundle/1"


def frontier_of(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees (level, index) that cover leaves [0, size), largest first."""
    nodes, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size & (1 << level):
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


class CompactRange:
    """The right edge of a growing tree: perfect subtrees only, enough to produce every root (RFC 9162 §2.1.1)."""

    def __init__(self, nodes: list[tuple[int, bytes]]) -> None:
        self._nodes = list(nodes)

    def append(self, leaf_hash: bytes) -> None:
        level, h = 0, leaf_hash
        while self._nodes and self._nodes[-1][0] == level:
            h = hash_children(self._nodes.pop()[1], h)
            level += 1
        self._nodes.append((level, h))

    def root(self) -> bytes:
        if not self._nodes:
            return hashlib.sha256(b"").digest()
        r = self._nodes[-1][1]
        for _level, h in reversed(self._nodes[:-1]):
            r = hash_children(h, r)
        return r


def export_bundle(conn: Connection, checkpoints: CheckpointLog, first: int, last: int) -> bytes:
    """The bundle as bytes (tests and small ranges); :func:`write_bundle` streams it instead."""
    buffer = io.BytesIO()
    write_bundle(conn, checkpoints, first, last, buffer)
    return buffer.getvalue()


def write_bundle(conn: Connection, checkpoints: CheckpointLog, first: int, last: int, out: IO[bytes]) -> None:
    """Entries [first, end) where end is the smallest signed size ≥ last, with what verifies them.

    Entries are streamed from the database into the zip member (a whole-log export is not held in
    memory); the manifest with every file's SHA-256 is written last.
    """
    rows = conn.execute(
        sa.select(audit_checkpoints).where(audit_checkpoints.c.size > first).order_by(audit_checkpoints.c.size)
    ).all()
    covering = [SignedCheckpoint(int(r.size), bytes(r.root), r.note, int(r.created_us)) for r in rows]
    end_at = next((i for i, c in enumerate(covering) if c.size >= last), None)
    if end_at is None:
        raise Refusal("export-unavailable", "no signed checkpoint covers the end of that range yet; retry in a second")
    covering = covering[: end_at + 1]
    end = covering[-1].size
    tree = StoredTree(conn)
    digests: dict[str, str] = {}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:

        def put(name: str, data: bytes) -> None:
            archive.writestr(name, data)
            digests[name] = hashlib.sha256(data).hexdigest()

        entries = hashlib.sha256()
        with archive.open("entries.jsonl", "w") as member:
            bodies = conn.execute(
                sa.select(audit_entries.c.body)
                .where(audit_entries.c.idx >= first, audit_entries.c.idx < end)
                .order_by(audit_entries.c.idx)
                .execution_options(yield_per=2000)
            ).scalars()
            for body in bodies:
                line = bytes(body) + b"\n"
                member.write(line)
                entries.update(line)
        digests["entries.jsonl"] = entries.hexdigest()
        put(
            "frontier.json",
            json.dumps(
                [
                    {"level": lv, "index": i, "hash": base64.b64encode(stored_node(conn, lv, i)).decode()}
                    for lv, i in frontier_of(first)
                ]
            ).encode(),
        )
        for c in covering:
            put(f"checkpoints/{c.size}.note", cosigned_note(conn, c).encode())  # with the witnesses' cosignatures
        proofs = []
        for older, newer in pairwise(covering):
            proof = consistency_path(tree, older.size, newer.size)
            proofs.append(
                {"from": older.size, "to": newer.size, "proof": [base64.b64encode(p).decode() for p in proof]}
            )
        put("consistency.json", json.dumps(proofs).encode())
        put("vkey.txt", "".join(v + "\n" for v in checkpoints.vkeys).encode())  # current first; never trusted
        manifest = {
            "format": FORMAT,
            "origin": checkpoints.origin,
            "from_index": first,
            "to_index": end,
            "sha256": dict(sorted(digests.items())),
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=1))


@dataclass
class Verdict:
    valid: bool
    detail: str
    checked_entries: int = 0
    checkpoints: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": "valid" if self.valid else "invalid",
            "detail": self.detail,
            "entries_checked": self.checked_entries,
            "checkpoints_checked": self.checkpoints,
        }


class BundleBroken(Exception):
    pass


def _read(archive: zipfile.ZipFile, name: str, manifest: dict[str, Any]) -> bytes:
    try:
        data = archive.read(name)
    except KeyError:
        raise BundleBroken(f"{name} is missing from the bundle") from None
    if hashlib.sha256(data).hexdigest() != manifest["sha256"].get(name):
        raise BundleBroken(f"{name} does not match its SHA-256 in the manifest")
    return data


def _lines(data: bytes) -> Iterator[bytes]:
    for line in data.split(b"\n"):
        if line:
            yield line


def _check_consistency_chain(checkpoints: dict[int, bytes], proofs: list[dict[str, Any]]) -> None:
    """Each signed checkpoint must be proved consistent with the next (RFC 9162 §2.1.4).

    A checkpoint left out of the chain would be one no entry and no proof ties to the others: a
    fork signed with the same key would pass unnoticed."""
    given: dict[tuple[int, int], list[bytes]] = {}
    for item in proofs:
        given[(int(item["from"]), int(item["to"]))] = [base64.b64decode(p, validate=True) for p in item["proof"]]
    for a, b in pairwise(sorted(checkpoints)):
        proof = given.pop((a, b), None)
        if proof is None:
            raise BundleBroken(f"no consistency proof ties the checkpoint of size {a} to the one of size {b}")
        if not verify_consistency(a, b, checkpoints[a], checkpoints[b], proof):
            raise BundleBroken(f"checkpoint of size {b} is not consistent with the checkpoint of size {a}")
    if given:
        a, b = next(iter(given))
        raise BundleBroken(f"the consistency proof {a}→{b} is not between two consecutive checkpoints of the bundle")


def verify_bundle(
    path: Path,
    verifier: NoteVerifier | AnyOfVerifiers,
    progress: Callable[[int, int], None] | None = None,
    policy: WitnessPolicy | None = None,
) -> Verdict:
    """Check everything; the verdict names the first bad entry or checkpoint.  With ``policy`` the
    newest checkpoint must also carry its quorum of witness cosignatures (the older ones are tied to
    it by consistency proofs)."""
    verdict = Verdict(False, "")
    cosigned: tuple[str, ...] = ()
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = parse_json(archive.read("manifest.json"))
            if manifest.get("format") != FORMAT:
                raise BundleBroken(f"not an audit bundle ({FORMAT})")
            first, end = int(manifest["from_index"]), int(manifest["to_index"])
            checkpoints = {}
            notes: dict[int, str] = {}
            for name in sorted(n for n in manifest["sha256"] if n.startswith("checkpoints/")):
                size = int(name.removeprefix("checkpoints/").removesuffix(".note"))
                notes[size] = _read(archive, name, manifest).decode()
                try:
                    checkpoint = open_checkpoint(notes[size], verifier)
                except Refusal as refusal:
                    raise BundleBroken(f"checkpoint {name}: {refusal.reason}") from None
                if checkpoint.size != size:
                    raise BundleBroken(f"checkpoint {name} is for size {checkpoint.size}")
                checkpoints[size] = checkpoint.root
            if not checkpoints or max(checkpoints) != end:
                raise BundleBroken("the bundle carries no signed checkpoint for its last entry")
            if policy is not None:
                try:
                    cosigned = policy.accept(notes[end]).cosigned_by
                except Refusal as refusal:
                    raise BundleBroken(f"checkpoint of size {end}: {refusal.reason}") from None
            verdict.checkpoints = len(checkpoints)
            _check_consistency_chain(checkpoints, parse_json(_read(archive, "consistency.json", manifest)))
            frontier = parse_json(_read(archive, "frontier.json", manifest))
            if [(f["level"], f["index"]) for f in frontier] != frontier_of(first):
                raise BundleBroken(f"the frontier does not describe leaves [0, {first})")
            tree = CompactRange([(int(f["level"]), base64.b64decode(f["hash"])) for f in frontier])
            if first in checkpoints and tree.root() != checkpoints[first]:
                raise BundleBroken(f"the frontier does not give the root signed at size {first}")
            entries = _read(archive, "entries.jsonl", manifest)
            previous_time, checked_from, index = "", first, first
            for line in _lines(entries):
                try:
                    entry = parse_json(line)
                except ValueError:
                    raise BundleBroken(f"the entry at index {index} is not JSON") from None
                if index >= end:  # hashed and counted, but no signature vouches for them
                    raise BundleBroken(
                        f"the entries go on past the last signed checkpoint (size {end}): index {index} "
                        "onwards is covered by no signed checkpoint"
                    )
                if entry.get("index") != index:
                    raise BundleBroken(
                        f"the entry in position {index} says index {entry.get('index')}: "
                        "entries were removed, inserted or reordered there"
                    )
                if str(entry.get("time", "")) < previous_time:
                    raise BundleBroken(f"time goes backwards at index {index} ({entry.get('time')} < {previous_time})")
                previous_time = str(entry.get("time", ""))
                tree.append(hash_leaf(line))
                index += 1
                verdict.checked_entries += 1
                if index in checkpoints:
                    if tree.root() != checkpoints[index]:
                        raise BundleBroken(
                            f"the entries do not give the root signed at size {index}: an entry with index "
                            f"between {checked_from} and {index - 1} was changed"
                        )
                    checked_from = index
                if progress is not None and verdict.checked_entries % 1000 == 0:
                    progress(verdict.checked_entries, end - first)
            if index < end:
                raise BundleBroken(
                    f"a checkpoint of size {end} was signed but the entries stop at index {index - 1}: "
                    f"entries {index}..{end - 1} are missing (deleted?)"
                )
    except (BundleBroken, zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        verdict.detail = str(exc)
        return verdict
    except Exception as exc:  # a hostile file's surprise (a list for an object, 1e999 for an index, bad deflate)
        verdict.detail = f"the bundle cannot be read ({type(exc).__name__}): it is not one the gateway exported"
        return verdict
    witnessed = f"; cosigned by {', '.join(cosigned)}" if cosigned else ""
    if policy is None:
        witnessed = "; no witness policy given, so no witness vouches for it (pass --policy)"
    verdict.valid = True
    verdict.detail = f"entries {first}..{end - 1} match {verdict.checkpoints} signed checkpoint(s){witnessed}"
    return verdict
