"""Documents from the national axis: the normal submission path as the sending agency, answered done or fail."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.routing.registry import NewAgency
from gateway.store.tables import audit_entries, documents, vxp_received
from gateway.vxp.client import AxisClient
from gateway.vxp.receiver import AxisReceiver
from tests.conftest import AgencyKeys
from tests.support import HCM, sample
from tests.vxp_axis import Axis, serving

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
