"""The parts of the world every chunk of customers shares: time window, cells and shops.

A world is planned once from the seed and the number of customers; customers are
then generated chunk by chunk against the same plan, so people in different
chunks meet on the same bad cells and in the same shops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

import numpy as np

from ingest.generator._arrays import BoolArray, FloatArray, IntArray, Strings
from ingest.generator._reference import TOWNS

DAY: Final = 86_400
HOUR: Final = 3_600
MONTHS: Final = 12
WINDOW_DAYS: Final = 365
MONTH: Final = WINDOW_DAYS * DAY // MONTHS
"""One simulation month: a twelfth of the 365-day window, in seconds."""
FIRST_END: Final = date(2025, 1, 1)
"""The earliest window end; the seed moves it forward by up to a year, never to 'now'."""
CUSTOMERS_PER_CELL: Final = 30
CUSTOMERS_PER_SHOP: Final = 1_500
BAD_CELL_SHARE: Final = 0.06
"""Share of cells with recurring incidents (the planted 'bad cells')."""
MINOR_INCIDENT_SHARE: Final = 0.10
"""Share of the other cells with one short, mild incident, so badness is not one event."""


@dataclass(frozen=True)
class Cells:
    """Radio cells: ids, towns, baseline quality and their incidents per month."""

    cell_id: Strings
    town: IntArray
    bad: BoolArray
    base_drop: FloatArray
    base_impairment: FloatArray
    base_low_bitrate: FloatArray
    base_stalling: FloatArray
    impact: FloatArray
    """Incident impact per cell and month in [0, 1]: severity times the share of the month."""
    incident_start: IntArray
    """Start of the month's main incident per cell and month (epoch seconds, 0 if none)."""
    incident_end: IntArray
    town_cells: list[IntArray]
    """Indices of the cells of each town."""


@dataclass(frozen=True)
class Incidents:
    """Every incident on every cell (ground truth of the cell profiles)."""

    cell: IntArray
    kind: Strings
    start: IntArray
    end: IntArray
    severity: FloatArray


@dataclass(frozen=True)
class Shops:
    """Retail shops and the shared devices in them (a trap for identity resolution)."""

    shop_id: Strings
    town: IntArray
    ip: Strings
    """The shop's public IP: every till and tablet in the shop is behind it."""
    tablet_cookie: Strings
    """The cookie of the shop's demo tablet, which staff use to log customers in."""
    town_shops: list[IntArray]


@dataclass(frozen=True)
class WorldPlan:
    """Everything shared by all chunks of one generated world."""

    seed: int
    customers: int
    start: int
    """Window start, epoch seconds (inclusive)."""
    end: int
    """Window end, epoch seconds (exclusive): midnight UTC of a date fixed by the seed."""
    town_weights: FloatArray
    cells: Cells
    incidents: Incidents
    shops: Shops
    msisdn_multiplier: int
    msisdn_offset: int

    @property
    def start_datetime(self) -> datetime:
        """Window start as a timezone-aware datetime."""
        return datetime.fromtimestamp(self.start, UTC)

    @property
    def end_datetime(self) -> datetime:
        """Window end as a timezone-aware datetime."""
        return datetime.fromtimestamp(self.end, UTC)

    def month_start(self, month: int) -> int:
        """Epoch seconds at which simulation month ``month`` starts."""
        return self.start + month * MONTH


def window_end(seed: int) -> datetime:
    """The fixed window end for ``seed``: within 2025, so output never depends on today."""
    return datetime.combine(FIRST_END + timedelta(days=seed % 365), datetime.min.time(), UTC)


def plan_world(customers: int, seed: int) -> WorldPlan:
    """Plan the shared world for ``customers`` customers from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCE11]))
    end = int(window_end(seed).timestamp())
    start = end - WINDOW_DAYS * DAY
    weights = np.array([town.weight for town in TOWNS])
    weights /= weights.sum()
    cells, incidents = _plan_cells(rng, customers, weights, start)
    shops = _plan_shops(rng, customers, weights)
    multiplier = int(rng.choice([3, 7, 9, 11, 13, 17, 19, 21])) * 1_234_567 | 1
    while multiplier % 5 == 0:
        multiplier += 2
    return WorldPlan(
        seed=seed,
        customers=customers,
        start=start,
        end=end,
        town_weights=weights,
        cells=cells,
        incidents=incidents,
        shops=shops,
        msisdn_multiplier=multiplier,
        msisdn_offset=int(rng.integers(0, 10**8)),
    )


def _by_town(town: IntArray) -> list[IntArray]:
    return [np.flatnonzero(town == index) for index in range(len(TOWNS))]


def _plan_cells(
    rng: np.random.Generator, customers: int, weights: FloatArray, start: int
) -> tuple[Cells, Incidents]:
    # Every town gets at least three cells so households in small towns still spread out.
    per_town = np.maximum(3, np.round(weights * max(customers // CUSTOMERS_PER_CELL, 60)))
    town = np.repeat(np.arange(len(TOWNS)), per_town.astype(np.int64))
    count = len(town)
    site = 100_000 + rng.permutation(count // 3 + 1)[np.arange(count) // 3]
    cell_id = np.array(
        [f"234-10-{s}-{n % 3 + 1}" for s, n in zip(site.tolist(), range(count), strict=True)],
        dtype=object,
    )
    bad = rng.random(count) < BAD_CELL_SHARE
    minor = ~bad & (rng.random(count) < MINOR_INCIDENT_SHARE)

    incidents_per_cell = np.where(bad, rng.integers(2, 5, count), minor.astype(np.int64))
    cell = np.repeat(np.arange(count), incidents_per_cell)
    severe = bad[cell]
    total = len(cell)
    duration = np.where(severe, rng.integers(3, 26, total), rng.integers(1, 4, total)) * DAY
    begin = start + rng.integers(0, WINDOW_DAYS * DAY - 3 * DAY, total)
    severity = np.where(severe, rng.uniform(0.45, 1.0, total), rng.uniform(0.1, 0.35, total))
    kinds = np.array(
        ["congestion", "backhaul_outage", "antenna_fault", "interference"], dtype=object
    )
    incidents = Incidents(
        cell=cell,
        kind=kinds[rng.integers(0, len(kinds), total)],
        start=begin.astype(np.int64),
        end=(begin + duration).astype(np.int64),
        severity=severity.round(3),
    )

    impact = np.zeros((count, MONTHS))
    main_share = np.zeros((count, MONTHS))
    inc_start = np.zeros((count, MONTHS), dtype=np.int64)
    inc_end = np.zeros((count, MONTHS), dtype=np.int64)
    for month in range(MONTHS):
        lo, hi = start + month * MONTH, start + (month + 1) * MONTH
        overlap = np.clip(np.minimum(incidents.end, hi) - np.maximum(incidents.start, lo), 0, None)
        share = overlap / MONTH
        np.add.at(impact[:, month], incidents.cell, incidents.severity * np.sqrt(share))
        # The month's main incident is the one with the largest overlap; complaints cite it.
        for index in np.flatnonzero(share > 0):
            target = incidents.cell[index]
            if share[index] > main_share[target, month]:
                main_share[target, month] = share[index]
                inc_start[target, month] = max(incidents.start[index], lo)
                inc_end[target, month] = min(incidents.end[index], hi)
    cells = Cells(
        cell_id=cell_id,
        town=town,
        bad=bad,
        base_drop=rng.uniform(0.002, 0.012, count),
        base_impairment=rng.uniform(0.01, 0.04, count),
        base_low_bitrate=rng.uniform(0.03, 0.10, count),
        base_stalling=rng.uniform(0.005, 0.03, count),
        impact=np.clip(impact, 0.0, 1.0),
        incident_start=inc_start,
        incident_end=inc_end,
        town_cells=_by_town(town),
    )
    return cells, incidents


def _plan_shops(rng: np.random.Generator, customers: int, weights: FloatArray) -> Shops:
    count = int(np.clip(customers // CUSTOMERS_PER_SHOP, len(TOWNS), 600))
    # One shop per town first, the rest where people live.
    town = np.concatenate(
        [np.arange(len(TOWNS)), rng.choice(len(TOWNS), count - len(TOWNS), p=weights)]
    ).astype(np.int64)
    octets = rng.integers(1, 255, (count, 3))
    return Shops(
        shop_id=np.array([f"SHOP{index + 101:04d}" for index in range(count)], dtype=object),
        town=town,
        ip=np.array([f"81.{a}.{b}.{c}" for a, b, c in octets.tolist()], dtype=object),
        tablet_cookie=np.array(
            [f"{value:016x}" for value in rng.integers(0, 2**63, count).tolist()], dtype=object
        ),
        town_shops=_by_town(town),
    )
