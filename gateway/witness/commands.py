"""``gateway witness``: make a witness key, show its verifier key, and serve the witness."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gateway.cli_support import emit, fail, json_option

DEFAULT_KEY = Path("witness/witness.key")
DEFAULT_STATE = Path("witness/state.db")


@click.group()
def witness() -> None:
    """Run a witness (C2SP tlog-witness) that cosigns another party's audit log checkpoints."""


def _name_option(f: Any) -> Any:
    return click.option(
        "--name", required=True, help="The witness's name, e.g. thanhtra.hochiminhcity.gov.vn/witness (no spaces)."
    )(f)


def _key_option(f: Any) -> Any:
    return click.option(
        "--key",
        "key_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_KEY,
        show_default=True,
        help="The witness's Ed25519 private key.",
    )(f)


def _signer(name: str, key_path: Path) -> Any:
    from gateway.keys import load_ed25519_key
    from gateway.witness.cosignature import CosignatureSigner

    if not key_path.is_file():
        fail(f"{key_path} does not exist: create it with `gateway witness init --name {name} --key {key_path}`")
    try:
        return CosignatureSigner(name, load_ed25519_key(key_path))
    except ValueError as exc:
        fail(str(exc))


@witness.command("init")
@_name_option
@_key_option
@json_option
def witness_init(name: str, key_path: Path, as_json: bool) -> None:
    """Create the witness key (never replaced) and print the verifier key to give the logs' operators."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.trust import pki
    from gateway.witness.cosignature import CosignatureSigner

    if key_path.exists():
        fail(f"{key_path} exists: a witness keeps its key for good (its cosignatures are checked with it)")
    try:
        signer = CosignatureSigner(name, Ed25519PrivateKey.generate())
    except ValueError as exc:
        fail(str(exc))
        return
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki.save_private_key(signer.private_key, key_path)
    emit({"key": str(key_path), "vkey": signer.vkey}, as_json, lambda r: f"wrote {r['key']}\nvkey {r['vkey']}")


@witness.command("vkey")
@_name_option
@_key_option
def witness_vkey(name: str, key_path: Path) -> None:
    """Print the witness's verifier key (for the gateway's GATEWAY_WITNESSES and for auditors' policies)."""
    click.echo(_signer(name, key_path).vkey)


@witness.command("serve")
@_name_option
@_key_option
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_STATE,
    show_default=True,
    help="The witness's own SQLite state (created if missing; back it up with the key).",
)
@click.option(
    "--log",
    "log_vkeys",
    multiple=True,
    required=True,
    help="A log to watch: its checkpoint verifier key (`gateway audit vkey` on the gateway). Repeatable.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
def witness_serve(
    name: str, key_path: Path, state_path: Path, log_vkeys: tuple[str, ...], host: str, port: int
) -> None:
    """Serve the witness: POST /add-checkpoint, GET /<sha256 of origin>/checkpoint."""
    from gateway.audit.checkpoint import AnyOfVerifiers, NoteVerifier
    from gateway.policy import Refusal
    from gateway.witness.app import create_witness_app
    from gateway.witness.protocol import Witness
    from gateway.witness.state import WitnessState

    signer = _signer(name, key_path)
    by_origin: dict[str, list[NoteVerifier]] = {}
    for vkey in log_vkeys:
        try:
            verifier = NoteVerifier.parse(vkey)
        except Refusal as refusal:
            fail(f"--log {vkey[:60]}…: {refusal.reason}")
            return
        by_origin.setdefault(verifier.name, []).append(verifier)
    logs = {origin: AnyOfVerifiers(tuple(keys)) for origin, keys in by_origin.items()}
    app = create_witness_app(Witness(signer, logs, WitnessState(state_path)))
    click.echo(f"witness {name} watching {', '.join(sorted(logs))} on http://{host}:{port}", err=True)
    click.echo(f"vkey {signer.vkey}", err=True)
    _run(app, host, port)


def _run(app: Any, host: str, port: int) -> None:
    """gunicorn in this process: one worker (the state is one SQLite file), a few threads."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": 4,
                "accesslog": "-",
                "control_socket_disable": True,
            }.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    try:
        _Server().run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            fail(f"the witness could not serve on {host}:{port}: is another process using that port?")
    sys.exit(0)
