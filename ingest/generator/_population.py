"""The true people of one chunk: households, names, addresses, lines, devices and cookies.

Households are contiguous in a chunk (their first member is the head), so
per-household sums are ``np.bincount`` over the household index. Family-plan
members share the head's billing account, and some share the head's email: both
are true relational links that also trap naive identity resolution.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ingest.generator._arrays import BoolArray, FloatArray, IntArray, Strings
from ingest.generator._plan import DAY, WorldPlan
from ingest.generator._reference import (
    DEVICE_MODELS,
    EMAIL_DOMAINS,
    FAMILY_LINE,
    FEMALE_FIRST_NAMES,
    LAST_NAMES,
    MALE_FIRST_NAMES,
    PLANS,
    POSTCODE_UNIT_LETTERS,
    STREET_KINDS,
    STREET_NAMES,
    TITLES_FEMALE,
    TITLES_MALE,
    TOWNS,
)

HOUSEHOLD_SIZES: Final = (0.40, 0.30, 0.14, 0.11, 0.05)
"""Share of households with 1, 2, 3, 4 and 5 members."""
FAMILY_PLAN_SHARE: Final = 0.40
"""Share of multi-person households whose members' lines hang off the head's account."""
SHARED_EMAIL_SHARE: Final = 0.10
"""Share of family-plan members who give the head's email as their own."""
NEW_JOINER_SHARE: Final = 0.09
"""Share of people who join during the window rather than before it."""
MAX_CUSTOMERS: Final = 5_000_000
_EMAIL_PATTERNS: Final = 5


@dataclass(frozen=True)
class Population:
    """The people of one chunk; arrays are indexed by the person's position in the chunk."""

    index: IntArray
    """Global person index (``P{index:08d}`` is the person id)."""
    person_id: Strings
    household: IntArray
    household_id: Strings
    member: IntArray
    """Position in the household; 0 is the head."""
    payer: IntArray
    """Chunk position of the person who pays for this person's line (self if own account)."""
    account_id: Strings
    female: BoolArray
    title: Strings
    first_name: Strings
    last_name: Strings
    dob: Strings
    """Date of birth as ISO ``YYYY-MM-DD``."""
    age: FloatArray
    town: IntArray
    address: Strings
    postcode: Strings
    msisdn: Strings
    """National significant number, ``7xxxxxxxxx``; sources format it their own way."""
    email: Strings
    device_model: IntArray
    imei: Strings
    imsi_core: IntArray
    cookies: Strings
    """Up to three cookie ids per person (``None`` where fewer); empty for non-digital people."""
    cookie_count: IntArray
    session_rate: FloatArray
    home_ip: Strings
    home_cell: IntArray
    work_cell: IntArray
    join_ts: IntArray
    plan: Strings
    monthly_fee: FloatArray
    bill_day: IntArray
    loyalty: FloatArray
    shock_rate: FloatArray

    @property
    def size(self) -> int:
        """Number of people in the chunk."""
        return len(self.index)

    @property
    def is_payer(self) -> BoolArray:
        """Whether each person pays their own bill (owns an account)."""
        result: BoolArray = self.payer == np.arange(self.size)
        return result


def _weights(count: int) -> FloatArray:
    weights = 1.0 / (np.arange(count) + 8.0)
    result: FloatArray = weights / weights.sum()
    return result


@cache
def _ascii_token(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _permute(values: IntArray, modulus: int, multiplier: int, offset: int) -> IntArray:
    """A bijection of ``[0, modulus)`` (``multiplier`` coprime to ``modulus``)."""
    result: IntArray = (values * multiplier + offset) % modulus
    return result


def _luhn(body: NDArray[np.int64]) -> IntArray:
    """IMEI check digits for rows of 14 digits."""
    doubled = body.copy()
    doubled[:, 1::2] *= 2
    doubled[doubled > 9] -= 9
    result: IntArray = (10 - doubled.sum(axis=1) % 10) % 10
    return result


def imei_numbers(plan: WorldPlan, device_number: IntArray, model: IntArray) -> Strings:
    """Unique, check-digit-valid IMEIs for device numbers of the given models."""
    serial = _permute(device_number % 10**6, 10**6, 387_419, plan.seed % 10**6)
    tac_tail = (device_number // 10**6) % 100
    tacs = np.array([int(m.tac[:6]) for m in DEVICE_MODELS], dtype=np.int64)[model]
    body = (tacs * 100 + tac_tail) * 10**6 + serial
    digits = (body[:, None] // 10 ** np.arange(13, -1, -1)) % 10
    full = body * 10 + _luhn(digits)
    return np.array([f"{value:015d}" for value in full.tolist()], dtype=object)


def _household_layout(rng: np.random.Generator, size: int) -> tuple[IntArray, IntArray]:
    sizes = rng.choice(np.arange(1, 6), size, p=HOUSEHOLD_SIZES)
    ends = np.cumsum(sizes)
    sizes = sizes[: int(np.searchsorted(ends, size)) + 1]
    household = np.repeat(np.arange(len(sizes)), sizes)[:size]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    member = np.arange(size) - starts[household]
    return household.astype(np.int64), member.astype(np.int64)


def _emails(plan: WorldPlan, index: IntArray, first: Strings, last: Strings) -> Strings:
    # A bijection of the person index picks domain bucket, pattern and number, so every
    # address is unique and numbers stay short in small worlds (no number at all for most).
    modulus = max(500, math.ceil(plan.customers / 500) * 500)
    multiplier = 7_919
    while math.gcd(multiplier, modulus) != 1:
        multiplier += 2
    code = _permute(index, modulus, multiplier, plan.seed % modulus)
    bucket, pattern, number = code % 100, (code // 100) % _EMAIL_PATTERNS, code // 500
    cumulative = np.cumsum([share for _, share in EMAIL_DOMAINS])
    edges = np.round(cumulative / cumulative[-1] * 100)
    domain = np.searchsorted(edges, bucket, side="right")
    domains = [name for name, _ in EMAIL_DOMAINS]
    out = []
    for f, last_name, p, num, d in zip(
        first.tolist(),
        last.tolist(),
        pattern.tolist(),
        number.tolist(),
        domain.tolist(),
        strict=True,
    ):
        fa, la = _ascii_token(f), _ascii_token(last_name)
        local = (f"{fa}.{la}", f"{fa}{la}", f"{fa[0]}{la}", f"{la}.{fa}", f"{fa}_{la}")[p]
        out.append(f"{local}{num or ''}@{domains[d]}")
    return np.array(out, dtype=object)


def build_population(
    plan: WorldPlan, rng: np.random.Generator, first_index: int, size: int
) -> Population:
    """Draw the ``size`` people whose global indices start at ``first_index``."""
    local = np.arange(size)
    index = first_index + local
    household, member = _household_layout(rng, size)
    household_count = int(household[-1]) + 1
    head = np.flatnonzero(member == 0)[household]

    # Ages: heads are adults; second members are partners of a similar age; later members
    # are the head's children where the head is old enough, otherwise flatmates.
    head_age = np.clip(19 + rng.gamma(4.0, 8.5, household_count), 19, 92)[household]
    partner = member == 1
    child = (member >= 2) & (head_age >= 40)
    age = np.where(member == 0, head_age, head_age + rng.normal(0, 4, size))
    age = np.where(child, 16 + rng.uniform(0, 10, size), age)
    age = np.where((member >= 2) & ~child, head_age + rng.normal(0, 6, size), age)
    age = np.clip(age, 16.0, 95.0)
    end_day = plan.end // DAY
    dob_days = end_day - (age * 365.25).astype(np.int64)
    dob = np.datetime_as_string(dob_days.astype("datetime64[D]")).astype(object)

    female = rng.random(size) < 0.5
    female = np.where(partner, ~female[head] | (rng.random(size) < 0.1), female)
    males = np.array(MALE_FIRST_NAMES, dtype=object)
    females = np.array(FEMALE_FIRST_NAMES, dtype=object)
    first_name = np.where(
        female,
        females[rng.choice(len(females), size, p=_weights(len(females)))],
        males[rng.choice(len(males), size, p=_weights(len(males)))],
    )
    lasts = np.array(LAST_NAMES, dtype=object)
    own_last = lasts[rng.choice(len(lasts), size, p=_weights(len(lasts)))]
    shares_last = np.where(partner, 0.7, np.where(child, 0.85, 0.1)) > rng.random(size)
    last_name = np.where((member > 0) & shares_last, own_last[head], own_last)
    title = np.where(
        female,
        np.array(TITLES_FEMALE, dtype=object)[rng.integers(0, len(TITLES_FEMALE), size)],
        np.array(TITLES_MALE, dtype=object)[rng.integers(0, len(TITLES_MALE), size)],
    )
    title = np.where(age < 18, np.where(female, "Miss", "Mr"), title)

    # Addresses and the broadband IP belong to the household.
    town = rng.choice(len(TOWNS), household_count, p=plan.town_weights)
    street = [
        f"{STREET_NAMES[s]} {STREET_KINDS[k]}"
        for s, k in zip(
            rng.integers(0, len(STREET_NAMES), household_count).tolist(),
            rng.integers(0, len(STREET_KINDS), household_count).tolist(),
            strict=True,
        )
    ]
    number = rng.integers(1, 180, household_count)
    flat = rng.random(household_count) < 0.12
    address = np.array(
        [
            f"Flat {n % 9 + 1}, {n} {s}" if f else f"{n} {s}"
            for n, s, f in zip(number.tolist(), street, flat.tolist(), strict=True)
        ],
        dtype=object,
    )
    units = rng.integers(0, len(POSTCODE_UNIT_LETTERS), (household_count, 2))
    postcode = np.array(
        [
            f"{TOWNS[t].area}{d} {s}{POSTCODE_UNIT_LETTERS[u0]}{POSTCODE_UNIT_LETTERS[u1]}"
            for t, d, s, (u0, u1) in zip(
                town.tolist(),
                rng.integers(1, 30, household_count).tolist(),
                rng.integers(1, 10, household_count).tolist(),
                units.tolist(),
                strict=True,
            )
        ],
        dtype=object,
    )
    ips = rng.integers(1, 255, (household_count, 3))
    home_ip = np.array([f"86.{a}.{b}.{c}" for a, b, c in ips.tolist()], dtype=object)

    home_cell = np.array(
        [
            plan.cells.town_cells[t][r % len(plan.cells.town_cells[t])]
            for t, r in zip(
                town.tolist(), rng.integers(0, 1 << 30, household_count).tolist(), strict=True
            )
        ],
        dtype=np.int64,
    )[household]
    person_town = town[household]
    same_town_work = rng.random(size) < 0.7
    work_in_town = np.array(
        [
            plan.cells.town_cells[t][r % len(plan.cells.town_cells[t])]
            for t, r in zip(
                person_town.tolist(), rng.integers(0, 1 << 30, size).tolist(), strict=True
            )
        ],
        dtype=np.int64,
    )
    work_cell = np.where(
        same_town_work, work_in_town, rng.integers(0, len(plan.cells.cell_id), size)
    )

    # Accounts: family-plan members' lines are billed to the head.
    family_plan = (rng.random(household_count) < FAMILY_PLAN_SHARE)[household]
    dependent = (member > 0) & family_plan & (rng.random(size) < 0.85)
    payer = np.where(dependent, head, local)
    account_number = _permute(index[payer], 10**9, 387_420_489, plan.seed % 10**9)
    account_id = np.array([f"ACC{value:09d}" for value in account_number.tolist()], dtype=object)

    msisdn_number = 7_000_000_000 + (
        np.array([4, 5, 7, 8, 9])[rng.integers(0, 5, size)] * 100_000_000
        + _permute(index, 10**8, plan.msisdn_multiplier, plan.msisdn_offset)
    )
    msisdn = np.array([str(value) for value in msisdn_number.tolist()], dtype=object)
    email = _emails(plan, index, first_name, last_name)
    shares_email = dependent & (rng.random(size) < SHARED_EMAIL_SHARE)
    email = np.where(shares_email, email[head], email)

    model_weights = np.array([m.weight for m in DEVICE_MODELS])
    device_model = rng.choice(len(DEVICE_MODELS), size, p=model_weights / model_weights.sum())
    imei = imei_numbers(plan, index * 4, device_model)

    digital = rng.random(size) < np.clip(1.05 - 0.009 * age, 0.2, 0.95)
    cookie_count = np.where(digital, np.minimum(1 + rng.poisson(0.6, size), 3), 0)
    raw_cookies = rng.integers(0, 2**63, (size, 3))
    cookies = np.array(
        [[f"{value:016x}" for value in row] for row in raw_cookies.tolist()], dtype=object
    )
    cookies[np.arange(3)[None, :] >= cookie_count[:, None]] = None

    joined_in_window = rng.random(size) < NEW_JOINER_SHARE
    # Nobody has a contract before they are 16; wrapping long tenures round (rather than
    # clipping them) avoids a pile of customers who all joined on the same day.
    longest = np.minimum(15 * 365, np.maximum((age - 16.0) * 365.0, 60.0))
    tenure_days = (30 + rng.exponential(4.5 * 365, size) % longest).astype(np.int64)
    join_ts = np.where(
        joined_in_window,
        plan.start + rng.integers(0, 345 * DAY, size),
        plan.start - tenure_days * DAY,
    ) + rng.integers(8 * 3600, 19 * 3600, size)
    join_ts = np.where(
        dependent, np.maximum(join_ts, join_ts[head] + rng.integers(0, 30 * DAY, size)), join_ts
    )
    join_ts = np.minimum(join_ts, plan.end - 20 * DAY)

    plan_weights = np.array([p.weight for p in PLANS])
    chosen_plan = rng.choice(len(PLANS), size, p=plan_weights / plan_weights.sum())
    plan_code = np.where(
        dependent,
        FAMILY_LINE.code,
        np.array([p.code for p in PLANS], dtype=object)[chosen_plan],
    )
    monthly_fee = np.where(
        dependent, FAMILY_LINE.monthly_gbp, np.array([p.monthly_gbp for p in PLANS])[chosen_plan]
    )
    return Population(
        index=index,
        person_id=np.array([f"P{value:08d}" for value in index.tolist()], dtype=object),
        household=household,
        household_id=np.array([f"H{value:08d}" for value in index[head].tolist()], dtype=object),
        member=member,
        payer=payer,
        account_id=account_id,
        female=female,
        title=title,
        first_name=first_name,
        last_name=last_name,
        dob=dob,
        age=age,
        town=person_town,
        address=address[household],
        postcode=postcode[household],
        msisdn=msisdn,
        email=email,
        device_model=device_model,
        imei=imei,
        imsi_core=_permute(index, 10**9, 998_244_353, plan.seed % 10**9),
        cookies=cookies,
        cookie_count=cookie_count,
        session_rate=np.where(digital, rng.gamma(1.5, 0.45, size), 0.0),
        home_ip=home_ip[household],
        home_cell=home_cell,
        work_cell=work_cell,
        join_ts=join_ts,
        plan=plan_code,
        monthly_fee=monthly_fee,
        bill_day=rng.integers(1, 29, size)[payer],
        loyalty=rng.normal(0.0, 1.0, size),
        shock_rate=np.clip(0.02 * rng.lognormal(0.0, 0.7, size), 0.004, 0.15),
    )
