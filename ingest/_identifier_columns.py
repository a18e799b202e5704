"""Identifier normalisation for whole columns, equal to ``normalise_identifier`` value by value.

Each kind has a vectorised fast path for the spellings sources mostly use; a fast
path either gives exactly what ``normalise_identifier`` gives or leaves the value
(null) to ``normalise_identifier`` itself, called once per distinct value left. The
MSISDN fast path covers the UK mobile spellings ``07700 900123``, ``07700900123``,
``+44 7700 900123``, ``+447700900123`` and ``447700900123``: libphonenumber costs a
quarter of a millisecond a value, and a probe file has millions of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph.model import IdentifierKind
from ingest._columns import (
    TEXT,
    ArrowArray,
    BoolMask,
    Distinct,
    char_counts,
    fixed_width_text,
    mask_of,
    null_where,
    scatter,
    text_buffers,
    valid,
)
from ingest.identifiers import IdentifierError, normalise_identifier

_MSISDN_FAST: Final = r"^(?:0|\+44 ?)7[0-9]{3} ?[0-9]{6}$|^447[0-9]{9}$"
"""A UK mobile: ``0`` or ``+44`` (a space optional), ``7``, three digits, a space
optional, six digits; or the switch's bare ``447`` and nine digits."""
_IMEI_SEPARATED: Final = r"^[0-9 ./-]+$"
_IMEI_SEPARATORS: Final = r"[ ./-]"
_TOKEN_FAST: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# Plain ASCII addresses only: there Arrow's lower-casing and the checks of
# normalise_email agree byte for byte; anything else goes to normalise_identifier.
_EMAIL_FAST: Final = r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$"
_MAX_EMAIL_LENGTH: Final = 254
_E164_UK_MOBILE: Final = np.frombuffer(b"+447", dtype=np.uint8)


def msisdn_fast_path(array: ArrowArray) -> ArrowArray:
    """E.164 for the common UK mobile spellings; null where ``normalise_identifier``
    must decide."""
    hit = mask_of(pc.match_substring_regex(array, _MSISDN_FAST))
    positions = np.flatnonzero(hit)
    if len(positions) == 0:
        return pa.nulls(len(array), TEXT)
    matched = array if len(positions) == len(array) else array.filter(pa.array(hit))
    offsets, data = text_buffers(matched)
    ends = offsets[1:]
    # Every shape ends "7DDD[ ]DDDDDD": the number is +447, those three digits, the six.
    gap = (data[ends - 7] == ord(" ")).astype(np.int64)
    characters = np.empty((len(matched), 13), dtype=np.uint8)
    characters[:, :4] = _E164_UK_MOBILE
    characters[:, 4:7] = data[(ends - 6 - gap)[:, None] + np.arange(-3, 0)]
    characters[:, 7:] = data[ends[:, None] + np.arange(-6, 0)]
    numbers = fixed_width_text(characters)
    return scatter(pa.nulls(len(array), TEXT), positions, numbers)


def _fifteen_digits(array: ArrowArray) -> BoolMask:
    """Where a value is exactly 15 ASCII digits (checked on the raw bytes)."""
    offsets, data = text_buffers(array)
    found: BoolMask = (np.diff(offsets) == 15) & valid(array)
    rows = np.flatnonzero(found)
    if len(rows) == 0:
        return found
    if len(rows) == len(array) and offsets[-1] - offsets[0] == 15 * len(array):
        # Values back to back: the characters are a view of the data buffer.
        characters = data[offsets[0] : offsets[-1]].reshape(-1, 15)
    else:
        characters = data[offsets[rows, None] + np.arange(15)]
    found[rows] = ((characters >= ord("0")) & (characters <= ord("9"))).all(axis=1)
    return found


def imei_fast_path(array: ArrowArray) -> ArrowArray:
    """15 digits with a valid check digit (separators `` ./-`` removed, as
    ``normalise_imei`` removes them); null where ``normalise_identifier`` must decide."""
    plain = _fifteen_digits(array)
    digits_only = array
    left = valid(array) & ~plain
    if left.any():
        separated = left & mask_of(pc.match_substring_regex(array, _IMEI_SEPARATED))
        if separated.any():
            removed = pc.replace_substring_regex(array, _IMEI_SEPARATORS, "")
            digits_only = pc.if_else(pa.array(separated), removed, array)
            plain = _fifteen_digits(digits_only)
    positions = np.flatnonzero(plain)
    if len(positions) == 0:
        return pa.nulls(len(array), TEXT)
    offsets, data = text_buffers(digits_only)
    if len(positions) == len(array) and offsets[-1] - offsets[0] == 15 * len(array):
        characters = data[offsets[0] : offsets[-1]].reshape(-1, 15)
    else:
        characters = data[offsets[positions, None] + np.arange(15)]
    digits = characters.astype(np.int16) - ord("0")
    # imei_check_digit: Luhn over the first 14 digits, every second one doubled.
    doubled = digits[:, 1:14:2] * 2
    total = digits[:, 0:14:2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
    good = np.zeros(len(array), dtype=bool)
    good[positions] = (10 - total % 10) % 10 == digits[:, 14]
    return null_where(digits_only, ~good)


def _token_fast_path(array: ArrowArray, *, upper: bool) -> ArrowArray:
    hit = mask_of(pc.match_substring_regex(array, _TOKEN_FAST))
    return null_where(pc.ascii_upper(array) if upper else array, ~hit)


def _email_fast_path(array: ArrowArray) -> ArrowArray:
    hit = mask_of(pc.match_substring_regex(array, _EMAIL_FAST))
    hit &= char_counts(array) <= _MAX_EMAIL_LENGTH
    return null_where(pc.ascii_lower(array), ~hit)


FAST_PATHS: Final[dict[str, Callable[[ArrowArray], ArrowArray]]] = {
    IdentifierKind.MSISDN: msisdn_fast_path,
    IdentifierKind.IMEI: imei_fast_path,
    IdentifierKind.EMAIL: _email_fast_path,
    IdentifierKind.ACCOUNT: lambda array: _token_fast_path(array, upper=True),
    IdentifierKind.COOKIE: lambda array: _token_fast_path(array, upper=False),
    IdentifierKind.NATIONAL_ID_HASH: lambda array: _token_fast_path(array, upper=False),
}
"""Per kind: the vectorised normal form, null where the fast path does not decide."""


def normalise_identifier_column(kind: str, array: ArrowArray) -> tuple[ArrowArray, dict[int, str]]:
    """Each value of a text column normalised as ``normalise_identifier(kind, value)`` does.

    Returns the normalised column (null where the input is null or cannot be
    normalised) and, by row position, the ``IdentifierError`` message of each value
    that cannot be.
    """
    fast = FAST_PATHS[kind](array)
    left = valid(array) & ~valid(fast)
    if not left.any():
        return fast, {}
    positions = np.flatnonzero(left)
    distinct = Distinct.of(array.filter(pa.array(left)))
    results, errors = distinct.apply(
        lambda value: normalise_identifier(kind, value), IdentifierError
    )
    normalised = scatter(fast, positions, distinct.spread(pa.array(results, TEXT)))
    failed = distinct.rows_where(np.array([error is not None for error in errors], dtype=bool))
    messages = {
        int(positions[index]): str(errors[code])
        for index, code in zip(
            np.flatnonzero(failed).tolist(), distinct.codes[failed].tolist(), strict=True
        )
    }
    return normalised, messages
