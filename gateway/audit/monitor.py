"""A monitor that follows an audit log through its C2SP ``tlog-tiles`` (https://c2sp.org/tlog-tiles).

Each check fetches the log's latest checkpoint and verifies its signature (and, given a C2SP
``tlog-policy``, the witnesses' quorum); then fetches every tile holding a hash the tree gained
since the last check, and checks that

* every full tile hashes to its hash in the tile above, and the tiles hash to the checkpoint's root;
* the root of the size this monitor saw last, recomputed from the *new* tiles, is the root it saw —
  the log only ever grew (a smaller size is a rollback, another root a fork);
* with an auditor's token, every entry of the entry bundles hashes (RFC 9162 leaf hash) to its
  level-0 tile hash.

What it saw is kept in a small JSON state file (size, root, and the checkpoint note as evidence),
replaced atomically.  Level-0 tiles are checked and dropped one by one, so catching up with a long
log costs time, not memory.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from gateway.audit.checkpoint import AnyOfVerifiers, Checkpoint, NoteVerifier, open_checkpoint
from gateway.audit.merkle import hash_leaf, perfect_subtrees, root_hash
from gateway.audit.tiles import (
    TILE_WIDTH,
    Tile,
    TileHashes,
    decode_entry_bundle,
    split_hashes,
    subtree_tile,
    tile_of,
    tile_root,
    tiles_to_follow,
)
from gateway.audit.witness_policy import WitnessPolicy
from gateway.policy import Refusal
from gateway.store.durable import write_durably

# (url, request headers) → (status, body): the one HTTP call, replaceable by a test client.
Fetch = Callable[[str, Mapping[str, str]], tuple[int, bytes]]
Progress = Callable[[int, int], None]
DEFAULT_PREFIX = "/v1/audit/tlog"


class LogUnreachable(Exception):
    """No usable answer (refused, timed out, a server error): try again later."""


class AccessRefused(Exception):
    """The log refused the entry bundles: the token is missing, wrong, or not an auditor's."""


class MonitorAlarm(Exception):
    """The log showed something an honest log never does."""


class CheckpointRefused(MonitorAlarm):
    """The checkpoint's signature (or the witnesses' quorum) does not verify."""


class NotConsistent(MonitorAlarm):
    """The log does not extend what this monitor saw before: a rollback or a fork."""


class TilesInvalid(MonitorAlarm):
    """The tiles or entry bundles do not hash to the signed checkpoint."""


class StateInvalid(ValueError):
    """The state file is unreadable, or belongs to another log."""


@dataclass(frozen=True)
class MonitorState:
    """What the monitor last verified: the tree of ``size`` leaves had ``root``, as ``note`` says."""

    origin: str
    size: int
    root: bytes
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "checkpoint": self.note,
        }


def load_state(path: Path) -> MonitorState | None:
    """The state in ``path``, or None when there is none yet (the first check)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateInvalid(f"{path} is not a readable monitor state file: {exc}") from None
    try:
        root = base64.b64decode(data["root"], validate=True)
        state = MonitorState(str(data["origin"]), int(data["size"]), root, str(data.get("checkpoint", "")))
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise StateInvalid(f"{path} is not a monitor state file (origin, size, root)") from None
    if len(state.root) != 32 or state.size < 0:
        raise StateInvalid(f"{path} holds no valid size and 32-byte root")
    return state


def save_state(path: Path, state: MonitorState) -> None:
    """Replace ``path`` atomically (gateway.store.durable): the last verified checkpoint survives a crash."""
    data = json.dumps(state.as_dict(), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    write_durably(path, data)


def tlog_prefix(url: str) -> str:
    """The log's tlog-tiles prefix: the URL given, or the gateway's ``/v1/audit/tlog`` for a bare host."""
    url = url.rstrip("/")
    return url + DEFAULT_PREFIX if urlsplit(url).path in ("", "/") else url


def http_fetch(timeout: float = 10.0) -> Fetch:
    session = requests.Session()

    def fetch(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        try:
            answer = session.get(url, headers=dict(headers), timeout=timeout)
        except requests.RequestException as exc:
            raise LogUnreachable(f"{url}: {type(exc).__name__} ({str(exc)[:160]})") from None
        return answer.status_code, answer.content

    return fetch


@dataclass(frozen=True)
class Checked:
    """One verified checkpoint."""

    url: str
    size: int
    root: bytes
    previous: MonitorState | None
    tiles: int  # tiles fetched and checked
    entries: int  # entries checked against their leaf hashes
    cosigned_by: tuple[str, ...]
    origin: str
    note: str

    @property
    def state(self) -> MonitorState:
        return MonitorState(self.origin, self.size, self.root, self.note)

    def line(self) -> str:
        root = self.root.hex()[:16] + "…"
        if self.previous is None:
            seen = "first checkpoint this monitor saw"
        elif self.previous.size == self.size:
            seen = "unchanged"
        else:
            seen = f"consistent with {self.previous.size}"
        extras = [f"{self.entries} entries checked"] if self.entries else []
        if self.cosigned_by:
            extras.append("cosigned by " + ", ".join(self.cosigned_by))
        return f"size {self.size} root {root} {seen} ✓" + (f" ({'; '.join(extras)})" if extras else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": "consistent",
            "url": self.url,
            "size": self.size,
            "root": self.root.hex(),
            "previous_size": self.previous.size if self.previous is not None else None,
            "tiles": self.tiles,
            "entries": self.entries,
            "cosigned_by": list(self.cosigned_by),
        }


class Monitor:
    def __init__(
        self,
        url: str,
        verifier: NoteVerifier | AnyOfVerifiers,
        *,
        policy: WitnessPolicy | None = None,
        fetch: Fetch | None = None,
        token: str | None = None,
        check_entries: bool = False,
        progress: Progress | None = None,
    ) -> None:
        if check_entries and not token:
            raise ValueError("checking entries needs an auditor's token: entry bundles are not public")
        self.url = tlog_prefix(url)
        self._verifier = verifier
        self._policy = policy
        self._fetch = fetch or http_fetch()
        self._token = token
        self._check_entries = check_entries
        self._progress = progress

    def check(self, previous: MonitorState | None) -> Checked:
        """Verify the log's latest checkpoint, its tiles, and that it extends ``previous``; see the module."""
        note, checkpoint, cosigned = self._checkpoint()
        if previous is not None and previous.origin != checkpoint.origin:
            raise StateInvalid(f"the state file is for the log {previous.origin!r}, not {checkpoint.origin!r}")
        old = previous.size if previous is not None else 0
        if checkpoint.size < old:
            raise NotConsistent(
                f"it now signs a tree of {checkpoint.size} entries after one of {old}: the log was rolled back"
            )
        checked_tiles, checked_entries = self._check_tiles(checkpoint, previous)
        return Checked(
            self.url,
            checkpoint.size,
            checkpoint.root,
            previous,
            checked_tiles,
            checked_entries,
            cosigned,
            checkpoint.origin,
            note,
        )

    def _checkpoint(self) -> tuple[str, Checkpoint, tuple[str, ...]]:
        status, body = self._get("checkpoint")
        if status == 404:
            raise LogUnreachable(f"{self.url}/checkpoint answered 404: is {self.url} the log's tlog-tiles prefix?")
        if status != 200:
            raise LogUnreachable(f"{self.url}/checkpoint answered {status}")
        try:
            note = body.decode("utf-8")
            checkpoint = open_checkpoint(note, self._verifier)
            cosigned = self._policy.accept(note).cosigned_by if self._policy is not None else ()
        except UnicodeDecodeError:
            raise CheckpointRefused("the checkpoint is not UTF-8 text") from None
        except Refusal as refusal:
            raise CheckpointRefused(f"the checkpoint does not verify: {refusal.reason}") from None
        return note, checkpoint, cosigned

    def _check_tiles(self, checkpoint: Checkpoint, previous: MonitorState | None) -> tuple[int, int]:
        size, old = checkpoint.size, previous.size if previous is not None else 0
        # The tiles the two roots are made of, as the log stands now (a tile then partial may be full by now).
        for_roots = {
            (t.level, t.index): t
            for t in (_as_now(size, subtree_tile(h, i)[0]) for h, i in _subtrees(old) + _subtrees(size))
        }
        plan = {(t.level, t.index): t for t in tiles_to_follow(old, size)} | for_roots
        total = len(plan) + (sum(1 for t in plan.values() if t.level == 0) if self._check_entries else 0)
        done = 0
        held: dict[tuple[int, int], list[bytes]] = {}

        def fetched(tile: Tile) -> list[bytes]:
            nonlocal done
            held[(tile.level, tile.index)] = self._tile(tile)
            done += 1
            if self._progress is not None:
                self._progress(done, total)
            return held[(tile.level, tile.index)]

        # First the roots, from the few tiles they need: a fork or a rollback is said before any long download.
        for tile in sorted(for_roots.values(), key=lambda t: (-t.level, t.index)):
            fetched(tile)
        tree = TileHashes(held)
        if root_hash(tree, size) != checkpoint.root:
            raise TilesInvalid(f"the tiles do not hash to the root of the signed checkpoint of size {size}")
        if previous is not None and root_hash(tree, old) != previous.root:
            raise NotConsistent(
                f"the tree of its signed checkpoint of size {size} does not begin with the tree of size {old} "
                f"this monitor saw (root {previous.root.hex()[:16]}…): the log's history was rewritten (a fork)"
            )
        # Then every new tile, top level first, each full one bound to its hash in the tile above.
        entries = 0
        for tile in sorted(plan.values(), key=lambda t: (-t.level, t.index)):
            key = (tile.level, tile.index)
            hashes = held[key] if key in held else fetched(tile)
            # A full tile's parent is a tile of the plan too, one level up, so fetched before it.
            parent = held[(tile.level + 1, tile.index // TILE_WIDTH)] if tile.full else []
            if tile.full and tile_root(hashes) != parent[tile.index % TILE_WIDTH]:
                raise TilesInvalid(f"{tile.path} does not hash to its hash in the tile above")
            if tile.level == 0:
                if self._check_entries:
                    entries += self._check_bundle(tile, hashes)
                    done += 1
                    if self._progress is not None:
                        self._progress(done, total)
                if key not in for_roots:
                    del held[key]  # checked: level-0 tiles are most of a catch-up, and not needed again
        return len(plan), entries

    def _tile(self, tile: Tile) -> list[bytes]:
        status, body = self._get(tile.path)
        if status == 404 and not tile.full:  # tlog-tiles: a partial tile may be gone once the full one is there
            status, body = self._get(Tile(tile.level, tile.index).path)
            body = body[: tile.width * 32]
        self._expect_200(tile.path, status)
        try:
            return split_hashes(body, tile.width)
        except ValueError as exc:
            raise TilesInvalid(f"{tile.path}: {exc}") from None

    def _check_bundle(self, tile: Tile, hashes: list[bytes]) -> int:
        bundle = Tile(0, tile.index, tile.width, entries=True)
        status, body = self._get(bundle.path, {"Authorization": f"Bearer {self._token}"})
        if status in (401, 403):
            raise AccessRefused(
                f"{self.url}/{bundle.path} answered {status}: entry bundles need an auditor's token (GATEWAY_AUDITORS)"
            )
        self._expect_200(bundle.path, status)
        try:
            found = decode_entry_bundle(body)
        except ValueError as exc:
            raise TilesInvalid(f"{bundle.path}: {exc}") from None
        if len(found) != tile.width:
            raise TilesInvalid(f"{bundle.path} holds {len(found)} entries, not {tile.width}")
        for offset, (entry, leaf) in enumerate(zip(found, hashes, strict=True)):
            if hash_leaf(entry) != leaf:
                raise TilesInvalid(f"entry {tile.first + offset} does not hash to its leaf hash in {tile.path}")
        return len(found)

    def _expect_200(self, path: str, status: int) -> None:
        if status == 200:
            return
        if status in (404, 410):  # the signed checkpoint covers it: an honest log serves it
            raise TilesInvalid(f"{self.url}/{path} answered {status} though the signed checkpoint covers it")
        raise LogUnreachable(f"{self.url}/{path} answered {status}")

    def _get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        return self._fetch(f"{self.url}/{path}", headers or {})


def _subtrees(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees (height, index) the root of a tree of ``size`` is made of."""
    return perfect_subtrees(0, size) if size else []


def _as_now(size: int, tile: Tile) -> Tile:
    """``tile`` as it stands in the tree of ``size``: at least as wide, perhaps full by now."""
    found = tile_of(size, tile.level, tile.index)
    assert found is not None and found.width >= tile.width
    return found


def follow(monitor: Monitor, state_path: Path) -> Checked:
    """One check against the state in ``state_path``, which is replaced only when the check passes."""
    checked = monitor.check(load_state(state_path))
    save_state(state_path, checked.state)
    return checked
