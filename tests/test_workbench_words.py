"""Every code the log can hold is shown in the reader's language: events, categories and refusal codes.

The names are found in the source rather than listed again here, so an event or a refusal code added
later without its Vietnamese and English words fails this test instead of reaching the workbench as a
bare English code (issue 11: "event and outcome codes stay English in Vietnamese mode").
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from gateway.api.problems import CODES
from gateway.audit.log import AuditEvent
from gateway.web.i18n import CATEGORIES, CATEGORY_NAMES, EVENT_NAMES, FIELD_NAMES, REFUSAL_TITLES_VI, TEXT, Words

SOURCE = Path(__file__).resolve().parent.parent / "gateway"
FAMILIES = (
    "agency|audit|auditor|auth|citizen|delivery|document|dossier|keys|operator|request|status|timestamp|vxp|witness"
)
EVENT = re.compile(rf"^({FAMILIES})\.[a-z][a-z0-9.-]*$")
KINDS = ("document", "status")  # what f"{kind}.accepted" and the like stand for (schema.Kind)
FILE_NAME = re.compile(r"\.(py|html|json|pem|key|crt|toml|txt|xsd|xml|jsonl|edxml|vkey|writer-lock)$")


def _events_in_source() -> set[str]:
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                candidates = [node.value]
            elif isinstance(node, ast.JoinedStr) and len(node.values) == 2:
                head, tail = node.values
                if not (isinstance(head, ast.FormattedValue) and isinstance(tail, ast.Constant)):
                    continue
                candidates = [kind + str(tail.value) for kind in KINDS]
            else:
                continue
            found |= {c for c in candidates if EVENT.match(c) and not FILE_NAME.search(c)}
    return found


EVENTS = sorted(_events_in_source())


def test_the_scan_finds_the_events_it_must() -> None:
    """A scan that finds nothing would pass everything: pin a few from each way of naming them."""
    for known in ("document.accepted", "status.routed", "dossier.rated", "auth.token.issued", "vxp.refused"):
        assert known in EVENTS


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_event_the_gateway_writes_has_a_name_in_both_languages(event: str, lang: str) -> None:
    assert event in EVENT_NAMES[lang], f"{event} has no {lang} name in gateway/web/i18n.py EVENT_NAMES"


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_falls_in_a_search_category(event: str) -> None:
    assert any(event.startswith(p) for prefixes in CATEGORIES.values() for p in prefixes), event


def test_every_category_is_named_in_both_languages() -> None:
    for lang in ("vi", "en"):
        assert set(CATEGORY_NAMES[lang]) == set(CATEGORIES)


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_refusal_code_has_a_vietnamese_title(code: str) -> None:
    assert code in REFUSAL_TITLES_VI, f"{code} has no Vietnamese title in REFUSAL_TITLES_VI"
    assert Words("vi").refusal(code) != CODES[code][1]


def test_axis_refusals_are_titled_by_their_error_code() -> None:
    assert Words("vi").refusal("vxp-401").startswith("VXP: Chữ ký")
    assert Words("vi").refusal("vxp-signature-invalid") == "VXP: " + REFUSAL_TITLES_VI["signature-invalid"]
    assert Words("en").refusal("vxp-403") == "VXP: System not permitted"


def test_both_languages_have_the_same_page_words() -> None:
    assert set(TEXT["vi"]) == set(TEXT["en"])
    assert set(EVENT_NAMES["vi"]) == set(EVENT_NAMES["en"])


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_field_of_an_entry_has_a_label(lang: str) -> None:
    fields = {f.name for f in dataclasses.fields(AuditEvent)} | {"index", "time", "v", "salt"}
    assert fields <= set(FIELD_NAMES[lang]), sorted(fields - set(FIELD_NAMES[lang]))
