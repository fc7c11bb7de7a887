"""A fresh embedded demo deployment served by ``gateway serve``, as every benchmark measures it.

SQLite in a temporary folder, development keys and demo agencies from ``gateway init --demo``, the
development CA's OCSP responder, CRL and TSA served by the gateway itself (as ``./run.sh`` does).
``code`` is the checkout to run: this one, or a worktree of the baseline revision.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, seconds: float = 40, path: str = "/readyz") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the gateway on port {port} did not become ready in {seconds:.0f} s")


class DemoDeployment:
    def __init__(self, code: Path = ROOT, *, workers: int = 2, settings: dict[str, str] | None = None) -> None:
        self.code = code
        self.home = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(code),
            "GATEWAY_DATABASE_URL": f"sqlite:///{self.home / 'gw.db'}",
            "GATEWAY_KEYS_DIR": str(self.home / "keys"),
            "GATEWAY_PUBLIC_URL": self.base,
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_DEMO": "true",
            **(settings or {}),
        }
        self.env.pop("GATEWAY_CONFIG", None)
        self.cli("init", "--demo", check=True)
        self.server = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port), "--workers", str(workers)],
            env=self.env,
            cwd=self.home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_ready(self.port)

    @property
    def database(self) -> Path:
        return self.home / "gw.db"

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args], env=self.env, cwd=self.home, capture_output=True, text=True
        )
        if check and done.returncode != 0:  # say why, not only that it failed
            raise RuntimeError(f"gateway {' '.join(args)} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done

    def stop(self) -> None:
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.server.kill()


def worktree(ref: str) -> Path:
    """A detached worktree of ``ref`` (the baseline), removed with :func:`remove_worktree`."""
    folder = Path(tempfile.mkdtemp(prefix="gateway-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=ROOT, check=True, capture_output=True)
    return folder


def remove_worktree(folder: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=False)
