"""Ground truth written beside the sources under ``truth/``.

Per chunk: which person made every record, who each person really is, churn,
offers with margins, fraud episodes, every CSAT score (answered or not) and the
noise added to each field. Once per world: cells and their incidents, shops and
the offers catalogue.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from ingest.generator._arrays import where_present
from ingest.generator._journeys import NEVER, NO_TASTE
from ingest.generator._plan import DAY, WorldPlan
from ingest.generator._records import Records
from ingest.generator._reference import OFFERS, PROACTIVE_CATEGORIES, TOWNS
from ingest.generator._sources import Chunk

TRUTH_FILES: Final[dict[str, str]] = {
    "records": "Every source record's true person: source, file, record_id -> person_id; "
    "fraud marks records made by an impostor",
    "persons": "Each true person: household, account, clean personal details and keys, "
    "cells, tenure, churn and fraud flags, the household's favourite offer category",
    "churn": "Lines that ceased in the window, with the signals that preceded them",
    "offers": "Every offer made (care, app, shop), whether it was accepted, and its margin",
    "fraud": "SIM-swap fraud episodes: swap, device purchase, fraudster's cell, discovery",
    "csat": "The CSAT score of every agent contact, answered or not",
    "noise": "Which field of which record was made noisy, and how",
    "cells": "Radio cells, their towns, baseline quality and whether they are bad",
    "cell_incidents": "Incident profiles: every incident on every cell with kind and severity",
    "shops": "Shops with the IP and tablet cookie shared by everyone served there",
    "offer_catalogue": "The offers catalogue with category, monthly margin, term and launch",
}
"""Each truth table (``truth/<name>.parquet``) and what it holds."""

_UTC_SECONDS = pa.timestamp("s", tz="UTC")


def _timestamps(values: NDArray[np.int64]) -> pa.Array[Any]:
    """Epoch seconds as timestamps; 0 and ``NEVER`` mean 'none'."""
    return pa.array(values, _UTC_SECONDS, mask=(values == 0) | (values == NEVER))


def _per_row(
    batches: list[Records], name_of: Callable[[Records], str], rows: list[int]
) -> pa.Array[Any]:
    """One label per row (source or file), gathered from one label per batch."""
    labels = pa.array([name_of(batch) for batch in batches], pa.string())
    return labels.take(pa.array(np.repeat(np.arange(len(batches)), rows), pa.int64()))


def records_truth(batches: list[Records]) -> pa.Table:
    """Source, file, record id -> person id (and the fraud flag) for every record."""
    rows = [batch.table.num_rows for batch in batches]
    return pa.table(
        {
            "source": _per_row(batches, lambda batch: batch.file.source, rows),
            "file": _per_row(batches, lambda batch: batch.file.path, rows),
            "record_id": pa.concat_arrays([batch.record_ids for batch in batches]),
            "person_id": pa.concat_arrays([batch.person_id for batch in batches]),
            "fraud": pa.array(np.concatenate([batch.fraud for batch in batches]), pa.bool_()),
        }
    )


def noise_truth(batches: list[Records]) -> pa.Table:
    """Every noised field of every record."""
    rows = [len(batch.noise.record_ids) for batch in batches]
    return pa.table(
        {
            "source": _per_row(batches, lambda batch: batch.file.source, rows),
            "file": _per_row(batches, lambda batch: batch.file.path, rows),
            "record_id": pa.array([r for b in batches for r in b.noise.record_ids], pa.string()),
            "field": pa.array([f for b in batches for f in b.noise.fields], pa.string()),
            "noise": pa.array([k for b in batches for k in b.noise.kinds], pa.string()),
        }
    )


def persons_truth(chunk: Chunk) -> pa.Table:
    """Who each person of the chunk really is."""
    pop, journeys, plan = chunk.population, chunk.journeys, chunk.plan
    churned = journeys.churn_ts < plan.end
    fraud_victims = np.zeros(pop.size, dtype=bool)
    fraud_victims[journeys.frauds["person"]] = True
    return pa.table(
        {
            "person_id": pa.array(pop.person_id, pa.string()),
            "household_id": pa.array(pop.household_id, pa.string()),
            "household_head": pa.array(pop.member == 0, pa.bool_()),
            "payer_id": pa.array(pop.person_id[pop.payer], pa.string()),
            "account_id": pa.array(pop.account_id, pa.string()),
            "title": pa.array(pop.title, pa.string()),
            "first_name": pa.array(pop.first_name, pa.string()),
            "last_name": pa.array(pop.last_name, pa.string()),
            "date_of_birth": pa.array(pop.dob, pa.string()),
            "address_line1": pa.array(pop.address, pa.string()),
            "town": pa.array([TOWNS[t].name for t in pop.town.tolist()], pa.string()),
            "postcode": pa.array(pop.postcode, pa.string()),
            "msisdn": pa.array(chunk.msisdn["e164"], pa.string()),
            "email": pa.array(pop.email, pa.string()),
            "imei": pa.array(pop.imei, pa.string()),
            "cookie_ids": pa.array(
                [[c for c in row if c is not None] for row in pop.cookies.tolist()],
                pa.list_(pa.string()),
            ),
            "home_cell_id": pa.array(plan.cells.cell_id[pop.home_cell], pa.string()),
            "work_cell_id": pa.array(plan.cells.cell_id[pop.work_cell], pa.string()),
            "joined_at": _timestamps(pop.join_ts),
            "plan": pa.array(pop.plan, pa.string()),
            "monthly_fee_gbp": pa.array(pop.monthly_fee, pa.float64()),
            "churned_at": _timestamps(np.where(churned, journeys.churn_ts, 0)),
            "churn_reason": pa.array(where_present(churned, journeys.churn_reason), pa.string()),
            "fraud_victim": pa.array(fraud_victims, pa.bool_()),
            "favourite_offer_category": pa.array(
                where_present(
                    journeys.favourite_category != NO_TASTE,
                    np.array(PROACTIVE_CATEGORIES, dtype=object)[journeys.favourite_category],
                ),
                pa.string(),
            ),
        }
    )


def churn_truth(chunk: Chunk) -> pa.Table:
    """Ceased lines with what came before: the planted signals, for checking models."""
    pop, journeys, plan = chunk.population, chunk.journeys, chunk.plan
    churns = journeys.churns
    ceased = churns["ts"] < plan.end
    who, when = churns["person"][ceased], churns["ts"][ceased]
    shocks: dict[int, list[int]] = defaultdict(list)
    bills = journeys.bills
    for payer, ts in zip(
        bills["person"][bills["shock"]].tolist(), bills["ts"][bills["shock"]].tolist(), strict=True
    ):
        shocks[payer].append(ts)
    complaints: dict[int, list[int]] = defaultdict(list)
    contacts = journeys.contacts
    network = contacts["reason"] == "network_complaint"
    for person, ts in zip(
        contacts["person"][network].tolist(), contacts["ts"][network].tolist(), strict=True
    ):
        complaints[person].append(ts)
    window = 90 * DAY

    def recent(events: dict[int, list[int]], key: int, ts: int) -> bool:
        return any(ts - window <= t <= ts for t in events.get(key, ()))

    household_left = _other_member_left_before(pop.household, journeys.churn_ts, who, when)
    return pa.table(
        {
            "person_id": pa.array(pop.person_id[who], pa.string()),
            "churned_at": _timestamps(when),
            "reason": pa.array(churns["reason"][ceased], pa.string()),
            "port_out_requested_at": _timestamps(churns["request_ts"][ceased]),
            "bill_shock_within_90_days": pa.array(
                [
                    recent(shocks, int(pop.payer[p]), t)
                    for p, t in zip(who.tolist(), when.tolist(), strict=True)
                ],
                pa.bool_(),
            ),
            "network_complaint_within_90_days": pa.array(
                [
                    recent(complaints, p, t)
                    for p, t in zip(who.tolist(), when.tolist(), strict=True)
                ],
                pa.bool_(),
            ),
            "household_member_left_before": pa.array(household_left, pa.bool_()),
            "family_plan_member": pa.array(~pop.is_payer[who], pa.bool_()),
        }
    )


def _other_member_left_before(
    household: NDArray[np.int64],
    churn_ts: NDArray[np.int64],
    who: NDArray[np.int64],
    when: NDArray[np.int64],
) -> NDArray[np.bool_]:
    """Whether someone else in each person's household had left before ``when``."""
    households = int(household.max()) + 1
    order = np.lexsort((churn_ts, household))
    first_of = np.searchsorted(household[order], np.arange(households))
    size = np.bincount(household, minlength=households)
    earliest = churn_ts[order[first_of]]
    earliest_person = order[first_of]
    second = np.where(size > 1, churn_ts[order[np.minimum(first_of + 1, len(order) - 1)]], NEVER)
    # The earliest leaver of someone else: the household's first, or its second for that one.
    other = np.where(earliest_person[household[who]] == who, second[household[who]],
                     earliest[household[who]])  # fmt: skip
    result: NDArray[np.bool_] = other < when
    return result


def offers_truth(chunk: Chunk) -> pa.Table:
    """Every offer made to someone with a line at the time."""
    offers = chunk.journeys.offers
    keep = chunk.alive(offers["person"], offers["ts"])
    offer = offers["offer"][keep]
    accepted = offers["accepted"][keep]
    margin = np.array([OFFERS[i].margin_gbp for i in offer.tolist()])
    return pa.table(
        {
            "person_id": pa.array(chunk.population.person_id[offers["person"][keep]], pa.string()),
            "offer_id": pa.array([OFFERS[i].offer_id for i in offer.tolist()], pa.string()),
            "kind": pa.array([OFFERS[i].kind for i in offer.tolist()], pa.string()),
            "category": pa.array([OFFERS[i].category for i in offer.tolist()], pa.string()),
            "channel": pa.array(offers["channel"][keep], pa.string()),
            "context": pa.array(offers["context"][keep], pa.string()),
            "made_at": _timestamps(offers["ts"][keep]),
            "accepted": pa.array(accepted, pa.bool_()),
            "accepted_at": _timestamps(offers["accept_ts"][keep]),
            "margin_gbp": pa.array(np.where(accepted, margin, 0.0), pa.float64()),
        }
    )


def fraud_truth(chunk: Chunk) -> pa.Table:
    """SIM-swap fraud episodes, one row per victim."""
    journeys, plan = chunk.journeys, chunk.plan
    frauds, devices, swaps = journeys.frauds, journeys.devices, journeys.swaps
    keep = chunk.alive(frauds["person"], frauds["start"])
    victims = frauds["person"][keep]
    device_row = {p: i for i, p in enumerate(devices["person"].tolist()) if devices["fraud"][i]}
    swap_row = {p: i for i, p in enumerate(swaps["person"].tolist()) if swaps["fraud"][i]}
    rows = [device_row[p] for p in victims.tolist()]
    swap_rows = [swap_row[p] for p in victims.tolist()]
    shop = frauds["shop"][keep]
    purchase_shop = devices["shop"][rows] if rows else np.zeros(0, dtype=np.int64)
    return pa.table(
        {
            "person_id": pa.array(chunk.population.person_id[victims], pa.string()),
            "sim_swap_at": _timestamps(
                swaps["ts"][swap_rows] if swap_rows else np.zeros(0, dtype=np.int64)
            ),
            "sim_swap_channel": pa.array(
                swaps["channel"][swap_rows] if swap_rows else [], pa.string()
            ),
            "sim_swap_shop_id": pa.array(
                where_present(shop >= 0, plan.shops.shop_id[shop]), pa.string()
            ),
            "purchase_at": _timestamps(
                devices["ts"][rows] if rows else np.zeros(0, dtype=np.int64)
            ),
            "purchase_channel": pa.array(devices["channel"][rows] if rows else [], pa.string()),
            "purchase_shop_id": pa.array(
                where_present(purchase_shop >= 0, plan.shops.shop_id[purchase_shop]),
                pa.string(),
            ),
            "amount_gbp": pa.array(devices["amount"][rows] if rows else [], pa.float64()),
            "device_imei": pa.array(chunk.device_imei[rows] if rows else [], pa.string()),
            "fraud_cell_id": pa.array(plan.cells.cell_id[frauds["cell"][keep]], pa.string()),
            "discovered_at": _timestamps(frauds["end"][keep]),
        }
    )


def offer_catalogue(plan: WorldPlan) -> pa.Table:
    """The offers catalogue as the operator's product system exports it."""
    return pa.table(
        {
            "offer_id": [offer.offer_id for offer in OFFERS],
            "name": [offer.name for offer in OFFERS],
            "kind": [offer.kind for offer in OFFERS],
            "category": [offer.category for offer in OFFERS],
            "monthly_margin_gbp": [offer.monthly_margin_gbp for offer in OFFERS],
            "term_months": [offer.term_months for offer in OFFERS],
            "margin_gbp": [offer.margin_gbp for offer in OFFERS],
            "launched_at": _timestamps(
                np.array([plan.start + offer.launch_day * DAY for offer in OFFERS])
            ),
        }
    )


def world_truth(plan: WorldPlan) -> dict[str, pa.Table]:
    """The tables written once per world: cells, incidents, shops, offers catalogue."""
    cells, incidents, shops = plan.cells, plan.incidents, plan.shops
    return {
        "cells": pa.table(
            {
                "cell_id": pa.array(cells.cell_id, pa.string()),
                "town": pa.array([TOWNS[t].name for t in cells.town.tolist()], pa.string()),
                "postcode_area": pa.array(
                    [TOWNS[t].area for t in cells.town.tolist()], pa.string()
                ),
                "bad": pa.array(cells.bad, pa.bool_()),
                "incidents": pa.array(
                    np.bincount(incidents.cell, minlength=len(cells.bad)), pa.int64()
                ),
                "base_call_drop_rate": pa.array(cells.base_drop.round(4), pa.float64()),
                "base_call_quality_impairment": pa.array(
                    cells.base_impairment.round(4), pa.float64()
                ),
                "base_low_bitrate_share": pa.array(cells.base_low_bitrate.round(4), pa.float64()),
                "base_video_stalling_share": pa.array(cells.base_stalling.round(4), pa.float64()),
            }
        ),
        "cell_incidents": pa.table(
            {
                "cell_id": pa.array(cells.cell_id[incidents.cell], pa.string()),
                "kind": pa.array(incidents.kind, pa.string()),
                "started_at": _timestamps(incidents.start),
                "ended_at": _timestamps(incidents.end),
                "severity": pa.array(incidents.severity, pa.float64()),
            }
        ),
        "shops": pa.table(
            {
                "shop_id": pa.array(shops.shop_id, pa.string()),
                "town": pa.array([TOWNS[t].name for t in shops.town.tolist()], pa.string()),
                "ip": pa.array(shops.ip, pa.string()),
                "tablet_cookie_id": pa.array(shops.tablet_cookie, pa.string()),
            }
        ),
        "offer_catalogue": offer_catalogue(plan),
    }
