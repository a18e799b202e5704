"""Checking and standardising record frames before Splink sees them.

Splink compares values as they are, so spelling differences that carry no information
(case, spaces inside a postcode, ``Rd`` for ``Road``) are removed here, per column role,
once for training and prediction alike. Only the ``unique_id`` column, the columns the
settings compare and the derived nickname columns are kept: narrower DuckDB tables are
faster to block and score.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

import pandas as pd

from graph.errors import InvalidInput
from ingest.resolution._splink_nicknames import nickname_groups

if TYPE_CHECKING:
    from ingest.resolution.probabilistic import LinkageSettings

UNIQUE_ID: Final = "unique_id"

_ISO_DATE: Final = r"^\d{4}-\d{2}-\d{2}$"
# Street kinds as people shorten them; expanded so "47 London Rd" equals "47 London Road".
_STREET_WORDS: Final[dict[str, str]] = {
    "rd": "road",
    "st": "street",
    "ln": "lane",
    "ave": "avenue",
    "av": "avenue",
    "cl": "close",
    "dr": "drive",
    "gdns": "gardens",
    "cres": "crescent",
    "cr": "crescent",
    "gr": "grove",
    "pl": "place",
    "sq": "square",
    "ct": "court",
    "tce": "terrace",
    "pde": "parade",
    "hwy": "highway",
}
_WORD: Final = re.compile(r"[a-z]+")


def prepare_records(
    records: pd.DataFrame, settings: LinkageSettings, what: str = "records"
) -> pd.DataFrame:
    """``records`` checked and standardised: ``unique_id``, the compared columns and, for a
    name compared with nicknames, its ``<column>__nicknames`` groups.

    Raises ``InvalidInput`` naming every missing column, or when ``unique_id`` has nulls
    or repeats. Values become strings or ``None``; empty strings become ``None``.
    """
    if not isinstance(records, pd.DataFrame):
        raise InvalidInput(f"{what} must be a pandas DataFrame, not {type(records).__name__}")
    needed = [UNIQUE_ID, *settings.columns]
    missing = [name for name in needed if name not in records.columns]
    if missing:
        raise InvalidInput(
            f"{what} lack the column(s) {', '.join(missing)} that the linkage settings need",
            details={"missing": missing, "needed": needed},
        )
    ids = records[UNIQUE_ID]
    if ids.isna().any():
        raise InvalidInput(f"{what} have rows without a unique_id")
    if not ids.is_unique:
        repeated = ids[ids.duplicated()].head(5).tolist()
        raise InvalidInput(f"{what} repeat unique_id values", details={"examples": repeated})
    prepared = {UNIQUE_ID: ids.to_numpy()}
    for comparison in settings.comparisons:
        cleaned = _CLEANERS[comparison.role](_as_text(records[comparison.column]))
        prepared[comparison.column] = cleaned.to_numpy()
        if comparison.nicknames:
            groups = none_for_missing(nickname_groups(cleaned))
            prepared[nickname_column(comparison.column)] = groups.to_numpy()
    frame = pd.DataFrame(prepared)
    # Typed as text even when a small batch holds only nulls: DuckDB would read an
    # all-None object column as INTEGER and reject the string comparisons.
    return frame.astype({name: "string" for name in frame.columns if name != UNIQUE_ID})


def nickname_column(column: str) -> str:
    """The derived column holding the nickname groups of a name column."""
    return f"{column}__nicknames"


def check_disjoint_ids(left: pd.DataFrame, right: pd.DataFrame, what: str) -> None:
    """Raise ``InvalidInput`` when two prepared frames share a ``unique_id``."""
    shared = set(left[UNIQUE_ID]).intersection(right[UNIQUE_ID])
    if shared:
        raise InvalidInput(
            f"{what} share unique_id values", details={"examples": sorted(map(str, shared))[:5]}
        )


def _as_text(column: pd.Series) -> pd.Series:
    """Strings with surrounding space trimmed; null or empty as ``None``."""
    text = column.astype("string").str.strip()
    return text.mask(text == "")


def _clean_name(text: pd.Series) -> pd.Series:
    lowered = text.str.lower().str.replace(r"[^\w' -]", "", regex=True)
    return _blank_to_none(lowered.str.replace(r"\s+", " ", regex=True).str.strip())


def _clean_date(text: pd.Series) -> pd.Series:
    # Anything but ISO (the frame's normal form) would compare as garbage, so it is dropped.
    return _blank_to_none(text.where(text.str.match(_ISO_DATE)))


def _clean_postcode(text: pd.Series) -> pd.Series:
    return _blank_to_none(text.str.upper().str.replace(r"[^0-9A-Z]", "", regex=True))


def _clean_address(text: pd.Series) -> pd.Series:
    lowered = text.str.lower().str.replace(r"[^\w]+", " ", regex=True).str.strip()
    return _blank_to_none(lowered.map(_expand_street_words, na_action="ignore").astype("string"))


def _clean_identifier(text: pd.Series) -> pd.Series:
    return _blank_to_none(text)


def _expand_street_words(address: str) -> str:
    return _WORD.sub(lambda word: _STREET_WORDS.get(word.group(0), word.group(0)), address)


def _blank_to_none(text: pd.Series) -> pd.Series:
    return none_for_missing(text.mask(text == ""))


def none_for_missing(values: pd.Series) -> pd.Series:
    """Object values with ``None`` for each missing one (what DuckDB reads as NULL)."""
    objects = values.astype(object).to_numpy()
    objects[values.isna().to_numpy()] = None
    return pd.Series(objects, index=values.index, dtype=object)


_CLEANERS: Final = {
    "name": _clean_name,
    "date": _clean_date,
    "postcode": _clean_postcode,
    "address": _clean_address,
    "identifier": _clean_identifier,
}
