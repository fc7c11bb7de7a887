"""What a deployment on this machine leaves for the next command: its settings file and where it is served.

A new user ran ``./run.sh --port 8085`` and a second shell's ``gateway`` command still believed in
port 8080 and demo mode off (issue 11): every command read only its own environment.  So:

- ``gateway init --demo`` (what ``./run.sh`` runs) writes ``gateway.toml`` in the working directory
  (unless ``GATEWAY_CONFIG`` names another file or it exists), holding the demo's settings; every
  later command run there reads it.  A production ``gateway init`` writes none and refuses a folder
  holding the demo's file, so the demo's database and demo mode never leak into a deployment; a
  database URL with a password is never written down.
- ``gateway serve`` records the URL it serves at in ``var/serving.json``; a command that has no
  public URL of its own (no ``GATEWAY_PUBLIC_URL``, none in the file, no ``GATEWAY_CONFIG``) uses
  that one while that server runs.

Only the real process environment looks at these files: a test that hands :meth:`Config.load` its
own environment gets exactly that environment.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.store.durable import write_durably

SETTINGS_FILE = Path("gateway.toml")
SERVING_FILE = Path("var") / "serving.json"
# What `gateway init` writes down: the settings that decide which deployment a command talks to.
RECORDED = ("demo", "database_url", "keys_dir", "public_url", "redis_url")


def settings_file(environ: Mapping[str, str]) -> Path | None:
    """``GATEWAY_CONFIG``, else the ``gateway.toml`` that ``init`` wrote here, else none."""
    if environ.get("GATEWAY_CONFIG"):
        return Path(environ["GATEWAY_CONFIG"])
    return SETTINGS_FILE if SETTINGS_FILE.is_file() else None


def _file_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    path = settings_file(environ)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")) if path is not None else {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}  # Config.load reports a broken file itself


def public_url_chosen(environ: Mapping[str, str]) -> bool:
    """Whether the operator named the public URL (environment or settings file) rather than left it to ``serve``."""
    return bool(environ.get("GATEWAY_PUBLIC_URL")) or "public_url" in _file_settings(environ)


def _is_true(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes", "on")


def demo_settings_here(environ: Mapping[str, str]) -> bool:
    """This folder's own gateway.toml (not one named by GATEWAY_CONFIG) is the demo's."""
    return not environ.get("GATEWAY_CONFIG") and _is_true(_file_settings(environ).get("demo"))


def production_settings_in_use(environ: Mapping[str, str]) -> bool:
    """The settings file in use names a deployment (a database or keys) that is not the demo's."""
    found = _file_settings(environ)
    names_one = any(found.get(name) for name in ("database_url", "keys_dir", "seal_key", "token_key"))
    return names_one and not _is_true(found.get("demo"))


def served_url(environ: Mapping[str, str]) -> str | None:
    """The URL of the ``gateway serve`` running from this folder, if one is."""
    if environ.get("GATEWAY_CONFIG"):
        return None  # an explicit settings file says where its deployment is
    try:
        found = json.loads(SERVING_FILE.read_text(encoding="utf-8"))
        url, pid = found.get("public_url"), found.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or not _is_gateway(pid):
            return None  # a stale file, from a server that stopped (its pid maybe reused since), names nothing
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return url if isinstance(url, str) else None


def _is_gateway(pid: int) -> bool:
    """The process is alive and (where /proc tells) is a `gateway serve` or the gunicorn it became."""
    os.kill(pid, 0)
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.parent.is_dir() or not Path("/proc/self").exists():
        return True
    args = [a.decode(errors="replace") for a in cmdline.read_bytes().split(b"\0") if a]
    names = {os.path.basename(a) for a in args}
    # Not "gateway" anywhere: a checkout folder is often called so, and any program run from it matched.
    serving = "serve" in args and ("gateway" in names or "gateway.cli" in args)
    return serving or "gunicorn" in names or "gateway.wsgi:app" in args


def record_served(public_url: str, host: str, port: int) -> None:
    SERVING_FILE.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two `gateway serve` started at once in one folder both wrote
    # var/serving.tmp, and the second rename found it gone (a fault test's cluster did exactly that).
    record = {"public_url": public_url, "host": host, "port": port, "pid": os.getpid()}
    write_durably(SERVING_FILE, (json.dumps(record) + "\n").encode("utf-8"), mode=0o644)


def url_for_listener(host: str, port: int) -> str:
    """The URL clients on this machine reach a listener at (a wildcard address means this host)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 - naming, not binding
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def _has_password(url: str) -> bool:
    """A password in the URL's user part or in its query (``?password=``, libpq's and redis's way)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL is not written either
        return True
    return parsed.password is not None or any("pass" in key.lower() for key in parsed.query)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007F")


def write_settings(values: Mapping[str, Any], environ: Mapping[str, str]) -> Path | None:
    """``gateway.toml`` with the given settings, unless a settings file is already in use or present."""
    if settings_file(environ) is not None or SETTINGS_FILE.is_symlink():  # never written through a link
        return None
    lines = [
        "# Written by `gateway init --demo` (./run.sh): the demo deployment in this folder. Not for production.",
        "# Every `gateway` command run here reads it; environment variables (GATEWAY_*) override it.",
        "# public_url: left out, `gateway serve --port N` serves at http://127.0.0.1:N and tells the other commands.",
        *(
            f"{name} = {_toml_value(values[name])}"
            for name in RECORDED
            if values.get(name) is not None and not (name.endswith("_url") and _has_password(str(values[name])))
        ),
    ]
    SETTINGS_FILE.touch(mode=0o600)
    SETTINGS_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return SETTINGS_FILE
