"""Identifier normalisation: every spelling of one identifier meets in one normal form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.identifiers import (
    IdentifierError,
    imei_check_digit,
    normalise_identifier,
)


@pytest.mark.parametrize(
    "raw", ["07700 900123", "+44 7700 900123", "447700900123", "0044 7700-900-123"]
)
def test_msisdn_spellings_meet_in_e164(raw: str) -> None:
    assert normalise_identifier("msisdn", raw) == "+447700900123"


def test_emails_are_trimmed_and_lower_cased() -> None:
    assert normalise_identifier("email", "  Ann.Lee@Example.COM ") == "ann.lee@example.com"


def test_imei_check_digit() -> None:
    assert normalise_identifier("imei", "49-015420-323751-8") == "490154203237518"
    with pytest.raises(IdentifierError, match="check digit"):
        normalise_identifier("imei", "490154203237519")


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("msisdn", "12"),
        ("msisdn", "not a number"),
        ("email", "ann@"),
        ("account", "a b"),
        ("imei", "123"),
        ("shoe", "9"),
        ("cookie", "x" * 10_000),
    ],
)
def test_bad_identifiers_say_what_is_wrong(kind: str, raw: str) -> None:
    with pytest.raises(IdentifierError, match=kind if kind != "shoe" else "unknown"):
        normalise_identifier(kind, raw)


@given(st.text(alphabet="0123456789", min_size=14, max_size=14))
def test_any_imei_body_with_its_check_digit_is_valid(body: str) -> None:
    imei = body + str(imei_check_digit(body))
    assert normalise_identifier("imei", imei) == imei
