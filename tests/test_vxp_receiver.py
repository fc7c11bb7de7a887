"""Documents from the national axis: the normal submission path as the sending agency, answered done or fail."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.routing.registry import NewAgency
from gateway.store.tables import audit_entries, documents, vxp_directory, vxp_received
from gateway.vxp.client import AxisClient
from gateway.vxp.dev_axis import Axis, AxisDocument, serving
from gateway.vxp.receiver import AxisReceiver
from tests.conftest import AgencyKeys
from tests.support import HCM, sample

MINISTRY = "000.00.00.G01"
SECRET = "issued-by-the-government-office"


@pytest.fixture
def ministry(svc, dev_pki, tmp_path):  # type: ignore[no-untyped-def]
    """An agency outside the city, reached through the axis: its certificate, no client key."""
    from gateway.trust import pki

    keys = AgencyKeys(MINISTRY, dev_pki.issue(MINISTRY, "Văn phòng Chính phủ"), pki.generate_key("ec"))
    secret = tmp_path / "axis.secret"
    secret.write_text(SECRET)
    settings = {"endpoint": "http://127.0.0.1:9/XrdAdapter", "systemid": "hcm", "secret_file": str(secret)}
    with svc.db.write() as conn:
        svc.registry.add(
            conn,
            NewAgency(
                code=MINISTRY,
                name="Văn phòng Chính phủ",
                client_public_key_pem="",
                certificates=[keys.signing.cert],
                adapter="vxp",
                adapter_settings={**settings, "from_code": HCM},
            ),
            svc.keys.trust,
        )
    return keys


def _from_ministry(keys: AgencyKeys, number: int = 1024) -> bytes:
    data = sample("cong-van.edxml").replace(b"000.00.00.H29", MINISTRY.encode())
    return keys.sign(data.replace(b"1024/UBND-VX</", f"{number}/UBND-VX</".encode()))


def _count(svc, table) -> int:  # type: ignore[no-untyped-def]
    with svc.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_document_from_the_axis_is_checked_like_any_submission_and_the_axis_told_done_or_fail(svc, ministry):
    axis = Axis()
    axis.register("hcm", SECRET, HCM)
    good = axis.deposit(MINISTRY, HCM, _from_ministry(ministry))
    forged = axis.deposit(MINISTRY, HCM, _from_ministry(ministry, 7).replace(b"<edXML:Subject>", b"<edXML:Subject>X"))
    with serving(axis) as endpoint:
        done = AxisReceiver(svc, AxisClient(endpoint, "hcm", SECRET)).run_once()
    assert (done.accepted, done.refused, done.answered, done.problems) == (1, 1, 2, 0)
    assert axis.documents[good].status == "done"
    assert axis.documents[forged].status == "fail" and "signature" in axis.documents[forged].status_desc
    with svc.db.read() as conn:
        stored = conn.execute(sa.select(documents.c.sender, documents.c.document_id)).all()
        events = [r.event for r in conn.execute(sa.select(audit_entries.c.event))]
    assert [s.sender for s in stored] == [MINISTRY]
    assert "document.accepted" in events and "document.refused" in events and events.count("vxp.answered") == 2


def test_a_lost_answer_is_given_again_and_nothing_is_submitted_twice(svc, ministry):
    axis = Axis(refuse_updates=True)
    axis.register("hcm", SECRET, HCM)
    doc = axis.deposit(MINISTRY, HCM, _from_ministry(ministry))
    with serving(axis) as endpoint:
        receiver = AxisReceiver(svc, AxisClient(endpoint, "hcm", SECRET))
        first = receiver.run_once()
        assert (first.accepted, first.answered, first.problems) == (1, 0, 1)
        assert axis.documents[doc].status == "inbox"  # the axis never heard
        axis.refuse_updates = False
        again = AxisReceiver(svc, AxisClient(endpoint, "hcm", SECRET)).run_once()  # as after a restart
    assert (again.accepted, again.refused, again.answered) == (0, 0, 1)
    assert axis.documents[doc].status == "done"
    assert _count(svc, documents) == 1 and _count(svc, vxp_received) == 1


def test_the_axis_down_is_tried_again_next_pass(svc, ministry):
    axis = Axis(down=True)
    axis.register("hcm", SECRET, HCM)
    axis.deposit(MINISTRY, HCM, _from_ministry(ministry))
    with serving(axis) as endpoint:
        receiver = AxisReceiver(svc, AxisClient(endpoint, "hcm", SECRET))
        assert receiver.run_once().problems == 2  # both lists
        axis.down = False
        assert receiver.run_once().accepted == 1


def test_an_agency_reached_through_the_axis_has_no_client_key_and_cannot_log_in(svc, ministry):
    from gateway.policy import Refusal

    with svc.db.read() as conn:
        agency = svc.registry.get(conn, MINISTRY)
    assert agency is not None and agency.public_view()["client_key_id"] is None
    with pytest.raises(Refusal, match="client key"):
        svc.client_auth.verify(ministry.assertion(), MINISTRY)


def test_only_an_agency_reached_through_the_axis_may_be_registered_without_a_client_key(svc, dev_pki):
    from gateway.policy import Refusal

    keys = dev_pki.issue("000.00.00.G02", "Bộ Nội vụ")
    with pytest.raises(Refusal, match="client public key"), svc.db.write() as conn:
        svc.registry.add(
            conn,
            NewAgency(code="000.00.00.G02", name="Bộ Nội vụ", client_public_key_pem="", certificates=[keys.cert]),
            svc.keys.trust,
        )


def _unit(code: str, name: str, version: int, *, deleted: bool = False) -> dict[str, object]:
    return {
        "code": code,
        "id": version,
        "mail": f"{code}@example.gov.vn",
        "name": name,
        "pid": "000.00.00.G00",
        "version": version,
        "centerCode": "",
        "deleted": deleted,
        "modifyDate": f"0{version}/12/2026",
        "isAgency": True,
    }


def test_the_directory_sync_shows_additions_renames_and_deletions_then_applies_them(env_axis):
    from click.testing import CliRunner

    from gateway.cli import main

    axis, svc = env_axis
    axis.agencies = [
        {"code": "000.00.00.G01", "id": 1, "mail": "", "name": "Văn phòng Chính phủ", "pid": "", "oldCode": ""}
    ]
    axis.agencies_qd20 = [
        {"code": "000.00.00.G01", "id": 1, "mail": "", "name": "Văn phòng Chính phủ", "code102": "G01"}
    ]
    axis.units = [_unit("000.00.00.G01", "Văn phòng Chính phủ", 1), _unit("000.00.00.G02", "Bộ Nội vụ", 1)]

    def sync(*args: str) -> dict:  # type: ignore[type-arg]
        import json

        result = CliRunner().invoke(main, ["agency", "sync-vxp", "--json", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.output))

    shown = sync()
    assert [(c["kind"], c["code"]) for c in shown["changes"]] == [
        ("added", "000.00.00.G01"),
        ("added", "000.00.00.G02"),
    ]
    assert sync()["changes"] == shown["changes"]  # only shown: nothing written
    sync("--apply")
    assert sync()["changes"] == []
    with svc.db.read() as conn:
        stored = {r.code: r for r in conn.execute(sa.select(vxp_directory))}
    assert stored["000.00.00.G01"].code102 == "G01" and stored["000.00.00.G02"].name == "Bộ Nội vụ"
    axis.units = [
        _unit("000.00.00.G01", "Văn phòng Chính phủ (VPCP)", 2),
        _unit("000.00.00.G02", "Bộ Nội vụ", 2, deleted=True),
        _unit("000.00.00.G03", "Bộ Tài chính", 1),
    ]
    axis.agencies = axis.agencies_qd20 = []
    changed = sync("--apply")["changes"]
    assert [(c["kind"], c["code"]) for c in changed] == [
        ("renamed", "000.00.00.G01"),
        ("changed", "000.00.00.G01"),  # code102 no longer listed by the QD20 call
        ("deleted", "000.00.00.G02"),
        ("added", "000.00.00.G03"),
    ]
    with svc.db.read() as conn:
        events = [
            r.body
            for r in conn.execute(
                sa.select(audit_entries.c.body).where(audit_entries.c.event == "vxp.directory-synced")
            )
        ]
    assert len(events) == 2


@pytest.fixture
def env_axis(svc, dev_pki, database_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The CLI pointed at this test's database and at a served axis double."""
    axis = Axis()
    axis.register("hcm", SECRET, HCM)
    secret = tmp_path / "axis.secret"
    secret.write_text(SECRET)
    with serving(axis) as endpoint:
        for name, value in {
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_KEYS_DIR": str(dev_pki.keys_dir),
            "GATEWAY_DEMO": "true",
            "GATEWAY_PUBLIC_URL": svc.config.public_url,
            "GATEWAY_AUDIT_STATE_DIR": str(svc.config.published_checkpoints_dir),
            "GATEWAY_VXP_ENDPOINT": endpoint,
            "GATEWAY_VXP_SYSTEMID": "hcm",
            "GATEWAY_VXP_SECRET_FILE": str(secret),
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
        monkeypatch.chdir(tmp_path)
        yield axis, svc


def _to_ministry(dev_pki, number: int = 1031) -> bytes:  # type: ignore[no-untyped-def]
    """HCM's letter with the Ministry in place of one of its city recipients."""
    data = sample("cong-van.edxml").replace(b"000.00.31.H29", MINISTRY.encode())
    return dev_pki.agencies[HCM].sign(data.replace(b"1024/UBND-VX</", f"{number}/UBND-VX</".encode()))


def test_the_worker_delivers_to_an_agency_reached_through_the_axis(app, svc, ministry, dev_pki):
    """Review of the demo: the worker died building this recipient's adapter (no client key to load)."""
    from tests.support import GatewayClient

    axis = Axis()
    axis.register("hcm", SECRET, HCM)
    letter = _to_ministry(dev_pki)
    with serving(axis) as endpoint:
        with svc.db.read() as conn:
            settings = dict(svc.registry.get(conn, MINISTRY).adapter_settings)  # type: ignore[union-attr]
        with svc.db.write() as conn:
            svc.registry.set_adapter(conn, MINISTRY, "vxp", {**settings, "endpoint": endpoint})
        sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
        assert sender.submit(letter).status_code == 202
        worker = svc.delivery_worker()
        for _ in range(3):
            worker.run_once()
    sent = [d for d in axis.documents.values() if d.sender == HCM]
    assert len(sent) == 1 and sent[0].to == [MINISTRY] and sent[0].content == letter


def test_a_recipient_whose_adapter_cannot_be_built_is_postponed_and_the_worker_lives(app, svc, ministry, dev_pki):
    from gateway.store.tables import agencies, routes
    from tests.support import GatewayClient

    sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
    assert sender.submit(_to_ministry(dev_pki, 1032)).status_code == 202
    with svc.db.write() as conn:  # a registration damaged behind the registry's back
        conn.execute(sa.update(agencies).where(agencies.c.code == MINISTRY).values(adapter_settings={"bogus": 1}))
    svc.delivery_worker().run_once()  # no exception
    with svc.db.read() as conn:
        error = conn.execute(sa.select(routes.c.last_error).where(routes.c.recipient == MINISTRY)).scalar_one()
    assert "cannot be built" in error


def test_entries_the_tables_cannot_hold_are_skipped_and_the_next_one_is_still_taken(svc, ministry):
    """Review: a 100-character sender stopped the receiver for good on PostgreSQL."""
    axis = Axis()
    axis.register("hcm", SECRET, HCM)
    for bad in ({"docId": "d1", "from": "Z" * 100}, {"docId": "x" * 100, "from": MINISTRY}, {"docId": None}):
        axis.documents[str(bad.get("docId"))] = AxisDocument(
            str(bad.get("docId")), str(bad.get("from")), [HCM], "edoc", b"<x/>"
        )
    good = axis.deposit(MINISTRY, HCM, _from_ministry(ministry))
    with serving(axis) as endpoint:
        done = AxisReceiver(svc, AxisClient(endpoint, "hcm", SECRET)).run_once()
    assert done.accepted == 1 and axis.documents[good].status == "done"


def test_the_axis_cannot_have_a_document_taken_in_as_a_city_agency(svc, ministry, dev_pki):
    """Review: from = a city agency was accepted as that agency's new document."""
    axis = Axis()
    axis.register("hcm", SECRET, HCM)
    forged = axis.deposit(HCM, HCM, dev_pki.agencies[HCM].sign(sample("cong-van.edxml")))
    with serving(axis) as endpoint:
        done = AxisReceiver(svc, AxisClient(endpoint, "hcm", SECRET)).run_once()
    assert (done.accepted, done.refused) == (0, 1)
    assert axis.documents[forged].status == "fail" and "sender-not-via-axis" in axis.documents[forged].status_desc
    assert _count(svc, documents) == 0


def test_a_refusal_is_reported_with_its_reason_where_it_was_taken(svc, ministry, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from gateway.cli import main
    from gateway.vxp import commands

    axis = Axis()
    axis.register("hcm", SECRET, HCM)
    axis.deposit(MINISTRY, HCM, _from_ministry(ministry).replace(b"<edXML:Subject>", b"<edXML:Subject>X"))
    with serving(axis) as endpoint:
        monkeypatch.setattr(commands, "cli_services", _services_of(svc))
        monkeypatch.setattr(commands, "axis_client", lambda _config: AxisClient(endpoint, "hcm", SECRET))
        result = CliRunner().invoke(main, ["vxp", "receive", "--once"], catch_exceptions=False)
    assert "1 refused" in result.output and "refused axis document" in result.output and "signature" in result.output


def _services_of(svc):  # type: ignore[no-untyped-def]
    from contextlib import contextmanager

    @contextmanager
    def given():  # type: ignore[no-untyped-def]
        yield svc

    return given


def test_the_development_axis_lists_the_agencies_it_was_given():
    axis = Axis()
    axis.list_agency("000.00.00.G01", "Văn phòng Chính phủ")
    assert [a["code"] for a in axis.units] == [a["code"] for a in axis.agencies_qd20] == ["000.00.00.G01"]
