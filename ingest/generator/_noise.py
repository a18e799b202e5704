"""The noise real source systems add to personal details and keys.

Each function takes a ``random.Random`` seeded from the chunk's generator, so the
same seed gives the same mistakes. ``NoiseLog`` records which field of which record
was changed how; it is written to ``truth/noise.parquet`` so resolution quality can
be broken down by kind of noise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from ingest.generator._arrays import Strings
from ingest.generator._reference import EMAIL_DOMAIN_TYPOS, NICKNAMES, STREET_ABBREVIATIONS

_KEYBOARD_ROWS: Final = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: Final[dict[str, str]] = {
    key: row[max(column - 1, 0) : column] + row[column + 1 : column + 2]
    for row in _KEYBOARD_ROWS
    for column, key in enumerate(row)
}
"""The keys left and right of each letter: the usual slip of a finger."""


def typo(text: str, rnd: random.Random) -> str:
    """One keyboard slip: a neighbouring key, two letters swapped, one dropped or doubled."""
    if len(text) < 3:
        return text
    pos = rnd.randrange(1, len(text) - 1)
    kind = rnd.randrange(4)
    char = text[pos]
    if kind == 0 and char.lower() in _NEIGHBOURS:
        near = rnd.choice(_NEIGHBOURS[char.lower()])
        near = near.upper() if char.isupper() else near
        return text[:pos] + near + text[pos + 1 :]
    if kind == 1 and text[pos + 1] != char:
        return text[:pos] + text[pos + 1] + char + text[pos + 2 :]
    if kind == 2:
        return text[:pos] + text[pos + 1 :]
    return text[:pos] + char + text[pos:]


def nickname(first_name: str, rnd: random.Random) -> str | None:
    """An informal form of ``first_name``, or ``None`` when it has none."""
    options = NICKNAMES.get(first_name)
    return rnd.choice(options) if options else None


def email_typo(email: str, rnd: random.Random) -> str:
    """A mistyped email that still looks like one (so it passes validation)."""
    local, _, domain = email.partition("@")
    if rnd.random() < 0.6:
        options = EMAIL_DOMAIN_TYPOS.get(domain)
        if options:
            return f"{local}@{rnd.choice(options)}"
    return f"{typo(local, rnd)}@{domain}"


def abbreviate_street(address: str) -> str:
    """``12 Station Road`` -> ``12 Station Rd``: how people type addresses."""
    head, _, kind = address.rpartition(" ")
    short = STREET_ABBREVIATIONS.get(kind)
    return f"{head} {short}" if short else address


def swapped_day_month(iso_date: str) -> str | None:
    """``1984-03-07`` -> ``1984-07-03``, or ``None`` when the swap is not a valid date."""
    year, month, day = iso_date.split("-")
    if day == month or int(day) > 12:
        return None
    return f"{year}-{day}-{month}"


def msisdn_styles(national: Strings) -> dict[str, Strings]:
    """Every spelling source systems use for UK mobile numbers (``7700900123`` given).

    ``e164`` +447700900123, ``digits`` 447700900123 (a switch's CLI),
    ``national`` 07700900123, ``national_spaced`` 07700 900123,
    ``international_spaced`` +44 7700 900123.
    """
    head = np.array([text[:4] for text in national], dtype=object)
    tail = np.array([text[4:] for text in national], dtype=object)
    return {
        "e164": "+44" + national,
        "digits": "44" + national,
        "national": "0" + national,
        "national_spaced": "0" + head + " " + tail,
        "international_spaced": "+44 " + head + " " + tail,
    }


@dataclass
class NoiseLog:
    """Which field of which record got which noise, for ``truth/noise.parquet``."""

    record_ids: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def add(self, record_ids: list[str], field_name: str, kind: str) -> None:
        """Note that ``field_name`` of each of ``record_ids`` got noise ``kind``."""
        self.record_ids.extend(record_ids)
        self.fields.extend([field_name] * len(record_ids))
        self.kinds.extend([kind] * len(record_ids))
