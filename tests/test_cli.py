"""The operator's command line: init, keys, agencies, sign and verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from tests.support import sample


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'gw.db'}")
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # init writes gateway.toml and serve var/serving.json here
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_init_demo_registers_agencies_and_lists_them_as_table_and_json(env):
    code, out = run("init", "--demo")
    assert code == 0 and "000.00.04.H29" in out
    code, out = run("agency", "list")
    assert code == 0 and out.splitlines()[0].split() == [
        "CODE",
        "NAME",
        "ENABLED",
        "ADAPTER",
        "MAY_SEND_TO",
        "EXPIRING_CERTIFICATES",
    ]
    code, out = run("agency", "list", "--json")
    assert [a["code"] for a in json.loads(out)][:2] == ["000.00.00.H29", "000.00.04.H29"]
    code, out = run("init", "--demo")  # idempotent
    assert code == 0


def test_keys_init_refuses_to_overwrite_without_force(env):
    assert run("keys", "init")[0] == 0
    code, out = run("keys", "init")
    assert code != 0 and "--force" in out
    (env / "keys" / "citizen-id-pepper.key").unlink()  # an older keys/ folder gains what is new, nothing else
    seal_before = (env / "keys" / "gateway-seal.crt").read_bytes()
    code, out = run("keys", "init")
    assert code == 0 and "citizen-id-pepper.key" in out and "gateway-seal" not in out
    assert (env / "keys" / "gateway-seal.crt").read_bytes() == seal_before
    assert run("keys", "init", "--force")[0] == 0
    assert not list((env / "keys").glob("*.key")) or all(
        (p.stat().st_mode & 0o777) == 0o600 for p in (env / "keys").glob("*.key")
    )


def test_agency_add_show_disable(env):
    run("init", "--demo")
    code, out = run("keys", "agency", "H55.242", "--name", "Sở Tư pháp")
    assert code == 0
    keys = env / "keys" / "agencies" / "H55.242"
    code, out = run(
        "agency",
        "add",
        "H55.242",
        "--name",
        "Sở Tư pháp",
        "--cert",
        str(keys / "signing.crt"),
        "--client-key",
        str(keys / "client.pub"),
        "--may-send-to",
        "000.00.*",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["form"] == "decision20"
    code, out = run("agency", "show", "H55.242")
    assert "may_send_to: ['000.00.*']" in out and "sha256=" in out
    assert run("agency", "disable", "H55.242") == (0, "H55.242 disabled\n")
    assert json.loads(run("agency", "show", "H55.242", "--json")[1])["enabled"] is False


def test_agency_add_explains_bad_input(env):
    run("init", "--demo")
    keys = env / "keys" / "agencies" / "000.00.04.H29"
    code, out = run(
        "agency",
        "add",
        "not-a-code",
        "--name",
        "x",
        "--cert",
        str(keys / "signing.crt"),
        "--client-key",
        str(keys / "client.pub"),
    )
    assert code != 0 and "QCVN 102:2016" in out
    code, out = run(
        "agency",
        "add",
        "000.00.77.H29",
        "--name",
        "x",
        "--cert",
        str(keys / "signing.crt"),
        "--client-key",
        str(keys / "client.pub"),
        "--adapter",
        "inbx",
    )
    assert code != 0 and "Did you mean 'inbox'" in out
    code, out = run("agency", "show", "000.00.78.H29")
    assert code != 0 and "gateway agency list" in out


def test_sign_then_verify_offline_and_tampering_is_caught(env):
    run("init", "--demo")
    keys = env / "keys" / "agencies" / "000.00.00.H29"
    unsigned, signed = env / "doc.edxml", env / "doc.signed.edxml"
    unsigned.write_bytes(sample("cong-van.edxml"))
    code, _ = run(
        "sign",
        str(unsigned),
        "--key",
        str(keys / "signing.key"),
        "--cert",
        str(keys / "signing.crt"),
        "--out",
        str(signed),
    )
    assert code == 0
    code, out = run("verify", str(signed), "--json")
    assert code == 1 and json.loads(out)["code"] == "sender-unbound"  # nothing ties the signer to From
    code, out = run("verify", str(signed), "--sender-cert", str(keys / "signing.crt"), "--json")
    assert code == 0 and json.loads(out)["verdict"] == "valid"
    signed.write_bytes(signed.read_bytes().replace("Quận 4".encode(), "Quận 9".encode()))
    result = CliRunner().invoke(main, ["verify", str(signed)])
    assert result.exit_code == 1 and "signature-invalid" in result.output


def test_client_assertion_is_a_signed_jwt_for_the_token_endpoint(env, monkeypatch):
    import jwt

    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://gw.example")
    run("init", "--demo")
    code, out = run(
        "client",
        "assertion",
        "--agency",
        "000.00.00.H29",
        "--key",
        str(env / "keys" / "agencies" / "000.00.00.H29" / "client.key"),
    )
    assert code == 0
    claims = jwt.decode(out.strip(), options={"verify_signature": False})
    assert claims["aud"] == "https://gw.example/oauth/token" and claims["iss"] == claims["sub"] == "000.00.00.H29"


def test_bad_configuration_is_reported_not_crashed(env, monkeypatch):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "oracle://nope")
    code, out = run("agency", "list")
    assert code != 0 and "GATEWAY_DATABASE_URL" in out


def test_signing_with_a_certificate_as_key_or_another_agencys_certificate_says_what_to_do(env):
    """Issue 11: `gateway sign --key CERT` ended in a traceback; a mismatched pair signed silently."""
    run("init", "--demo")
    agencies = env / "keys" / "agencies"
    unsigned = env / "doc.edxml"
    unsigned.write_bytes(sample("cong-van.edxml"))
    hcm, q4 = agencies / "000.00.00.H29", agencies / "000.00.04.H29"
    for key, cert, says in [
        (hcm / "signing.crt", hcm / "signing.crt", "not a PEM private key"),
        (hcm / "signing.key", hcm / "signing.key", "not a PEM certificate"),
        (hcm / "signing.key", q4 / "signing.crt", "is not the certificate of"),
    ]:
        result = CliRunner().invoke(main, ["sign", str(unsigned), "--key", str(key), "--cert", str(cert)])
        assert result.exit_code != 0 and says in result.output and "Traceback" not in result.output


def test_retrying_routes_that_do_not_exist_fails_and_names_them(env):
    run("init", "--demo")
    result = CliRunner().invoke(main, ["deliveries", "retry", "17", "18"])
    assert result.exit_code == 1 and "no such route: 17, 18" in result.output


def test_serve_on_a_busy_port_is_one_clear_line(env):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        run("init", "--demo")
        result = CliRunner().invoke(main, ["serve", "--port", str(port), "--delivery-workers", "0"])
    assert result.exit_code != 0 and f"cannot listen on 127.0.0.1:{port}" in result.output and "--port" in result.output


def test_audit_export_takes_a_period_like_the_http_and_workbench_exports(env, tmp_path):
    """Issue 11: the CLI export took only entry indices while the others take dates."""
    from datetime import datetime, timedelta

    run("init", "--demo")
    today = datetime.now().date()
    out = tmp_path / "today.zip"
    code, output = run(
        "audit",
        "export",
        "--since",
        str(today - timedelta(days=1)),
        "--until",
        str(today + timedelta(days=1)),
        "--out",
        str(out),
    )
    assert code == 0 and out.is_file(), output
    code, vkey = run("audit", "vkey")
    code, verdict = run("audit", "verify", str(out), "--vkey", vkey.strip())
    assert code == 0 and verdict.startswith("VALID")
    result = CliRunner().invoke(
        main, ["audit", "export", "--since", "2001-01-01", "--until", "2001-01-02", "--out", str(tmp_path / "x.zip")]
    )
    assert result.exit_code != 0 and "no audit entries in that period" in result.output
    result = CliRunner().invoke(main, ["audit", "export", "--since", "yesterday", "--out", str(tmp_path / "y.zip")])
    assert result.exit_code != 0 and "ISO 8601" in result.output


def test_the_demos_settings_file_never_reaches_a_production_deployment(env, monkeypatch):
    """Review finding: gateway.toml carried the demo (or a production database) into the next init."""
    monkeypatch.setenv("GATEWAY_DEMO", "true")
    assert run("init", "--demo")[0] == 0
    settings = (env / "gateway.toml").read_text()
    assert "demo = true" in settings and oct((env / "gateway.toml").stat().st_mode)[-3:] == "600"
    monkeypatch.delenv("GATEWAY_DEMO")
    code, out = run("init")
    assert code != 0 and "the demo's" in out and "GATEWAY_CONFIG" in out


def test_a_production_init_writes_no_settings_file_and_no_password_is_ever_written(env, monkeypatch):
    assert run("init")[0] == 0 or True  # production keys may be missing; the point is what it writes
    assert not (env / "gateway.toml").exists()
    from gateway import local_deployment

    written = local_deployment.write_settings(
        {"demo": True, "database_url": "postgresql+psycopg://gw:S3cret@db/gw", "keys_dir": "keys"}, {}
    )
    assert written is not None and "S3cret" not in written.read_text() and "database_url" not in written.read_text()


def _until_exec(pid: int) -> None:
    """A child just started can still show its parent's command line for a moment."""
    import time
    from pathlib import Path

    for _ in range(200):
        if b"gateway.cli" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        time.sleep(0.01)


def test_a_stale_serving_file_names_no_server(env):
    import subprocess
    import sys

    from gateway import local_deployment

    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "gateway.cli", "serve"])  # live
    _until_exec(server.pid)
    try:
        (env / "var").mkdir(exist_ok=True)
        (env / "var" / "serving.json").write_text(
            json.dumps({"public_url": "http://127.0.0.1:8085", "pid": server.pid})
        )
        assert local_deployment.served_url({}) == "http://127.0.0.1:8085"
    finally:
        server.kill()
        server.wait()
    local_deployment.record_served("http://127.0.0.1:8085", "127.0.0.1", 8085)
    assert local_deployment.served_url({}) is None  # this process lives, but it is no gateway
    (env / "var" / "serving.json").write_text('{"public_url": "http://127.0.0.1:8085", "pid": 999999999}')
    assert local_deployment.served_url({}) is None
    assert local_deployment.served_url({"GATEWAY_CONFIG": "x.toml"}) is None


def test_run_sh_never_puts_the_demo_into_a_production_settings_file(env, monkeypatch):
    (env / "gateway.toml").write_text('demo = false\ndatabase_url = "sqlite:///prod.db"\nkeys_dir = "prodkeys"\n')
    monkeypatch.setenv("GATEWAY_DEMO", "true")
    code, out = run("init", "--demo")
    assert code != 0 and "not the demo" in out and not (env / "prodkeys").exists()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://gw@db/gw?password=S3cret",
        "postgresql+psycopg:///gw?host=db&user=gw&password=S3cret",
        "redis://localhost:6379/0?password=S3cret",
    ],
)
def test_no_password_reaches_the_settings_file_even_in_a_query(env, url):
    from gateway import local_deployment

    written = local_deployment.write_settings({"demo": True, "database_url": url, "redis_url": url}, {})
    assert written is not None and "S3cret" not in written.read_text()


def test_the_settings_file_is_never_written_through_a_link_and_del_is_escaped(env):
    import tomllib

    from gateway import local_deployment

    (env / "gateway.toml").symlink_to(env / "elsewhere.toml")
    assert local_deployment.write_settings({"demo": True}, {}) is None and not (env / "elsewhere.toml").exists()
    (env / "gateway.toml").unlink()
    written = local_deployment.write_settings({"demo": True, "keys_dir": "ke\x7fys"}, {})
    assert tomllib.loads(written.read_text())["keys_dir"] == "ke\x7fys"


@pytest.mark.parametrize("pid", [0, -1, 1, True, "12", None])
def test_a_serving_file_with_an_odd_or_foreign_pid_names_no_server(env, pid):
    import os

    from gateway import local_deployment

    (env / "var").mkdir(exist_ok=True)
    (env / "var" / "serving.json").write_text(json.dumps({"public_url": "http://elsewhere.example:9", "pid": pid}))
    assert local_deployment.served_url({}) is None
    foreign = os.getppid()  # alive, but not a gateway
    (env / "var" / "serving.json").write_text(json.dumps({"public_url": "http://elsewhere.example:9", "pid": foreign}))
    assert local_deployment.served_url({}) is None or b"gateway" in Path(f"/proc/{foreign}/cmdline").read_bytes()


def test_a_process_run_from_a_folder_called_gateway_is_not_taken_for_the_server(tmp_path):
    """Newcomer finding: any command line holding "gateway" (a checkout's folder name) counted as the server."""
    import subprocess
    import sys

    from gateway.local_deployment import _is_gateway

    folder = tmp_path / "gateway"
    folder.mkdir()
    sleeping = "import time; time.sleep(30)"
    other = subprocess.Popen([sys.executable, "-c", sleeping, str(folder / "anything")], cwd=folder)
    server = subprocess.Popen([sys.executable, "-c", sleeping, "gateway.cli", "serve"])
    _until_exec(server.pid)
    try:
        assert not _is_gateway(other.pid)
        assert _is_gateway(server.pid)
    finally:
        for p in (other, server):
            p.kill()
            p.wait()


def test_vxp_receive_says_which_settings_it_needs_and_agency_add_which_agencies_need_no_client_key(env):
    code, out = run("init", "--demo")
    assert code == 0
    code, out = run("vxp", "receive", "--once")
    assert code == 1 and "GATEWAY_VXP_ENDPOINT" in out and "GATEWAY_VXP_SECRET_FILE" in out
    cert = env / "keys" / "agencies" / "000.00.04.H29" / "signing.crt"
    code, out = run("agency", "add", "000.00.00.G09", "--name", "Bộ X", "--cert", str(cert))
    assert code == 1 and "--client-key" in out and "--adapter vxp" in out


def test_vxp_credentials_are_refused_for_an_agency_reached_through_the_axis(env):
    assert run("init", "--demo")[0] == 0
    (env / "axis.secret").write_text("s")
    taken = env / "keys" / "agencies" / "000.00.04.H29" / "signing.crt"
    code, out = run(
        "agency", "add", "000.00.00.G08", "--name", "Bộ Y", "--cert", str(taken), "--client-key", str(taken)
    )
    assert code == 1 and "registered to 000.00.04.H29" in out  # a clear refusal, not a database error
    assert run("keys", "agency", "000.00.00.G09")[0] == 0
    cert = env / "keys" / "agencies" / "000.00.00.G09" / "signing.crt"
    settings = [f"--adapter-setting={k}" for k in ("endpoint=http://127.0.0.1:9/X", "systemid=hcm", "from_code=X")]
    code, out = run(
        "agency",
        "add",
        "000.00.00.G09",
        "--name",
        "Bộ X",
        "--cert",
        str(cert),
        "--adapter",
        "vxp",
        *settings,
        f"--adapter-setting=secret_file={env / 'axis.secret'}",
    )
    assert code == 0, out
    code, out = run("agency", "vxp-credentials", "000.00.00.G09")
    assert code == 1 and "national axis" in out


def test_two_servers_recording_where_they_serve_at_once_do_not_trip_over_each_other(env):
    """Full-suite finding: two `gateway serve` in one folder shared var/serving.tmp; one crashed."""
    import threading

    from gateway import local_deployment

    errors: list[BaseException] = []

    def record(port: int) -> None:
        try:
            for _ in range(200):
                local_deployment.record_served(f"http://127.0.0.1:{port}", "127.0.0.1", port)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(p,)) for p in (8101, 8102)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (env / "var" / "serving.json").stat().st_mode & 0o777 == 0o644
