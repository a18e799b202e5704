"""The six source systems: each turns the chunk's journeys into its own records and keys.

Every builder writes what its system would really hold, in its own spelling:
the CRM writes E.164 numbers, the IVR switch bare digits, agents' desktops spaced
national numbers; shop staff type names with mistakes; the clickstream knows
cookies and, after a login, an MSISDN or an email with the occasional typo.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from ingest.generator import _noise
from ingest.generator._arrays import BoolArray, FloatArray, IntArray, Strings, where_present
from ingest.generator._journeys import AWAKE_HOURS, NO_ONE, Journeys, in_hours
from ingest.generator._plan import DAY, HOUR, MONTH, MONTHS, WorldPlan
from ingest.generator._population import Population, imei_numbers
from ingest.generator._records import (
    BILL_SHOCKS,
    BILLS,
    CARE_CALLS,
    CARE_TICKETS,
    CELL_KPIS,
    CLICKSTREAM,
    CRM_CUSTOMERS,
    CSAT_RESPONSES,
    PAYMENTS,
    SHOP_VISITS,
    TERMINATIONS,
    Coded,
    Column,
    Draft,
    Records,
    SourceFile,
    chunk_random,
    coded,
    fixed_width,
)
from ingest.generator._reference import (
    APP_PAGES,
    DEVICE_MODELS,
    FEMALE_FIRST_NAMES,
    MALE_FIRST_NAMES,
    OFFERS,
    TOWNS,
)

CRM_DUPLICATE_SHARE: Final = 0.02
"""Share of people registered twice in the CRM (a second record with its own id)."""
WITHHELD_SHARE: Final = 0.03
"""Share of calls whose caller withholds their number: nothing to key the call by."""
FRAUD_DEVICE_SLOT: Final = 7
"""Device number slot of a fraudster's handset (a person's own devices use 0-6)."""
ACCESSORIES: Final = ("Phone case", "Screen protector", "Charger", "Earbuds", "Car mount")
IVR_PATHS: Final[dict[str, str]] = {
    "bill_dispute": "billing>query>agent",
    "network_complaint": "technical>network>agent",
    "port_out_request": "leaving>pac>agent",
    "cancellation_request": "leaving>cancel>agent",
    "device_support": "technical>device",
    "general_enquiry": "account>general",
    "sim_swap": "account>lost_sim>agent",
    "no_service": "technical>no_service>agent",
}
OFFER_IDS: Final = np.array([offer.offer_id for offer in OFFERS] + [None], dtype=object)
"""Offer ids by catalogue index; index -1 (no offer) reads as ``None``."""
OFFER_TABLE: Final = pa.array([offer.offer_id for offer in OFFERS], pa.string())
MSISDN_STYLES: Final = ("e164", "digits", "national", "national_spaced", "international_spaced")
EVENTS: Final = ("app_open", "page_view", "login", "offer_viewed", "offer_accepted",
                 "device_order")  # fmt: skip
PAGES: Final = tuple(page for page, _ in APP_PAGES) + (
    "/home", "/", "/login", "/switching/pac-code", "/offers/confirm", "/shop/checkout",
)  # fmt: skip


def _vocabulary(values: tuple[str, ...], codes: IntArray) -> Coded:
    return coded(pa.array(values, pa.string()), codes)


@dataclass
class Chunk:
    """One chunk of people with their journeys and the generators that noise them."""

    index: int
    plan: WorldPlan
    population: Population
    journeys: Journeys
    rng: np.random.Generator

    @cached_property
    def rnd(self) -> random.Random:
        """Per-string noise draws."""
        return chunk_random(self.rng)

    @cached_property
    def msisdn(self) -> dict[str, Strings]:
        """Each person's number in every spelling (``_noise.msisdn_styles``)."""
        return _noise.msisdn_styles(self.population.msisdn)

    @cached_property
    def device_imei(self) -> Strings:
        """The IMEI of the device in each row of ``journeys.devices``."""
        devices = self.journeys.devices
        person, ts = devices["person"], devices["ts"]
        order = np.lexsort((ts, person))
        rank = np.empty(len(order), dtype=np.int64)
        firsts = np.r_[0, np.flatnonzero(np.diff(person[order])) + 1]
        starts = np.repeat(firsts, np.diff(np.r_[firsts, len(order)]))
        rank[order] = np.arange(len(order)) - starts
        slot = np.where(devices["fraud"], FRAUD_DEVICE_SLOT, np.minimum(rank + 1, 6))
        numbers = self.population.index[person] * 8 + slot
        return imei_numbers(self.plan, numbers, devices["model"])

    @cached_property
    def person_ids(self) -> pa.Array[Any]:
        """Person ids of the chunk as Arrow strings (records point into them)."""
        return pa.array(self.population.person_id, pa.string())

    @cached_property
    def _person_tables(self) -> dict[str, pa.Array[Any]]:
        pop = self.population
        tables: dict[str, pa.Array[Any]] = {
            name: pa.array(getattr(pop, name), pa.string())
            for name in ("account_id", "email", "home_ip")
        }
        tables["msisdn"] = pa.concat_arrays(
            [pa.array(self.msisdn[style], pa.string()) for style in MSISDN_STYLES]
        )
        tables["imei"] = pa.array(np.concatenate([pop.imei, self.device_imei]), pa.string())
        return tables

    def by_person(self, name: str, people: IntArray) -> Coded:
        """Each row's person's ``account_id``, ``email`` or ``home_ip`` as a coded column."""
        return coded(self._person_tables[name], people)

    def msisdn_coded(
        self, people: IntArray, styles: tuple[str, ...], weights: tuple[float, ...]
    ) -> Coded:
        """Each row's person's number, written in one of ``styles`` chosen with ``weights``."""
        choice = self.rng.choice(len(styles), len(people), p=np.array(weights) / sum(weights))
        style = np.array([MSISDN_STYLES.index(name) for name in styles])[choice]
        return coded(self._person_tables["msisdn"], style * self.population.size + people)

    def msisdn_in(self, style: str, people: IntArray) -> Coded:
        """Each row's person's number written in one ``style``."""
        return coded(
            self._person_tables["msisdn"],
            MSISDN_STYLES.index(style) * self.population.size + people,
        )

    def imei_coded(self, codes: IntArray) -> Coded:
        """IMEIs by code: a person's first phone (``person``) or a bought one (size + row)."""
        return coded(self._person_tables["imei"], codes)

    @cached_property
    def cell_ids(self) -> pa.Array[Any]:
        """Cell ids of the world, for coded cell columns."""
        return pa.array(self.plan.cells.cell_id, pa.string())

    @cached_property
    def carrier_ips(self) -> Strings:
        """The mobile carrier's NAT addresses, each shared by many app sessions."""
        pool = max(self.plan.customers // 50, 64)
        return np.array([f"100.64.{v // 256 % 256}.{v % 256}" for v in range(pool)], dtype=object)

    def alive(self, people: IntArray, ts: IntArray) -> BoolArray:
        """Rows inside the window while the person had a line (up to and at churn)."""
        pop, plan = self.population, self.plan
        result: BoolArray = (
            (ts >= pop.join_ts[people])
            & (ts <= self.journeys.churn_ts[people])
            & (ts >= plan.start)
            & (ts < plan.end)
        )
        return result

    def draft(
        self,
        file: SourceFile,
        people: IntArray,
        ts: IntArray,
        columns: dict[str, Column],
        **kwargs: Any,
    ) -> Draft:
        """Start the chunk's draft of ``file``."""
        return Draft(file, self.index, people, self.person_ids, ts, columns, **kwargs)


def _pick_style(
    chunk: Chunk, people: IntArray, styles: tuple[str, ...], weights: tuple[float, ...]
) -> Strings:
    """Each row's number written in one of ``styles``, chosen with ``weights``."""
    choice = chunk.rng.choice(len(styles), len(people), p=np.array(weights) / sum(weights))
    out = np.empty(len(people), dtype=object)
    for position, style in enumerate(styles):
        rows = choice == position
        out[rows] = chunk.msisdn[style][people[rows]]
    return out


def _some(chunk: Chunk, values: Strings, share: float | FloatArray) -> Strings:
    """``values`` where a ``share`` draw succeeds, else ``None`` (a field not captured)."""
    keep = chunk.rng.random(len(values)) < share
    return where_present(keep, values)


def _uk_dob(iso: Strings) -> Strings:
    return np.array([f"{d[8:10]}/{d[5:7]}/{d[:4]}" for d in iso.tolist()], dtype=object)


def _swapped_uk_dob(text: str) -> str | None:
    day, month, year = text.split("/")
    if day == month or int(day) > 12:
        return None
    return f"{month}/{day}/{year}"


def _no_space(text: str) -> str:
    return text.replace(" ", "")


def _upper(text: str) -> str:
    return text.upper()


# -- CRM -----------------------------------------------------------------------------


def crm(chunk: Chunk) -> Records:
    """Customer master: every line's subscriber, plus duplicates registered again later."""
    pop, rng, rnd, plan = chunk.population, chunk.rng, chunk.rnd, chunk.plan
    duplicate = np.flatnonzero(rng.random(pop.size) < CRM_DUPLICATE_SHARE)
    people = np.concatenate([np.arange(pop.size), duplicate])
    # The second registration happens while the line is live (a shop re-keys the customer).
    last_day = np.minimum(plan.end, chunk.journeys.churn_ts[duplicate])
    again = pop.join_ts[duplicate] + (
        (last_day - pop.join_ts[duplicate]) * rng.uniform(0.2, 0.9, len(duplicate))
    ).astype(np.int64)
    created = np.concatenate([pop.join_ts, again])
    is_duplicate = np.arange(len(people)) >= pop.size
    draft = chunk.draft(
        CRM_CUSTOMERS,
        people,
        created,
        {
            "account_id": pop.account_id[people],
            "title": pop.title[people],
            "first_name": pop.first_name[people],
            "last_name": pop.last_name[people],
            "date_of_birth": pop.dob[people],
            "email": pop.email[people],
            "msisdn": chunk.msisdn["e164"][people],
            "address_line1": pop.address[people],
            "town": np.array([TOWNS[t].name for t in pop.town[people].tolist()], dtype=object),
            "postcode": pop.postcode[people],
            "created_at": created,
        },
        hidden={"duplicate": is_duplicate},
    )
    # The second registration was keyed in by someone else, so it is much noisier.
    dup = draft.hidden["duplicate"]
    heavy = np.where(dup, 1.0, 0.0)
    draft.vary(
        "first_name", 0.04 + 0.26 * heavy, lambda v: _noise.nickname(v, rnd), rng, "nickname"
    )
    draft.vary("first_name", 0.02 + 0.13 * heavy, lambda v: _noise.typo(v, rnd), rng, "typo")
    draft.vary("last_name", 0.02 + 0.13 * heavy, lambda v: _noise.typo(v, rnd), rng, "typo")
    draft.swap("first_name", "last_name", 0.01, rng)
    draft.blank("email", 0.04 + 0.36 * heavy, rng)
    draft.blank("msisdn", 0.01 + 0.29 * heavy, rng)
    draft.blank("date_of_birth", 0.015, rng)
    draft.vary("date_of_birth", 0.015, _noise.swapped_day_month, rng, "day_month_swapped")
    draft.vary("address_line1", 0.2 + 0.2 * heavy, _noise.abbreviate_street, rng, "abbreviated")
    draft.vary("postcode", 0.05, _no_space, rng, "no_space")
    draft.vary("email", 0.01 + 0.05 * heavy, lambda v: _noise.email_typo(v, rnd), rng, "typo")
    return draft.records()


# -- billing -------------------------------------------------------------------------


def billing(chunk: Chunk) -> list[Records]:
    """Bills, payments and bill-shock alerts per account; ceased lines."""
    pop, rng, plan, journeys = chunk.population, chunk.rng, chunk.plan, chunk.journeys
    bills = journeys.bills
    keep = chunk.alive(bills["person"], bills["ts"])
    payer, ts = bills["person"][keep], bills["ts"][keep]
    bill_draft = chunk.draft(
        BILLS,
        payer,
        ts,
        {
            "account_id": chunk.by_person("account_id", payer),
            "bill_date": ts,
            "period_start": ts - MONTH,
            "period_end": ts - 1,
            "amount_gbp": bills["amount"][keep],
            "usage_gbp": bills["usage"][keep],
            "roaming_gbp": bills["roaming"][keep],
            "lines": bills["lines"][keep],
        },
        hidden={
            "shock": bills["shock"][keep],
            "typical": bills["typical"][keep],
            "bill_ts": ts,
            "amount": bills["amount"][keep],
        },
    )
    bill_people = bill_draft.people
    bill_ts = bill_draft.hidden["bill_ts"]
    amount = bill_draft.hidden["amount"]
    shock = bill_draft.hidden["shock"]

    # Direct debits land on day 14; card payers pay when they get round to it. Shocked
    # bills bounce far more often, and a bounced debit is retried a week later.
    count = len(bill_draft)
    bill_rows = np.arange(count)
    debit = rng.random(count) < 0.8
    due = bill_ts + np.where(debit, 14 * DAY, rng.integers(2 * DAY, 20 * DAY, count))
    failed = rng.random(count) < 0.02 + 0.15 * shock
    retried = failed & (rng.random(count) < 0.85)
    pay_people = np.concatenate([bill_people, bill_people[retried]])
    pay_ts = np.concatenate([due, due[retried] + 7 * DAY])
    keep_pay = chunk.alive(pay_people, pay_ts)
    pay_people, pay_ts = pay_people[keep_pay], pay_ts[keep_pay]
    by_card = np.concatenate([~debit, ~debit[retried]])[keep_pay]
    bounced = np.concatenate([failed, np.zeros(int(retried.sum()), dtype=bool)])[keep_pay]
    payments = chunk.draft(
        PAYMENTS,
        pay_people,
        pay_ts,
        {
            "account_id": chunk.by_person("account_id", pay_people),
            "bill_id": bill_draft.ids(np.concatenate([bill_rows, bill_rows[retried]])[keep_pay]),
            "paid_at": pay_ts,
            "amount_gbp": np.concatenate([amount, amount[retried]])[keep_pay],
            "method": _vocabulary(("direct_debit", "card"), by_card.astype(np.int64)),
            "status": _vocabulary(("paid", "failed"), bounced.astype(np.int64)),
        },
    )

    shocked = np.flatnonzero(shock)
    alert_ts = bill_ts[shocked] + 2 * HOUR
    keep_alert = chunk.alive(bill_people[shocked], alert_ts)
    shocked, alert_ts = shocked[keep_alert], alert_ts[keep_alert]
    alerts = chunk.draft(
        BILL_SHOCKS,
        bill_people[shocked],
        alert_ts,
        {
            "account_id": chunk.by_person("account_id", bill_people[shocked]),
            "bill_id": bill_draft.ids(shocked),
            "detected_at": alert_ts,
            "amount_gbp": amount[shocked],
            "typical_gbp": bill_draft.hidden["typical"][shocked],
            "ratio": (amount[shocked] / bill_draft.hidden["typical"][shocked]).round(2),
        },
    )

    churns = journeys.churns
    ceased = churns["ts"] < plan.end
    who, when = churns["person"][ceased], churns["ts"][ceased]
    final = pop.monthly_fee[who] * rng.uniform(0.2, 1.0, len(who))
    terminations = chunk.draft(
        TERMINATIONS,
        who,
        when,
        {
            "account_id": pop.account_id[who],
            "msisdn": chunk.msisdn["digits"][who],
            "ceased_at": when,
            "reason": churns["reason"][ceased],
            "final_bill_gbp": final.round(2),
        },
    )
    return [bill_draft.records(), payments.records(), alerts.records(), terminations.records()]


# -- care ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CareRecords:
    """The care system's three files and the truth about every CSAT answer."""

    calls: Records
    tickets: Records
    csat: Records
    csat_truth: pa.Table
    """Every agent call's CSAT score, answered or not (``truth/csat.parquet``)."""


def care(chunk: Chunk) -> CareRecords:
    """Calls (IVR and agent), the tickets they raise and the CSAT answers that follow."""
    pop, rng, rnd, plan = chunk.population, chunk.rng, chunk.rnd, chunk.plan
    contacts = chunk.journeys.contacts
    keep = chunk.alive(contacts["person"], contacts["ts"])
    c = {name: values[keep] for name, values in contacts.items()}
    who, ts, caller, agent = c["person"], c["ts"], c["caller"], c["agent"]
    count = len(who)

    # The switch writes the calling line as bare digits; agents' desktops re-key it.
    known_caller = np.where(caller == NO_ONE, who, caller)
    number = np.where(
        agent,
        _pick_style(
            chunk,
            known_caller,
            ("national_spaced", "international_spaced", "national"),
            (0.5, 0.3, 0.2),
        ),
        chunk.msisdn["digits"][known_caller],
    )
    stranger = np.array(
        [f"07{value:09d}" for value in rng.integers(0, 10**9, count).tolist()], dtype=object
    )
    number = np.where(caller == NO_ONE, stranger, number)
    number = where_present(rng.random(count) >= WITHHELD_SHARE, number)
    verified = agent & (rng.random(count) < 0.6)
    duration = np.where(agent, rng.integers(180, 1500, count), rng.integers(30, 240, count))
    reason = c["reason"]
    ivr_path = np.array([IVR_PATHS[r] for r in reason.tolist()], dtype=object)
    ivr_path = np.where(agent, ivr_path, ivr_path + ">self_service")
    calls = chunk.draft(
        CARE_CALLS,
        who,
        ts,
        {
            "started_at": ts,
            "caller_number": number,
            "handled_by": np.where(agent, "agent", "ivr").astype(object),
            "ivr_path": ivr_path.astype(object),
            "reason": reason,
            "outcome": c["outcome"],
            "agent_id": where_present(
                agent,
                np.array(
                    [f"AG{value:04d}" for value in rng.integers(1, 900, count).tolist()],
                    dtype=object,
                ),
            ),
            "account_id": where_present(verified, pop.account_id[who]),
            "offer_id": OFFER_IDS[c["offer"]],
            "duration_s": duration.astype(np.int64),
        },
        fraud=c["fraud"],
        hidden={
            name: c[name]
            for name in ("csat", "csat_ts", "responded", "ticket_close", "cell", "caller", "agent")
        }
        | {"ts": ts, "reason": reason},
    )
    hidden = calls.hidden
    call_ts = hidden["ts"]
    reasons = hidden["reason"]
    subject = calls.people

    raised = np.flatnonzero(hidden["ticket_close"] > 0)
    opened = call_ts[raised] + rng.integers(60, 30 * 60, len(raised))
    keep_ticket = chunk.alive(subject[raised], opened)
    raised, opened = raised[keep_ticket], opened[keep_ticket]
    closed = hidden["ticket_close"][raised]
    category = {"network_complaint": "network", "bill_dispute": "billing", "no_service": "fraud"}
    cell = hidden["cell"][raised]
    tickets = chunk.draft(
        CARE_TICKETS,
        subject[raised],
        opened,
        {
            "opened_at": opened,
            "closed_at": np.where(closed < plan.end, closed, 0),
            "msisdn": chunk.msisdn["international_spaced"][subject[raised]],
            "category": np.array([category[r] for r in reasons[raised].tolist()], dtype=object),
            "cell_id": where_present(cell >= 0, plan.cells.cell_id[np.maximum(cell, 0)]),
            "call_id": calls.ids(raised),
            "priority": np.where(rng.random(len(raised)) < 0.2, "high", "normal").astype(object),
        },
    )

    # The survey goes by SMS to whichever phone called, so proxies answer for the customer.
    asked = hidden["agent"] & ~calls.fraud & (hidden["caller"] != NO_ONE)
    answered = np.flatnonzero(asked & hidden["responded"])
    answer_ts = hidden["csat_ts"][answered]
    keep_answer = chunk.alive(subject[answered], answer_ts)
    answered, answer_ts = answered[keep_answer], answer_ts[keep_answer]
    csat = chunk.draft(
        CSAT_RESPONSES,
        subject[answered],
        answer_ts,
        {
            "call_id": calls.ids(answered),
            "msisdn": chunk.msisdn["national"][hidden["caller"][answered]],
            "answered_at": answer_ts,
            "score": hidden["csat"][answered],
        },
    )
    response_of_call = np.full(len(calls), -1, dtype=np.int64)
    response_of_call[answered[csat.order]] = np.arange(len(csat))
    graded = np.flatnonzero(hidden["agent"] & ~calls.fraud)
    answered_call = csat.ids(response_of_call[graded]).arrow()
    csat_truth = pa.table(
        {
            "person_id": chunk.person_ids.take(pa.array(subject[graded], pa.int64())),
            "call_id": calls.ids(graded).arrow(),
            "reason": pa.array(reasons[graded], pa.string()),
            "called_at": pa.array(call_ts[graded], pa.timestamp("s", tz="UTC")),
            "score": pa.array(hidden["csat"][graded], pa.int64()),
            "answered": answered_call.is_valid(),
            "response_id": answered_call,
        }
    )
    calls.vary("caller_number", 0.01, lambda v: _noise.typo(v, rnd), rng, "typo")
    return CareRecords(calls.records(), tickets.records(), csat.records(), csat_truth)


# -- retail --------------------------------------------------------------------------


def retail(chunk: Chunk) -> Records:
    """Shop visits keyed in by staff: purchases, SIM swaps, payments, accepted offers."""
    pop, rng, rnd, plan, journeys = (
        chunk.population,
        chunk.rng,
        chunk.rnd,
        chunk.plan,
        chunk.journeys,
    )
    visits, devices, swaps = journeys.visits, journeys.devices, journeys.swaps
    in_shop_device = devices["channel"] == "retail"
    in_shop_swap = swaps["channel"] == "retail"
    accessory = np.array(ACCESSORIES, dtype=object)[
        rng.integers(0, len(ACCESSORIES), len(visits["person"]))
    ]
    visit_product = where_present(visits["visit_type"] == "accessory_purchase", accessory)
    model_names = np.array([m.name for m in DEVICE_MODELS], dtype=object)
    parts: dict[str, list[NDArray[Any]]] = {
        "person": [
            visits["person"],
            devices["person"][in_shop_device],
            swaps["person"][in_shop_swap],
        ],
        "ts": [visits["ts"], devices["ts"][in_shop_device], swaps["ts"][in_shop_swap]],
        "shop": [visits["shop"], devices["shop"][in_shop_device], swaps["shop"][in_shop_swap]],
        "visit_type": [
            visits["visit_type"],
            np.full(int(in_shop_device.sum()), "device_purchase", dtype=object),
            np.full(int(in_shop_swap.sum()), "sim_swap", dtype=object),
        ],
        "product": [
            visit_product,
            model_names[devices["model"][in_shop_device]],
            np.full(int(in_shop_swap.sum()), "SIM card", dtype=object),
        ],
        "imei": [
            np.full(len(visits["person"]), None, dtype=object),
            chunk.device_imei[in_shop_device],
            np.full(int(in_shop_swap.sum()), None, dtype=object),
        ],
        "amount": [
            visits["amount"],
            devices["amount"][in_shop_device],
            np.zeros(int(in_shop_swap.sum())),
        ],
        "offer": [
            visits["offer"],
            np.full(int(in_shop_device.sum()), NO_ONE),
            np.full(int(in_shop_swap.sum()), NO_ONE),
        ],
        "fraud": [
            np.zeros(len(visits["person"]), dtype=bool),
            devices["fraud"][in_shop_device],
            swaps["fraud"][in_shop_swap],
        ],
    }
    rows = {name: np.concatenate(values) for name, values in parts.items()}
    keep = chunk.alive(rows["person"], rows["ts"])
    rows = {name: values[keep] for name, values in rows.items()}
    who, shop, fraud, visit_type = rows["person"], rows["shop"], rows["fraud"], rows["visit_type"]
    count = len(who)
    on_account = rng.random(count) < np.select(
        [
            visit_type == "bill_payment",
            visit_type == "device_purchase",
            visit_type == "sim_swap",
            visit_type == "offer_accepted",
        ],
        [0.8, 0.9, 0.7, 0.6],
        0.2,
    )
    till = rng.integers(1, 4, count)
    shop_ids = plan.shops.shop_id[shop]
    names = np.where(
        pop.female[who],
        np.array(FEMALE_FIRST_NAMES, dtype=object)[rng.integers(0, len(FEMALE_FIRST_NAMES), count)],
        np.array(MALE_FIRST_NAMES, dtype=object)[rng.integers(0, len(MALE_FIRST_NAMES), count)],
    )
    # An impostor gets the victim's surname right but often improvises the rest.
    impostor_name = fraud & (rng.random(count) < 0.5)
    draft = chunk.draft(
        SHOP_VISITS,
        who,
        rows["ts"],
        {
            "shop_id": shop_ids,
            "visited_at": rows["ts"],
            "staff_id": np.array(
                [
                    f"{s}-S{k:02d}"
                    for s, k in zip(
                        shop_ids.tolist(), rng.integers(1, 13, count).tolist(), strict=True
                    )
                ],
                dtype=object,
            ),
            "till_id": np.array(
                [f"{s}-T{k}" for s, k in zip(shop_ids.tolist(), till.tolist(), strict=True)],
                dtype=object,
            ),
            "till_ip": plan.shops.ip[shop],
            "visit_type": visit_type,
            "first_name": np.where(impostor_name, names, pop.first_name[who]),
            "last_name": pop.last_name[who],
            "date_of_birth": where_present(
                ~fraud | (rng.random(count) >= 0.6), _uk_dob(pop.dob[who])
            ),
            "postcode": where_present(~fraud | (rng.random(count) >= 0.5), pop.postcode[who]),
            "msisdn": _some(
                chunk,
                _pick_style(chunk, who, ("national_spaced", "national", "e164"), (0.4, 0.4, 0.2)),
                0.92,
            ),
            "email": _some(chunk, pop.email[who], np.where(fraud, 0.0, 0.35)),
            "account_id": where_present(on_account, pop.account_id[who]),
            "product": rows["product"],
            "imei": rows["imei"],
            "amount_gbp": np.where(rows["amount"] > 0, rows["amount"], np.nan).round(2),
            "offer_id": OFFER_IDS[rows["offer"]],
        },
        fraud=fraud,
    )
    draft.vary("first_name", 0.10, lambda v: _noise.nickname(v, rnd), rng, "nickname")
    draft.vary("first_name", 0.06, lambda v: _noise.typo(v, rnd), rng, "typo")
    draft.vary("last_name", 0.06, lambda v: _noise.typo(v, rnd), rng, "typo")
    draft.swap("first_name", "last_name", 0.04, rng)
    upper = rng.random(len(draft)) < 0.12
    for column in ("first_name", "last_name"):
        draft.vary(column, np.where(upper, 1.0, 0.0), _upper, rng, "upper_case")
    draft.blank("date_of_birth", 0.25, rng)
    draft.vary("date_of_birth", 0.05, _swapped_uk_dob, rng, "day_month_swapped")
    draft.blank("postcode", 0.15, rng)
    draft.vary("postcode", 0.10, _no_space, rng, "no_space")
    draft.vary("msisdn", 0.015, lambda v: _noise.typo(v, rnd), rng, "typo")
    draft.vary("email", 0.06, lambda v: _noise.email_typo(v, rnd), rng, "typo")
    draft.vary("imei", 0.3, _dashed_imei, rng, "separators")
    return draft.records()


def _dashed_imei(imei: str) -> str:
    return f"{imei[:2]}-{imei[2:8]}-{imei[8:14]}-{imei[14]}"


# -- clickstream ---------------------------------------------------------------------


@dataclass
class _Sessions:
    """Browsing sessions before they are expanded into hits (one list entry per batch)."""

    person: list[IntArray] = field(default_factory=list)
    ts: list[IntArray] = field(default_factory=list)
    cookie: list[Strings] = field(default_factory=list)
    app: list[BoolArray] = field(default_factory=list)
    ip: list[Strings] = field(default_factory=list)
    login: list[BoolArray] = field(default_factory=list)
    by_email: list[BoolArray] = field(default_factory=list)
    pages: list[IntArray] = field(default_factory=list)
    final_event: list[IntArray] = field(default_factory=list)
    """Code in ``EVENTS`` of the journey event the session ends in, -1 for none."""
    final_page: list[IntArray] = field(default_factory=list)
    final_offer: list[IntArray] = field(default_factory=list)
    final_amount: list[FloatArray] = field(default_factory=list)
    fraud: list[BoolArray] = field(default_factory=list)

    def add(self, chunk: Chunk, person: IntArray, ts: IntArray, **given: Any) -> None:
        """Sessions of ``person`` at ``ts``; fields not ``given`` get each person's habits."""
        rng, pop = chunk.rng, chunk.population
        count = len(person)
        has_cookie = pop.cookie_count[person] > 0
        slot = (rng.random(count) * np.maximum(pop.cookie_count[person], 1)).astype(np.int64)
        # People without cookies (offline customers) show up with a one-off browser.
        cookie = pop.cookies[person, slot]
        cookie[~has_cookie] = _fresh_cookies(rng, int((~has_cookie).sum()))
        app = given.get("app", (slot == 0) & has_cookie & (pop.index[person] % 10 < 7))
        # On the mobile network, app sessions come from the carrier's shared NAT addresses.
        carrier = chunk.carrier_ips[rng.integers(0, len(chunk.carrier_ips), count)]
        defaults: dict[str, Any] = {
            "cookie": cookie,
            "app": app,
            "ip": np.where(app, carrier, pop.home_ip[person]),
            "login": rng.random(count) < np.where(app, 0.35, 0.5),
            "by_email": rng.random(count) < np.where(app, 0.25, 0.8),
            "pages": rng.poisson(1.0, count),
            "final_event": np.full(count, -1),
            "final_page": np.full(count, -1),
            "final_offer": np.full(count, NO_ONE),
            "final_amount": np.full(count, np.nan),
            "fraud": np.zeros(count, dtype=bool),
        }
        self.person.append(person)
        self.ts.append(ts)
        for name, default in defaults.items():
            value = given.get(name, default)
            getattr(self, name).append(np.broadcast_to(value, count).copy())

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Every batch concatenated, by field."""
        return {name: np.concatenate(getattr(self, name)) for name in self.__dataclass_fields__}


def _fresh_cookies(rng: np.random.Generator, count: int) -> Strings:
    return np.array([f"{v:016x}" for v in rng.integers(0, 2**63, count).tolist()], dtype=object)


def clickstream(chunk: Chunk) -> Records:
    """App and web hits: everyday browsing plus the sessions journeys leave behind."""
    pop, rng, plan, journeys = chunk.population, chunk.rng, chunk.plan, chunk.journeys
    sessions = _Sessions()
    digital = pop.cookie_count > 0

    month_start = plan.start + np.arange(MONTHS) * MONTH
    present = (pop.join_ts[:, None] < month_start + MONTH) & (
        journeys.churn_ts[:, None] > month_start
    )
    counts = rng.poisson(pop.session_rate[:, None] * present)
    person = np.repeat(np.repeat(np.arange(pop.size), MONTHS), counts.ravel())
    month = np.repeat(np.tile(np.arange(MONTHS), pop.size), counts.ravel())
    starts = month_start[month] + rng.integers(0, MONTH, len(person))
    sessions.add(chunk, person, in_hours(starts, rng, *AWAKE_HOURS))

    # Journey-driven sessions: a shocked bill is looked at, leavers read the PAC page,
    # offers are viewed and accepted, phones are ordered online.
    bills = journeys.bills
    looked = np.flatnonzero(
        bills["shock"] & digital[bills["person"]] & (rng.random(len(bills["person"])) < 0.7)
    )
    _ending_in(
        chunk, sessions, bills["person"][looked],
        bills["ts"][looked] + rng.integers(HOUR, 3 * DAY, len(looked)),
        "page_view", "/account/bill", login=True,
    )  # fmt: skip
    intents = journeys.intents
    _ending_in(chunk, sessions, intents["person"], intents["ts"], "page_view",
               "/switching/pac-code")  # fmt: skip
    offers = journeys.offers
    app = offers["channel"] == "app"
    _ending_in(
        chunk, sessions, offers["person"][app], offers["ts"][app], "offer_viewed", "/offers",
        final_offer=offers["offer"][app],
    )  # fmt: skip
    took = app & offers["accepted"]
    _ending_in(
        chunk, sessions, offers["person"][took], offers["accept_ts"][took], "offer_accepted",
        "/offers/confirm", final_offer=offers["offer"][took], login=True,
    )  # fmt: skip
    devices = journeys.devices
    online = (devices["channel"] == "web") & ~devices["fraud"]
    _ending_in(
        chunk, sessions, devices["person"][online], devices["ts"][online], "device_order",
        "/shop/checkout", final_amount=devices["amount"][online], login=True,
    )  # fmt: skip
    stolen = (devices["channel"] == "web") & devices["fraud"]
    count = int(stolen.sum())
    # The fraudster orders from a fresh browser and a foreign IP, logged in as the victim.
    _ending_in(
        chunk, sessions, devices["person"][stolen], devices["ts"][stolen], "device_order",
        "/shop/checkout", final_amount=devices["amount"][stolen], login=True, by_email=False,
        app=False,
        cookie=_fresh_cookies(rng, count),
        ip=np.array([f"185.{a}.{b}.{c}" for a, b, c in rng.integers(1, 255, (count, 3)).tolist()],
                    dtype=object),
        fraud=True,
    )  # fmt: skip
    visits = journeys.visits
    setup = np.flatnonzero(visits["visit_type"] == "app_setup")
    shop = visits["shop"][setup]
    # Staff log the customer in on the shop's tablet: one cookie and IP for many people.
    _ending_in(
        chunk, sessions, visits["person"][setup], visits["ts"][setup] + 300, "page_view",
        "/account/settings", login=True, by_email=False, app=True,
        cookie=plan.shops.tablet_cookie[shop], ip=plan.shops.ip[shop],
    )  # fmt: skip
    return _hits(chunk, sessions.arrays())


def _ending_in(
    chunk: Chunk,
    sessions: _Sessions,
    person: IntArray,
    ts: IntArray,
    event: str,
    page: str,
    **given: Any,
) -> None:
    """Sessions that end in one journey event after a page or two of browsing."""
    sessions.add(
        chunk,
        person,
        ts,
        pages=chunk.rng.poisson(0.5, len(person)),
        final_event=EVENTS.index(event),
        final_page=PAGES.index(page),
        **given,
    )


def _hits(chunk: Chunk, s: dict[str, NDArray[Any]]) -> Records:
    rng = chunk.rng
    has_final = s["final_event"] >= 0
    per_session = 1 + s["login"] + s["pages"] + has_final
    total = int(per_session.sum())
    session = np.repeat(np.arange(len(per_session)), per_session)
    first = np.r_[0, np.cumsum(per_session)[:-1]]
    position = np.arange(total) - first[session]
    is_login = s["login"][session] & (position == 1)
    is_final = has_final[session] & (position == per_session[session] - 1)
    gaps = rng.integers(5, 150, total)
    gaps[position == 0] = 0
    elapsed = np.cumsum(gaps)
    ts = s["ts"][session] + elapsed - elapsed[first][session]
    person = s["person"][session]
    app = s["app"][session]

    weights = np.array([weight for _, weight in APP_PAGES])
    page = rng.choice(len(APP_PAGES), total, p=weights / weights.sum())
    event = np.full(total, EVENTS.index("page_view"))
    opening = position == 0
    event[opening & app] = EVENTS.index("app_open")
    page[opening] = np.where(app[opening], PAGES.index("/home"), PAGES.index("/"))
    event[is_login] = EVENTS.index("login")
    page[is_login] = PAGES.index("/login")
    event[is_final] = s["final_event"][session][is_final]
    page[is_final] = s["final_page"][session][is_final]

    by_email = s["by_email"][session]
    login_msisdn = chunk.msisdn_coded(
        person, ("national", "e164", "national_spaced"), (0.6, 0.2, 0.2)
    )
    login_msisdn.codes[~(is_login & ~by_email)] = -1
    # Order and offer forms carry the customer's email too.
    form = is_final & np.isin(event, (EVENTS.index("device_order"), EVENTS.index("offer_accepted")))
    with_email = (is_login & by_email) | (form & (rng.random(total) < 0.6))
    offer = np.where(is_final, s["final_offer"][session], NO_ONE)
    keep = chunk.alive(person, ts)
    session_ids = fixed_width("S", np.arange(len(per_session)) + chunk.index * 10_000_000, 11)
    columns: dict[str, Column] = {
        "ts": ts,
        "cookie_id": coded(s["cookie"], session),
        "session_id": coded(session_ids, session),
        "channel": _vocabulary(("web", "app"), app.astype(np.int64)),
        "event": _vocabulary(EVENTS, event),
        "page": _vocabulary(PAGES, page),
        "login_msisdn": login_msisdn,
        "email": chunk.by_person("email", np.where(with_email, person, -1)),
        "ip": coded(s["ip"], session),
        "offer_id": coded(OFFER_TABLE, offer),
        "amount_gbp": np.where(is_final, s["final_amount"][session], np.nan),
    }
    draft = chunk.draft(
        CLICKSTREAM,
        person[keep],
        ts[keep],
        {name: values[keep] for name, values in columns.items()},
        fraud=s["fraud"][session][keep],
    )
    draft.vary("email", 0.05, lambda v: _noise.email_typo(v, chunk.rnd), rng, "typo")
    return draft.records()


# -- network -------------------------------------------------------------------------


def network(chunk: Chunk) -> Records:
    """Probe KPIs per subscriber, device and cell per month; the fraudster's SIM too."""
    pop, rng, plan, journeys = chunk.population, chunk.rng, chunk.plan, chunk.journeys
    cells = plan.cells
    # Devices are coded as the person's first phone (person) or a bought one (size + row).
    device = np.arange(pop.size)
    generation = np.zeros(pop.size, dtype=np.int64)
    devices = journeys.devices
    device_order = np.argsort(devices["ts"], kind="stable")
    device_order = device_order[~devices["fraud"][device_order]]
    swaps, frauds = journeys.swaps, journeys.frauds
    # A new SIM means a new IMSI: after a genuine swap, and for a fraud victim once the
    # fraud is found and the line is given back on a fresh SIM.
    sim_people = np.concatenate([swaps["person"][~swaps["fraud"]], frauds["person"]])
    sim_ts = np.concatenate([swaps["ts"][~swaps["fraud"]], frauds["end"]])
    sim_order = np.argsort(sim_ts, kind="stable")
    next_device = next_sim = 0
    parts: dict[str, list[NDArray[Any]]] = {
        name: [] for name in ("person", "start", "end", "cell", "device", "generation", "month")
    }
    for month in range(MONTHS):
        start = plan.month_start(month)
        middle = start + MONTH // 2
        while next_device < len(device_order) and devices["ts"][device_order[next_device]] < middle:
            row = device_order[next_device]
            device[devices["person"][row]] = pop.size + row
            next_device += 1
        while next_sim < len(sim_order) and sim_ts[sim_order[next_sim]] < middle:
            generation[sim_people[sim_order[next_sim]]] += 1
            next_sim += 1
        period_start = np.maximum(start, pop.join_ts)
        period_end = np.minimum(start + MONTH, np.minimum(journeys.churn_ts, plan.end))
        active = np.flatnonzero(period_end > period_start)
        elsewhere = pop.work_cell[active] != pop.home_cell[active]
        work = active[elsewhere & (rng.random(len(active)) < 0.7)]
        travel = active[rng.random(len(active)) < 0.08]
        who = np.concatenate([active, work, travel])
        parts["person"].append(who)
        parts["start"].append(period_start[who])
        parts["end"].append(period_end[who])
        parts["cell"].append(
            np.concatenate(
                [
                    pop.home_cell[active],
                    pop.work_cell[work],
                    rng.integers(0, len(cells.cell_id), len(travel)),
                ]
            )
        )
        parts["device"].append(device[who])
        parts["generation"].append(np.minimum(generation[who], 8))
        parts["month"].append(np.full(len(who), month))
    fraud_rows = np.flatnonzero(devices["fraud"])
    fraud_device = dict(zip(devices["person"][fraud_rows].tolist(), fraud_rows.tolist(),
                            strict=True))  # fmt: skip
    parts["person"].append(frauds["person"])
    parts["start"].append(frauds["start"])
    parts["end"].append(frauds["end"])
    parts["cell"].append(frauds["cell"])
    parts["device"].append(
        pop.size + np.array([fraud_device[p] for p in frauds["person"].tolist()], dtype=np.int64)
    )
    parts["generation"].append(np.full(len(frauds["person"]), 9))
    parts["month"].append(np.clip((frauds["start"] - plan.start) // MONTH, 0, MONTHS - 1))
    rows = {name: np.concatenate(values) for name, values in parts.items()}
    fraud = np.zeros(len(rows["person"]), dtype=bool)
    fraud[len(fraud) - len(frauds["person"]) :] = True
    keep = chunk.alive(rows["person"], rows["start"])
    rows = {name: values[keep] for name, values in rows.items()}
    fraud = fraud[keep]
    who, cell, month = rows["person"], rows["cell"], rows["month"]
    count = len(who)
    # Subscribers feel an incident unevenly (indoors, device, time of day).
    felt = cells.impact[cell, month] * rng.beta(2.0, 2.0, count) * 2.0

    def share(base: FloatArray, scale: float) -> FloatArray:
        noisy = base[cell] * rng.lognormal(0.0, 0.35, count) + felt * scale
        result: FloatArray = np.clip(noisy, 0.0, 1.0).round(4)
        return result

    days = np.maximum((rows["end"] - rows["start"]) / DAY, 0.1)
    draft = chunk.draft(
        CELL_KPIS,
        who,
        rows["start"],
        {
            "period_start": rows["start"],
            "period_end": rows["end"],
            "imsi": coded(
                fixed_width("23410", rows["generation"] * 10**9 + pop.imsi_core[who], 10),
                np.arange(count),
            ),
            "msisdn": chunk.msisdn_in("digits", who),
            "imei": chunk.imei_coded(rows["device"]),
            "cell_id": coded(chunk.cell_ids, cell),
            "calls": rng.poisson(days * 1.5).astype(np.int64),
            "data_mb": (rng.gamma(2.0, 60.0, count) * days).round(1),
            "call_drop_rate": share(cells.base_drop, 0.12),
            "call_quality_impairment": share(cells.base_impairment, 0.25),
            "low_bitrate_share": share(cells.base_low_bitrate, 0.35),
            "video_stalling_share": share(cells.base_stalling, 0.3),
        },
        fraud=fraud,
    )
    return draft.records()
