"""The VXP SDK's signing as the SDK writes it, and the vxp adapter against a test double of the axis."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters import Delivery, get_adapter_class
from adapters.base import AdapterSettingsError, Deployment
from gateway.vxp.dev_axis import Axis, serving
from gateway.vxp.protocol import (
    CallRefused,
    file_hash_matches,
    java_hashmap_order,
    java_string_hash,
    sdk_file_hash,
    sdk_timestamp,
    sign_call,
    verify_call,
)
from tests.support import sample

VIETNAM = timezone(timedelta(hours=7))
CITY = "000.00.00.H29"
MINISTRY = "000.00.00.G01"


def test_java_string_hash_and_hashmap_order_are_the_jvms():
    assert java_string_hash("hello") == 99162322 and java_string_hash("polygenelubricants") == -(2**31)
    # The orders the SDK sends its signed headers in (computed from Java's HashMap for these names).
    base = ["timestamp", "systemid", "Content-Type"]
    assert java_hashmap_order([*base, "servicetype", "messagetype"]) == [
        "systemid",
        "servicetype",
        "messagetype",
        "timestamp",
        "Content-Type",
    ]
    assert java_hashmap_order([*base, "status", "docId"]) == [
        "systemid",
        "docId",
        "timestamp",
        "Content-Type",
        "status",
    ]


def test_the_timestamp_is_written_as_the_sdks_simpledateformat():
    moment = datetime(2024, 3, 5, 14, 22, 33, 123_000, tzinfo=VIETNAM)
    assert sdk_timestamp(moment) == "05032024T142233+0123"


def test_the_file_hash_drops_leading_zeroes_as_integer_tohexstring_does_and_both_forms_match():
    data = next(b for i in range(1000) if (b := f"doc {i}".encode()) and min(hashlib.sha256(b).digest()) < 0x10)
    lossy, full = sdk_file_hash(data), hashlib.sha256(data).hexdigest()
    assert len(lossy) < 64 and lossy != full
    assert file_hash_matches(lossy, data) and file_hash_matches(full, data)
    assert not file_hash_matches(lossy, data + b"x")


def _signed(secret: str = "s3cret", **fields: str) -> dict[str, str]:
    stamp = sdk_timestamp(datetime.now(VIETNAM))
    return dict(sign_call("city-system", secret, fields, content_type="application/json", timestamp=stamp))


def test_a_signed_call_verifies_and_each_kind_of_tampering_is_refused():
    secrets = {"city-system": "s3cret"}.get
    now = datetime.now(UTC)
    call = verify_call(_signed(docId="42", status="done"), secrets, now=now, zone=VIETNAM)
    assert call.systemid == "city-system" and call.fields["docId"] == "42" and call.fields["status"] == "done"
    cases = {
        "wrong secret": _signed("other", docId="42"),
        "changed header": {**_signed(docId="42"), "XroadVnpt-docId": "43"},
        "unknown systemid": {
            **_signed(docId="42"),
            "XroadVnpt-sign-header": _signed(docId="42")["XroadVnpt-sign-header"].replace("city-system", "x"),
        },
        "unsigned": {k: v for k, v in _signed().items() if k != "XroadVnpt-hash-header"},
    }
    for why, headers in cases.items():
        with pytest.raises(CallRefused):
            verify_call(headers, secrets, now=now, zone=VIETNAM)
        assert why
    with pytest.raises(CallRefused, match="window"):
        verify_call(_signed(docId="42"), secrets, now=now + timedelta(hours=1), zone=VIETNAM)


@pytest.fixture
def axis_secret(tmp_path: Path) -> Path:
    path = tmp_path / "axis.secret"
    path.write_text("issued-by-the-government-office\n")
    return path


def _adapter(endpoint: str, secret: Path, **extra: object):  # type: ignore[no-untyped-def]
    settings = {"endpoint": endpoint, "systemid": "hcm-city", "secret_file": str(secret), "from_code": CITY, **extra}
    return get_adapter_class("vxp")(settings, deployment=Deployment(demo=True))


def _delivery(kind: str = "document") -> Delivery:
    return Delivery("d-1", MINISTRY, sample("cong-van.edxml"), b"<seal/>", {"kind": kind, "document_id": "x"})


def test_a_document_is_sent_with_sendedoc_as_the_sdk_sends_it_and_the_axis_docid_kept(axis_secret):
    axis = Axis()
    axis.register("hcm-city", "issued-by-the-government-office", CITY)
    with serving(axis) as endpoint:
        result = _adapter(endpoint, axis_secret).deliver(_delivery())
    assert result.outcome == "delivered", result.detail
    stored = axis.documents[result.reference or ""]
    assert stored.content == sample("cong-van.edxml") and stored.to == [MINISTRY] and stored.message_type == "edoc"
    method, fields = axis.calls[-1]
    assert method == "sendEdoc" and fields["servicetype"] == "eDoc" and fields["from"] == CITY


def test_a_status_message_goes_as_messagetype_status(axis_secret):
    axis = Axis()
    axis.register("hcm-city", "issued-by-the-government-office", CITY)
    with serving(axis) as endpoint:
        result = _adapter(endpoint, axis_secret, to_code="G01").deliver(_delivery("status"))
    assert result.outcome == "delivered"
    assert axis.documents[result.reference or ""].message_type == "status"
    assert axis.documents[result.reference or ""].to == ["G01"]


def test_the_axis_down_is_retryable_and_a_refusal_is_permanent_with_its_reason(axis_secret, tmp_path):
    axis = Axis(down=True)
    axis.register("hcm-city", "issued-by-the-government-office", CITY)
    with serving(axis) as endpoint:
        adapter = _adapter(endpoint, axis_secret)
        down = adapter.deliver(_delivery())
        assert down.outcome == "retryable" and "503" in down.detail
        axis.down = False
        assert adapter.deliver(_delivery()).outcome == "delivered"  # back: the next attempt goes through
        wrong = tmp_path / "wrong.secret"
        wrong.write_text("not-the-secret")
        refused = _adapter(endpoint, wrong).deliver(_delivery())
    assert refused.outcome == "permanent" and "hash-header" in refused.detail
    unreachable = _adapter("http://127.0.0.1:9/XrdAdapter", axis_secret).deliver(_delivery())
    assert unreachable.outcome == "retryable"


def test_settings_are_checked_before_anything_is_sent(tmp_path):
    cls = get_adapter_class("vxp")
    base = {"endpoint": "https://axis.example/XrdAdapter", "systemid": "s", "from_code": CITY}
    with pytest.raises(AdapterSettingsError, match="secret_file"):
        cls({**base, "secret_file": str(tmp_path / "missing")})
    (tmp_path / "s").write_text("x")
    with pytest.raises(AdapterSettingsError, match="https"):
        cls({**base, "endpoint": "http://axis.example/", "secret_file": str(tmp_path / "s")})
    assert json.loads(json.dumps(cls({**base, "secret_file": str(tmp_path / "s")}).settings))["timeout_seconds"] == 20
