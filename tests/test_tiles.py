"""C2SP tlog-tiles read access to the audit log (/v1/audit/tlog/…) and `gateway audit monitor` following it."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import create_app
from gateway.audit import AuditEvent
from gateway.audit.checkpoint import NoteSigner, NoteVerifier, open_checkpoint
from gateway.audit.merkle import LeafHashes, hash_leaf, root_hash
from gateway.audit.monitor import (
    AccessRefused,
    CheckpointRefused,
    Monitor,
    MonitorState,
    NotConsistent,
    TilesInvalid,
    follow,
    load_state,
    save_state,
)
from gateway.audit.tiles import (
    MalformedTilePath,
    Tile,
    TileHashes,
    decode_entry_bundle,
    encode_entry_bundle,
    encode_index,
    parse_tile_path,
    tile_hashes,
    tiles_to_follow,
)
from gateway.audit.witness_policy import WitnessPolicy
from gateway.cli import main
from gateway.store.tables import audit_entries
from gateway.witness.cosignature import CosignatureSigner
from tests.conftest import make_config, register_agencies
from tests.pki_server import LoopbackServer
from tests.support import HCM, NOIVU, GatewayClient

TLOG = "/v1/audit/tlog"
IMMUTABLE = "public, max-age=31536000, immutable"


# --- pure functions -------------------------------------------------------------------------------


def test_tile_index_is_split_into_three_digit_elements_with_x_on_all_but_the_last():
    assert encode_index(1234067) == "x001/x234/067"  # the spec's example
    assert encode_index(0) == "000"
    assert encode_index(999) == "999"
    assert encode_index(1000) == "x001/000"
    assert Tile(0, 1234067).path == "tile/0/x001/x234/067"
    assert Tile(1, 1234067, 8).path == "tile/1/x001/x234/067.p/8"
    assert Tile(0, 5, 255, entries=True).path == "tile/entries/005.p/255"
    for tile in (Tile(0, 1234067), Tile(3, 1000, 1), Tile(0, 42, entries=True), Tile(63, 10**12, 200)):
        assert parse_tile_path(tile.path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1234",  # not 3 digits
        "tile/0/001/234",  # upper element without x
        "tile/0/x001/x234",  # last element with x
        "tile/0/x000/001",  # a leading x000 element
        "tile/00/000",  # level with a leading zero
        "tile/64/000",  # level above 63
        "tile/x/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/007",
        "tile/0/000.p",
        "tile/0/000/",
        "tile/entries/",
        "tiles/0/000",
    ],
)
def test_malformed_tile_paths_are_refused(path):
    with pytest.raises(MalformedTilePath):
        parse_tile_path(path)


def test_entry_bundles_are_uint16_length_prefixed_and_a_cut_bundle_is_refused():
    entries = [b"", b"a", b"\x00" * 300, "mục nhật ký".encode()]
    bundle = encode_entry_bundle(entries)
    assert bundle[:2] == b"\x00\x00" and bundle[2:5] == b"\x00\x01a" and bundle[5:7] == (300).to_bytes(2, "big")
    assert decode_entry_bundle(bundle) == entries
    for cut in (bundle[:-1], bundle[:7]):
        with pytest.raises(ValueError):
            decode_entry_bundle(cut)
    with pytest.raises(ValueError):
        encode_entry_bundle([b"x" * 65536])


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 512, 700, 65536, 65536 + 300])
def test_roots_of_the_tree_and_of_earlier_sizes_are_recomputed_from_the_current_tiles(size):
    leaves = LeafHashes([i.to_bytes(32, "big") for i in range(size)])
    plan = tiles_to_follow(0, size)
    assert {t.level for t in plan} == set(range(1 + (size.bit_length() - 1) // 8))
    tiles = {(t.level, t.index): _split(tile_hashes(leaves, t)) for t in plan}
    tree = TileHashes(tiles)
    for earlier in {1, size // 3, size // 2 + 1, size - 1, size} - {0}:
        assert tree.hash_range(0, earlier) == leaves.hash_range(0, earlier), earlier


def test_following_from_an_earlier_size_fetches_only_the_tiles_it_gained():
    assert tiles_to_follow(0, 300) == [Tile(0, 0), Tile(0, 1, 44), Tile(1, 0, 1)]
    assert tiles_to_follow(300, 600) == [Tile(0, 1), Tile(0, 2, 88), Tile(1, 0, 2)]
    assert tiles_to_follow(600, 600) == [Tile(0, 2, 88), Tile(1, 0, 2)]
    assert tiles_to_follow(512, 512) == [Tile(1, 0, 2)]


def _split(body: bytes) -> list[bytes]:
    return [body[i : i + 32] for i in range(0, len(body), 32)]


# --- the HTTP face --------------------------------------------------------------------------------


@pytest.fixture
def tlog_app(database_url, dev_pki):  # type: ignore[no-untyped-def]
    app = create_app(make_config(database_url, dev_pki, auditors=(NOIVU,)))
    register_agencies(app.extensions["gateway"], dev_pki)
    yield app
    app.extensions["gateway"].db.dispose()


@pytest.fixture
def sqlite_app(sqlite_url, dev_pki):  # type: ignore[no-untyped-def]
    app = create_app(make_config(sqlite_url, dev_pki, auditors=(NOIVU,)))
    register_agencies(app.extensions["gateway"], dev_pki)
    yield app
    app.extensions["gateway"].db.dispose()


def _grow(app, n: int, *, label: str = "entry", sign: bool = True) -> int:  # type: ignore[no-untyped-def]
    """Append ``n`` entries, then sign a checkpoint over them; the signed size."""
    svc = app.extensions["gateway"]
    with svc.db.write() as conn:
        svc.audit.append_many(
            conn, [AuditEvent(event="test.tile", outcome="ok", reason=f"{label} {i}") for i in range(n)]
        )
    if not sign:
        return -1
    return int(svc.checkpoints.refresh(force=True).size)


def _entries(app, size: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].db.read() as conn:
        rows = conn.execute(
            sa.select(audit_entries.c.body).where(audit_entries.c.idx < size).order_by(audit_entries.c.idx)
        )
        return [bytes(r.body) for r in rows]


def _auditor(app, dev_pki, code: str = NOIVU) -> GatewayClient:  # type: ignore[no-untyped-def]
    client = GatewayClient(app.test_client(), dev_pki.agencies[code])
    client.token()
    return client


def test_level_0_and_level_1_tiles_full_and_partial_match_hashes_computed_from_the_entries(tlog_app):
    size = _grow(tlog_app, 530)
    entries = _entries(tlog_app, size)
    assert len(entries) == size and 530 <= size < 768
    tree = LeafHashes.of_entries(entries)  # computed here, independently of the stored subtrees
    client = tlog_app.test_client()

    full = client.get(f"{TLOG}/tile/0/001")
    assert full.status_code == 200 and full.mimetype == "application/octet-stream"
    assert full.headers["Cache-Control"] == IMMUTABLE
    assert full.data == b"".join(hash_leaf(e) for e in entries[256:512])

    width = size - 512
    partial = client.get(f"{TLOG}/tile/0/002.p/{width}")
    assert partial.status_code == 200 and partial.data == b"".join(hash_leaf(e) for e in entries[512:size])
    assert (
        partial.headers["Cache-Control"].startswith("public, max-age=")
        and "immutable" not in partial.headers["Cache-Control"]
    )
    assert int(partial.headers["Cache-Control"].split("max-age=")[1]) <= 5

    prefix = client.get(f"{TLOG}/tile/0/000.p/10")  # a partial width of a tile that is full by now: its prefix
    assert prefix.data == b"".join(hash_leaf(e) for e in entries[:10])

    level_1 = client.get(f"{TLOG}/tile/1/000.p/2")  # the roots of level-0 tiles 0 and 1
    assert level_1.status_code == 200
    assert level_1.data == tree.hash_range(0, 256) + tree.hash_range(256, 512)
    assert level_1.headers["Cache-Control"] != IMMUTABLE

    # The tiles alone give back the signed root.
    signed = open_checkpoint(client.get(f"{TLOG}/checkpoint").get_data(as_text=True), _verifier(tlog_app))
    assert signed.size == size and signed.root == root_hash(tree, size)
    tiles = {(0, 2): _split(partial.data), (1, 0): _split(level_1.data)}
    assert root_hash(TileHashes(tiles), size) == signed.root


def test_tiles_beyond_the_latest_signed_checkpoint_are_404_even_when_the_entries_exist(tlog_app):
    size = _grow(tlog_app, 20)
    _grow(tlog_app, 30, sign=False)  # appended, not signed yet
    client = tlog_app.test_client()
    assert client.get(f"{TLOG}/tile/0/000.p/{size}").status_code == 200
    for path in (f"tile/0/000.p/{size + 1}", "tile/0/000", "tile/0/001.p/1", "tile/1/000.p/1", "tile/63/000.p/1"):
        answer = client.get(f"{TLOG}/{path}")
        assert answer.status_code == 404, path
        assert answer.mimetype == "application/problem+json" and answer.get_json()["code"] == "not-found"
        assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path", ["tile/0/1", "tile/0/x000/001", "tile/0/000.p/256", "tile/00/000", "tile/99/000", "tile/0/000/"]
)
def test_malformed_tile_urls_are_400_problems_never_500(sqlite_app, path):
    answer = sqlite_app.test_client().get(f"{TLOG}/{path}")
    assert answer.status_code == 400 and answer.get_json()["code"] == "invalid-request"
    assert "tlog-tiles" in answer.get_json()["detail"]


def test_checkpoint_is_the_signed_cosigned_note_with_a_short_cache(sqlite_app):
    size = _grow(sqlite_app, 3)
    client = sqlite_app.test_client()
    answer = client.get(f"{TLOG}/checkpoint")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.headers["Cache-Control"] == "no-cache"
    assert answer.data == client.get("/v1/audit/checkpoint").data
    assert open_checkpoint(answer.get_data(as_text=True), _verifier(sqlite_app)).size == size


def test_entry_bundles_are_refused_without_an_auditor_token_and_served_with_one(tlog_app, dev_pki):
    size = _grow(tlog_app, 260)
    client = tlog_app.test_client()
    anonymous = client.get(f"{TLOG}/tile/entries/000")
    assert anonymous.status_code == 401 and anonymous.get_json()["code"] == "invalid-token"
    agency = _auditor(tlog_app, dev_pki, HCM).get(f"{TLOG}/tile/entries/000")
    assert agency.status_code == 403 and agency.get_json()["code"] == "not-an-auditor"

    auditor = _auditor(tlog_app, dev_pki)
    full = auditor.get(f"{TLOG}/tile/entries/000")
    assert full.status_code == 200 and full.mimetype == "application/octet-stream"
    assert "public" not in full.headers["Cache-Control"]
    assert {"private", "no-store"} & {d.strip().split("=")[0] for d in full.headers["Cache-Control"].split(",")}
    entries = _entries(tlog_app, size)
    assert decode_entry_bundle(full.data) == entries[:256]
    partial = auditor.get(f"{TLOG}/tile/entries/001.p/{size - 256}")
    assert decode_entry_bundle(partial.data) == entries[256:size]
    leaves = _split(client.get(f"{TLOG}/tile/0/001.p/{size - 256}").data)
    assert [hash_leaf(e) for e in decode_entry_bundle(partial.data)] == leaves
    assert auditor.get(f"{TLOG}/tile/entries/001.p/{size - 255}").status_code == 404
    assert auditor.get(f"{TLOG}/tile/entries/001.p/0").status_code == 400
    # The auditor's reads are audited, as every auditor read is; the agency's try as a refusal.
    events = [json.loads(e) for e in _entries(tlog_app, 10**9)[size:]]
    assert "auditor.refused" in [e["event"] for e in events]
    assert any(e["event"] == "auditor.export" and "tile/entries/000" in e.get("reason", "") for e in events)


# --- the monitor ----------------------------------------------------------------------------------


def _verifier(app) -> NoteVerifier:  # type: ignore[no-untyped-def]
    return NoteVerifier.parse(app.extensions["gateway"].checkpoints.vkey)


def _fetch(app, tamper=None):  # type: ignore[no-untyped-def]
    """The monitor's HTTP call answered by the Flask test client, optionally altered by ``tamper(path, body)``."""
    client = app.test_client()

    def fetch(url: str, headers):  # type: ignore[no-untyped-def]
        path = urlsplit(url).path
        answer = client.get(path, headers=dict(headers))
        body = answer.get_data()
        return answer.status_code, tamper(path, body) if tamper else body

    return fetch


def _monitor(app, **kwargs) -> Monitor:  # type: ignore[no-untyped-def]
    tamper = kwargs.pop("tamper", None)
    return Monitor(f"http://gateway.test{TLOG}", _verifier(app), fetch=_fetch(app, tamper), **kwargs)


def test_the_monitor_catches_up_with_a_live_log_and_follows_it_as_it_grows(sqlite_app, dev_pki, tmp_path):
    (tmp_path / "monitor").mkdir()
    state = tmp_path / "monitor" / "state.json"
    first = _grow(sqlite_app, 600)
    progress: list[tuple[int, int]] = []
    checked = follow(_monitor(sqlite_app, progress=lambda done, total: progress.append((done, total))), state)
    assert checked.size == first and checked.previous is None and "first checkpoint" in checked.line()
    assert progress[-1][0] == progress[-1][1] == checked.tiles == len(tiles_to_follow(0, first))
    saved = load_state(state)
    assert (
        saved is not None
        and saved.size == first
        and saved.root == root_hash(LeafHashes.of_entries(_entries(sqlite_app, first)), first)
    )
    assert open_checkpoint(json.loads(state.read_text())["checkpoint"], _verifier(sqlite_app)).size == first
    assert [p.name for p in state.parent.iterdir()] == ["state.json"]  # no temporary file left behind

    second = _grow(sqlite_app, 300)
    token = _auditor(sqlite_app, dev_pki).token()
    checked = follow(_monitor(sqlite_app, token=token, check_entries=True), state)
    assert checked.previous is not None and checked.previous.size == first and checked.size == second
    assert f"consistent with {first} ✓" in checked.line()
    assert checked.entries == second - (first // 256) * 256  # every entry of the tiles it gained
    again = follow(_monitor(sqlite_app), state)
    assert again.size >= second and load_state(state).size == again.size  # type: ignore[union-attr]


def test_the_monitor_refuses_a_second_log_with_the_same_key_as_inconsistent(sqlite_app, dev_pki, tmp_path):
    state = tmp_path / "monitor.json"
    _grow(sqlite_app, 300, label="honest")
    seen = follow(_monitor(sqlite_app), state)

    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    from gateway.store import upgrade

    upgrade(other_url)
    forked = create_app(make_config(other_url, dev_pki, auditors=(NOIVU,)))  # the same keys and name
    try:
        register_agencies(forked.extensions["gateway"], dev_pki)
        _grow(forked, 400, label="rewritten")
        assert forked.extensions["gateway"].checkpoints.vkey == sqlite_app.extensions["gateway"].checkpoints.vkey
        with pytest.raises(NotConsistent, match="rewritten"):
            follow(_monitor(forked), state)
        assert load_state(state) == seen.state  # what it saw is kept, as evidence
        # The same log rolled back: a smaller tree after a larger one.
        save_state(state, MonitorState(seen.origin, 10**6, seen.root))
        with pytest.raises(NotConsistent, match="rolled back"):
            follow(_monitor(sqlite_app), state)
    finally:
        forked.extensions["gateway"].db.dispose()


def test_the_monitor_refuses_tiles_and_entries_that_do_not_hash_to_the_checkpoint(sqlite_app, dev_pki, tmp_path):
    size = _grow(sqlite_app, 600)
    token = _auditor(sqlite_app, dev_pki).token()

    def flip(target: str):  # type: ignore[no-untyped-def]
        def tamper(path: str, body: bytes) -> bytes:
            return body[:40] + bytes([body[40] ^ 1]) + body[41:] if path.endswith(target) else body

        return tamper

    # A full level-0 tile, not needed for the root: caught by its hash in the level-1 tile.
    with pytest.raises(TilesInvalid, match="tile/0/000 does not hash"):
        _monitor(sqlite_app, tamper=flip("/tile/0/000")).check(None)
    # The rightmost partial tile: the root does not come out.
    with pytest.raises(TilesInvalid, match="root"):
        _monitor(sqlite_app, tamper=flip(f"/tile/0/002.p/{size - 512}")).check(None)
    # An entry changed in its bundle.
    with pytest.raises(TilesInvalid, match="entry 0 does not hash"):
        _monitor(sqlite_app, token=token, check_entries=True, tamper=flip("/tile/entries/000")).check(None)
    # Entry bundles are not for anyone.
    with pytest.raises(AccessRefused):
        _monitor(sqlite_app, token="not-a-token", check_entries=True).check(None)
    assert _monitor(sqlite_app, token=token, check_entries=True).check(None).entries == size


def test_the_monitor_refuses_a_checkpoint_with_a_bad_signature(sqlite_app, tmp_path):
    _grow(sqlite_app, 5)
    state = tmp_path / "monitor.json"
    other = NoteVerifier.parse(NoteSigner(_verifier(sqlite_app).name, Ed25519PrivateKey.generate()).vkey)
    with pytest.raises(CheckpointRefused, match="does not verify"):
        follow(Monitor(f"http://gateway.test{TLOG}", other, fetch=_fetch(sqlite_app)), state)

    def resized(path: str, body: bytes) -> bytes:
        if not path.endswith("/checkpoint"):
            return body
        origin, size, rest = body.decode().split("\n", 2)
        return f"{origin}\n{int(size) + 1}\n{rest}".encode()

    with pytest.raises(CheckpointRefused):
        follow(_monitor(sqlite_app, tamper=resized), state)
    assert not state.exists()


def test_the_monitor_applies_the_witness_policy_quorum(sqlite_app, tmp_path):
    _grow(sqlite_app, 5)
    vkey = sqlite_app.extensions["gateway"].checkpoints.vkey
    witness = CosignatureSigner("witness.test/w1", Ed25519PrivateKey.generate())
    none = WitnessPolicy.parse(f"log {vkey}\nquorum none\n")
    assert _monitor(sqlite_app, policy=none).check(None).size > 0
    needs_w1 = WitnessPolicy.parse(f"log {vkey}\nwitness w1 {witness.vkey}\nquorum w1\n")
    with pytest.raises(CheckpointRefused, match="quorum"):
        _monitor(sqlite_app, policy=needs_w1).check(None)


def test_gateway_audit_monitor_command_against_a_real_server(sqlite_app, dev_pki, tmp_path):
    server = LoopbackServer()
    server.serve(sqlite_app)
    state, vkey = tmp_path / "monitor.json", sqlite_app.extensions["gateway"].checkpoints.vkey
    runner = CliRunner()
    try:
        first = _grow(sqlite_app, 300)
        result = runner.invoke(main, ["audit", "monitor", server.base, "--vkey", vkey, "--state", str(state), "--once"])
        assert result.exit_code == 0, result.output
        assert f"size {first} root " in result.output and "✓" in result.output
        assert "fetched tiles" not in result.stdout  # progress goes to standard error

        second = _grow(sqlite_app, 10)
        entries = ["--entries", "--token", _auditor(sqlite_app, dev_pki).token()]
        result = runner.invoke(
            main,
            ["audit", "monitor", f"{server.base}{TLOG}", "--vkey", vkey, "--state", str(state), "--json", *entries],
        )
        assert result.exit_code == 0, result.output
        line = json.loads(result.stdout.strip().splitlines()[-1])
        assert line["verdict"] == "consistent" and line["previous_size"] == first and line["size"] == second
        assert line["entries"] > 0

        forged = json.loads(state.read_text())
        forged["root"] = base64.b64encode(bytes(32)).decode()
        state.write_text(json.dumps(forged))
        result = runner.invoke(main, ["audit", "monitor", server.base, "--vkey", vkey, "--state", str(state)])
        assert result.exit_code == 1
        assert "is not consistent with what this monitor saw before" in result.output

        result = runner.invoke(
            main, ["audit", "monitor", server.base, "--entries", "--vkey", vkey, "--state", str(state)]
        )
        assert result.exit_code == 2 and "--token" in result.output
    finally:
        server.stop()
    result = runner.invoke(main, ["audit", "monitor", server.base, "--vkey", vkey, "--state", str(tmp_path / "s.json")])
    assert result.exit_code == 3 and "retry" in result.output


def test_a_bad_signature_fails_the_command_and_says_so(sqlite_app, tmp_path):
    server = LoopbackServer()
    server.serve(sqlite_app)
    try:
        _grow(sqlite_app, 3)
        other = NoteSigner(_verifier(sqlite_app).name, Ed25519PrivateKey.generate()).vkey
        result = CliRunner().invoke(
            main, ["audit", "monitor", server.base, "--vkey", other, "--state", str(tmp_path / "s.json"), "--once"]
        )
    finally:
        server.stop()
    assert result.exit_code == 1 and "does not verify" in result.output
    assert not (tmp_path / "s.json").exists()
