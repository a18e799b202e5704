"""Identifier normalisation: one spelling per real-world identifier.

Sources write the same MSISDN as ``07700 900123``, ``+44 7700 900123`` or
``447700900123``; deterministic resolution only works on a normal form, so every
identifier goes through ``normalise_identifier`` before it becomes a graph id.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

import phonenumbers

from graph.model import IdentifierKind

DEFAULT_REGION: Final = "GB"
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TOKEN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class IdentifierError(ValueError):
    """An identifier that cannot be normalised; the message says why."""


def normalise_msisdn(raw: str, region: str = DEFAULT_REGION) -> str:
    """E.164 (``+447700900123``) via libphonenumber; national numbers read in ``region``."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    elif text.isdigit() and not text.startswith("0") and len(text) > 10:
        text = "+" + text  # international digits written without the plus
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        raise IdentifierError(f"msisdn {raw!r} is not a phone number: {error}") from None
    if not phonenumbers.is_possible_number(number):
        raise IdentifierError(f"msisdn {raw!r} has an impossible length for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    """Trimmed and lower-cased; must look like ``local@domain.tld``."""
    text = raw.strip().lower()
    if not _EMAIL.match(text) or len(text) > 254:
        raise IdentifierError(f"email {raw!r} is not an email address")
    return text


def imei_check_digit(body: str) -> int:
    """The Luhn check digit of the first 14 IMEI digits."""
    total = 0
    for position, char in enumerate(body):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def normalise_imei(raw: str) -> str:
    """15 digits with a valid Luhn check digit (separators removed)."""
    digits = re.sub(r"[\s./-]", "", raw.strip())
    if not digits.isdigit() or len(digits) != 15:
        raise IdentifierError(f"imei {raw!r} must have 15 digits")
    if imei_check_digit(digits[:14]) != int(digits[14]):
        raise IdentifierError(f"imei {raw!r} fails its check digit")
    return digits


def normalise_token(kind: str, raw: str) -> str:
    """Account ids, cookies and hashes: trimmed, case kept, a safe character set."""
    text = raw.strip()
    if not _TOKEN.match(text):
        raise IdentifierError(
            f"{kind} {raw[:40]!r} must be 1-128 letters, digits or . _ : - characters"
        )
    return text


@lru_cache(maxsize=262_144)
def normalise_identifier(kind: str, raw: str, region: str = DEFAULT_REGION) -> str:
    """Normalise one identifier of a known kind; raises ``IdentifierError`` otherwise.

    Cached: the same raw identifiers recur on every event of a subscriber, and
    libphonenumber's parse costs a quarter of a millisecond.
    """
    if kind == IdentifierKind.MSISDN:
        return normalise_msisdn(raw, region)
    if kind == IdentifierKind.EMAIL:
        return normalise_email(raw)
    if kind == IdentifierKind.IMEI:
        return normalise_imei(raw)
    if kind == IdentifierKind.ACCOUNT:
        return normalise_token(kind, raw).upper()
    if kind in (IdentifierKind.COOKIE, IdentifierKind.NATIONAL_ID_HASH):
        return normalise_token(kind, raw)
    raise IdentifierError(f"unknown identifier kind {kind!r}")
