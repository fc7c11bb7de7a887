"""Agency codes in both official forms and edXML DocumentIds, by property."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from gateway.documents.identifiers import agency_code_form, is_edxml_date, parse_document_id

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)
qcvn = st.builds(
    lambda a, b, c, letter, d: f"{a}.{b}.{c}.{letter}{d}",
    st.integers(0, 999).map("{:03d}".format),
    st.integers(0, 99).map("{:02d}".format),
    st.integers(0, 99).map("{:02d}".format),
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    st.integers(0, 99).map("{:02d}".format),
)
decision20 = st.builds(
    lambda first, groups: ".".join([first, *groups]),
    st.builds(lambda letter, n: f"{letter}{n:02d}", st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXY"), st.integers(0, 99)),
    st.lists(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=4), max_size=6),
).filter(lambda code: len(code) <= 35)


@given(qcvn)
def test_every_qcvn_102_code_is_recognised(code):
    assert agency_code_form(code) == "qcvn102"


@given(decision20)
def test_every_decision_20_code_is_recognised(code):
    assert agency_code_form(code) == "decision20"


@given(st.text(max_size=40))
def test_anything_else_is_refused_or_one_of_the_two_forms(text):
    form = agency_code_form(text)
    if form is not None:
        assert len(text) <= 35 and text.isascii() and " " not in text and text == text.strip()


def test_known_codes_and_lookalikes():
    assert agency_code_form("000.00.00.H29") == "qcvn102"
    assert agency_code_form("H55.242") == "decision20"
    for bad in ("", "Z01", "h55.242", "000.00.00.h29", "H55..242", "H55.242.", "000.00.00.H29 ", "H5" + ".1" * 17):
        assert agency_code_form(bad) is None, bad


@given(
    qcvn,
    st.dates(min_value=date(1945, 1, 1), max_value=date(2199, 12, 31)),
    st.integers(1, 99999),
    st.sampled_from(["UBND-VX", "VPCP-TTĐT", "QĐ-UBND"]),
)
def test_document_ids_round_trip(code, day, number, notation):
    value = f"{code},{day:%Y/%m/%d},{number}/{notation}"
    parts = parse_document_id(value)
    assert parts is not None and (parts.organ_id, parts.number_notation) == (code, f"{number}/{notation}")


def test_document_id_needs_three_parts_and_a_real_date():
    assert parse_document_id("000.00.00.H29,2020/02/30,1/X") is None
    assert parse_document_id("000.00.00.H29,2020/03/05") is None
    assert parse_document_id("nonsense,2020/03/05,1/X") is None
    assert is_edxml_date("2024/02/29") and not is_edxml_date("2023/02/29")


# Issue 10, finding 7: `\d` matches every Unicode digit (full-width ０-９, Arabic-Indic ٠-٩, …).
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def test_identifiers_take_ascii_digits_only():
    for table in (FULL_WIDTH, ARABIC_INDIC):
        assert agency_code_form("000.00.04.H29".translate(table)) is None
        assert agency_code_form("H55.242".translate(table)) is None
        assert parse_document_id("000.00.00.H29,2020/03/05,1024/UBND-VX".translate(table)) is None
        assert not is_edxml_date("2020/03/05".translate(table))


def test_personal_ids_and_birth_dates_take_ascii_digits_only():
    import pytest

    from gateway.identity.personal_id import check_personal_id
    from gateway.policy import Refusal

    assert check_personal_id("079203001234") == "079203001234"
    for table in (FULL_WIDTH, ARABIC_INDIC):
        with pytest.raises(Refusal):
            check_personal_id("079203001234".translate(table))
        with pytest.raises(Refusal):
            check_personal_id("079203001234", "20030101".translate(table))


def test_the_schema_takes_ascii_digits_only_in_codes_and_dates():
    import pytest

    from gateway.documents import schema, xmlsafe
    from gateway.policy import Refusal
    from tests.support import sample

    data = sample("cong-van.edxml").replace(b"<edXML:OrganId>000.00.04.H29", "<edXML:OrganId>000.00.0٤.H29".encode())
    with pytest.raises(Refusal) as refused:
        schema.validate(xmlsafe.parse(data), "document")
    assert refused.value.code == "schema-invalid"
