"""The planted journeys: a month-by-month simulation of what happens to each person.

Each person carries a latent *dissatisfaction* that bill shocks, felt network
incidents, unresolved contacts, low CSAT and fraud raise and that decays each
month. The chance to ask for a port-out (PAC) code each month is

    sigmoid(intercept + slope * dissatisfaction - loyalty_slope * loyalty
            + household_churn_logit * [another household member already left]
            + short_tenure_logit * [tenure under a year]
            + retained_logit * [accepted an offer recently])

so churn follows bill shock -> care calls -> port-out request, and bad cells ->
complaints -> low CSAT, while ``loyalty`` (never observed) keeps it from being
trivial. A requester is offered a retention offer; accepting it keeps them. Family-
plan members follow a departing payer.

Proactive offers (app and shops) are shown uniformly over the offers on sale at the
time, a fair A/B-style exposure; whether one is accepted depends on the household:
most households favour one offer category, and their members take offers of it far
more often than others (a relational signal: few people accept an offer themselves,
but their household members' acceptances show its taste). All knobs live in
``Parameters``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ingest.generator._arrays import BoolArray, FloatArray, IntArray
from ingest.generator._plan import DAY, HOUR, MONTH, MONTHS, WorldPlan
from ingest.generator._population import Population
from ingest.generator._reference import (
    CATEGORY_POPULARITY,
    DEVICE_MODELS,
    OFFERS,
    PREMIUM_DEVICES,
    PROACTIVE_CATEGORIES,
    PROACTIVE_OFFERS,
    RETENTION_OFFERS,
)

Frame = dict[str, NDArray[Any]]
NEVER: Final = np.iinfo(np.int64).max
"""Churn time of a person who never churns."""
NO_ONE: Final = -1
NO_TASTE: Final = -1
"""Favourite category of a household that has none."""
_NOT_PROACTIVE: Final = -2
OFFER_CATEGORY: Final = np.array(
    [
        PROACTIVE_CATEGORIES.index(offer.category) if offer.kind != "retention" else _NOT_PROACTIVE
        for offer in OFFERS
    ]
    + [_NOT_PROACTIVE]
)
"""Proactive category of each offer by catalogue index; retention offers and -1 (no offer)
have none, so they never match a household's favourite."""
_BY_LAUNCH: Final = np.array(sorted(PROACTIVE_OFFERS, key=lambda i: OFFERS[i].launch_day))
_LAUNCH_DAY: Final = np.array([OFFERS[i].launch_day for i in _BY_LAUNCH.tolist()])


@dataclass(frozen=True)
class Parameters:
    """Knobs of the planted patterns (rates are per person per month unless noted).

    ``docs/generator.md`` explains how they combine; the defaults give about 9%
    churn a year and are what the unit tests measure.
    """

    dissatisfaction_decay: float = 0.6
    """Share of last month's dissatisfaction that carries over."""
    bill_shock_weight: float = 2.2
    """Dissatisfaction added by a bill shock."""
    incident_weight: float = 1.3
    """Dissatisfaction added by a network incident the person felt."""
    unresolved_weight: float = 0.5
    """Dissatisfaction added per unresolved complaint or dispute."""
    low_csat_weight: float = 0.4
    """Dissatisfaction added per contact the person would rate 1 or 2."""
    fraud_weight: float = 1.0
    """Dissatisfaction added by being a SIM-swap fraud victim."""
    port_out_intercept: float = -5.3
    """Logit of the monthly port-out request chance of a content, average person."""
    dissatisfaction_slope: float = 1.0
    loyalty_slope: float = 0.8
    """Weight of the unobserved loyalty (standard normal) against leaving."""
    household_churn_logit: float = 2.0
    """Added to the logit once another member of the household has left (relational)."""
    short_tenure_logit: float = 0.4
    retained_logit: float = -1.6
    """Added to the logit while an accepted offer holds."""
    retained_days: int = 180
    """How long an accepted retention offer holds (proactive offers: two thirds of it)."""
    retention_offer_share: float = 0.7
    """Share of port-out requests where the agent makes a retention offer."""
    port_out_completion: float = 0.85
    """Share of requesters without an accepted offer who do port out (1-30 days later)."""
    family_follow_share: float = 0.6
    """Share of family-plan members who leave with their departing payer."""
    cancellation_rate: float = 0.0015
    """Monthly chance of a plain cancellation, unrelated to any signal."""
    bill_dispute_share: float = 0.6
    """Share of bill shocks followed by a dispute call within ten days."""
    dispute_offer_share: float = 0.15
    complaint_share: float = 0.4
    """Share of felt incidents that make the person ring care."""
    fraud_share: float = 0.003
    """Share of people who fall victim to SIM-swap fraud during the window."""
    legit_sim_swap_rate: float = 0.0015
    upgrade_rate: float = 0.02
    app_offer_rate: float = 0.06
    """Monthly chance that a digital person is shown a proactive offer in the app."""
    care_contact_rate: float = 0.07
    shop_visit_rate: float = 0.025
    shop_offer_share: float = 0.7
    """Share of shop visits where staff pitch a proactive offer."""
    csat_response_share: float = 0.4
    proxy_caller_share: float = 0.05
    """Share of calls made from another household member's phone."""
    offer_taste_share: float = 0.8
    """Share of households with a favourite proactive offer category (drawn by popularity)."""
    favourite_accept: float = 0.45
    """Chance to accept a proactive offer of the household's favourite category."""
    other_accept: float = 0.05
    """Chance to accept any other proactive offer (dissatisfied people in the app: +0.1)."""


DEFAULT_PARAMETERS: Final = Parameters()

CONTACT_COLUMNS: Final = (
    "person", "ts", "reason", "agent", "resolved", "outcome", "offer", "accepted", "fraud",
    "cell", "caller", "csat", "csat_ts", "responded", "ticket_close",
)  # fmt: skip
OFFER_COLUMNS: Final = ("person", "ts", "offer", "channel", "context", "accepted", "accept_ts")
DEVICE_COLUMNS: Final = ("person", "ts", "model", "reason", "channel", "amount", "shop", "fraud")
SWAP_COLUMNS: Final = ("person", "ts", "channel", "shop", "fraud")
VISIT_COLUMNS: Final = ("person", "ts", "shop", "visit_type", "amount", "offer")
INTENT_COLUMNS: Final = ("person", "ts", "page")
BILL_COLUMNS: Final = ("person", "ts", "amount", "usage", "roaming", "lines", "typical", "shock")
FRAUD_COLUMNS: Final = ("person", "start", "end", "cell", "model", "shop")
CHURN_COLUMNS: Final = ("person", "ts", "reason", "request_ts")


class _Rows:
    """Rows of one kind of event, appended month by month as columns."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.parts: dict[str, list[NDArray[Any]]] = {name: [] for name in names}

    def add(self, **columns: Any) -> None:
        """Append one batch; scalars are repeated to the batch's length."""
        if set(columns) != set(self.parts):
            raise ValueError(f"columns {sorted(columns)} do not match {sorted(self.parts)}")
        size = max(np.size(value) for value in columns.values())
        for name, value in columns.items():
            array = np.asarray(value)
            self.parts[name].append(np.full(size, value) if array.ndim == 0 else array)

    def frame(self) -> Frame:
        """All batches, concatenated by column."""
        return {name: np.concatenate(parts) for name, parts in self.parts.items()}


@dataclass(frozen=True)
class Journeys:
    """What happened to the people of one chunk during the window (chunk positions)."""

    churn_ts: IntArray
    """When each person's line ceased (``NEVER`` if it did not; may lie after the window)."""
    churn_reason: NDArray[np.object_]
    favourite_category: IntArray
    """Each person's household's favourite proactive category (index into
    ``PROACTIVE_CATEGORIES``; ``NO_TASTE`` for none)."""
    bills: Frame
    contacts: Frame
    offers: Frame
    devices: Frame
    swaps: Frame
    visits: Frame
    intents: Frame
    frauds: Frame
    churns: Frame


def in_hours(ts: IntArray, rng: np.random.Generator, opens: int, closes: int) -> IntArray:
    """Move times outside ``opens``-``closes`` o'clock forward into the next opening hours.

    Only ever forward, so an event derived from an earlier one stays after it.
    """
    clock = ts % DAY
    day = ts - clock
    reopen = np.where(clock >= closes * HOUR, day + DAY, day) + opens * HOUR
    moved = reopen + rng.integers(0, (closes - opens) * HOUR, len(ts))
    result: IntArray = np.where((clock < opens * HOUR) | (clock >= closes * HOUR), moved, ts)
    return result


AGENT_HOURS: Final = (8, 20)
SHOP_HOURS: Final = (9, 18)
AWAKE_HOURS: Final = (7, 23)


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return result


def _pick(rng: np.random.Generator, options: tuple[int, ...], size: int) -> IntArray:
    result: IntArray = np.array(options, dtype=np.int64)[rng.integers(0, len(options), size)]
    return result


def _shop_in(plan: WorldPlan, rng: np.random.Generator, towns: IntArray) -> IntArray:
    """A shop in each given town (every town has at least one)."""
    draws = rng.integers(0, 1 << 30, len(towns))
    return np.array(
        [
            plan.shops.town_shops[t][r % len(plan.shops.town_shops[t])]
            for t, r in zip(towns.tolist(), draws.tolist(), strict=True)
        ],
        dtype=np.int64,
    )


def _elsewhere(rng: np.random.Generator, towns: IntArray, town_count: int) -> IntArray:
    """A town other than each given one (where fraudsters walk into a shop)."""
    shifted: IntArray = (towns + rng.integers(1, town_count, len(towns))) % town_count
    return shifted


def simulate(
    plan: WorldPlan,
    population: Population,
    rng: np.random.Generator,
    params: Parameters = DEFAULT_PARAMETERS,
) -> Journeys:
    """Run the monthly simulation for one chunk of people."""
    return _Simulation(plan, population, rng, params).run()


class _Simulation:
    """State of the monthly simulation; one ``_month`` call per month of the window."""

    def __init__(
        self, plan: WorldPlan, population: Population, rng: np.random.Generator, params: Parameters
    ) -> None:
        self.plan, self.pop, self.rng, self.p = plan, population, rng, params
        size = population.size
        self.size = size
        self.households = int(population.household.max()) + 1
        self.churn_ts = np.full(size, NEVER, dtype=np.int64)
        self.churn_reason = np.full(size, None, dtype=object)
        self.dissatisfaction = np.zeros(size)
        self.loyalty = population.loyalty.copy()
        self.retained_until = np.zeros(size, dtype=np.int64)
        self.digital = population.cookie_count > 0
        self.fraud_month = np.where(
            rng.random(size) < params.fraud_share, rng.integers(0, MONTHS, size), -1
        )
        popularity = np.array(list(CATEGORY_POPULARITY.values()))
        tasteful = rng.random(self.households) < params.offer_taste_share
        favourite = rng.choice(len(popularity), self.households, p=popularity / popularity.sum())
        self.favourite_category = np.where(tasteful, favourite, NO_TASTE)[population.household]
        self.bills = _Rows(BILL_COLUMNS)
        self.contacts = _Rows(CONTACT_COLUMNS)
        self.offers = _Rows(OFFER_COLUMNS)
        self.devices = _Rows(DEVICE_COLUMNS)
        self.swaps = _Rows(SWAP_COLUMNS)
        self.visits = _Rows(VISIT_COLUMNS)
        self.intents = _Rows(INTENT_COLUMNS)
        self.frauds = _Rows(FRAUD_COLUMNS)
        self.churns = _Rows(CHURN_COLUMNS)
        head = np.flatnonzero(population.member == 0)
        sizes = np.diff(np.append(head, size))
        self.household_size = sizes[population.household]

    def run(self) -> Journeys:
        """Simulate every month of the window and collect what happened."""
        for month in range(MONTHS):
            self._month(month)
        return Journeys(
            churn_ts=self.churn_ts,
            churn_reason=self.churn_reason,
            favourite_category=self.favourite_category,
            bills=self.bills.frame(),
            contacts=self.contacts.frame(),
            offers=self.offers.frame(),
            devices=self.devices.frame(),
            swaps=self.swaps.frame(),
            visits=self.visits.frame(),
            intents=self.intents.frame(),
            frauds=self.frauds.frame(),
            churns=self.churns.frame(),
        )

    # -- one month ---------------------------------------------------------------------

    def _month(self, month: int) -> None:
        p, pop = self.p, self.pop
        start = self.plan.month_start(month)
        end = start + MONTH
        present = (pop.join_ts < end) & (self.churn_ts > start)
        staying = present & (self.churn_ts == NEVER)
        gone = (self.churn_ts < start).astype(np.float64)
        household_gone = (
            np.bincount(pop.household, gone, self.households)[pop.household] - gone
        ) > 0

        shock, shock_ts = self._bills(start, present)
        felt, complaint_ts, unresolved_complaints, low_csat = self._network(month, start, present)
        dispute_ts, unresolved_disputes, dispute_low_csat = self._disputes(shock, shock_ts)
        low_csat += dispute_low_csat
        low_csat += self._routine_contacts(start, present)
        fraud = self._fraud(month, start, staying)
        self._legit_devices(start, staying)
        self._app_offers(start, present)
        self._shop_visits(start, present)

        self.dissatisfaction = (
            p.dissatisfaction_decay * self.dissatisfaction
            + p.bill_shock_weight * shock
            + p.incident_weight * felt
            + p.unresolved_weight * (unresolved_complaints + unresolved_disputes)
            + p.low_csat_weight * low_csat
            + p.fraud_weight * fraud
        )
        trigger = np.maximum.reduce([shock_ts, complaint_ts, dispute_ts])
        self._port_out(start, staying, household_gone, trigger)
        self._cancellations(start, staying)

    # -- billing -----------------------------------------------------------------------

    def _bills(self, start: int, present: BoolArray) -> tuple[BoolArray, IntArray]:
        rng, pop = self.rng, self.pop
        size = self.size
        bill_ts = start + (pop.bill_day - 1) * DAY + 6 * HOUR
        on_bill = (pop.join_ts <= bill_ts) & (self.churn_ts > bill_ts)
        # A line shows on its payer's bill; the bill exists while its payer's line does.
        lines = np.bincount(pop.payer, on_bill.astype(np.float64), size)
        fees = np.bincount(pop.payer, np.where(on_bill, pop.monthly_fee, 0.0), size)
        billed = pop.is_payer & on_bill & present
        usage = rng.gamma(2.0, 1.6, size)
        typical = fees + 3.2
        shock = billed & (rng.random(size) < pop.shock_rate)
        roaming = np.where(shock, typical * rng.uniform(1.2, 3.5, size), 0.0)
        chosen = np.flatnonzero(billed)
        self.bills.add(
            person=chosen,
            ts=bill_ts[chosen],
            amount=(fees + usage + roaming)[chosen].round(2),
            usage=usage[chosen].round(2),
            roaming=roaming[chosen].round(2),
            lines=lines[chosen].astype(np.int64),
            typical=typical[chosen].round(2),
            shock=shock[chosen],
        )
        return shock, np.where(shock, bill_ts, 0)

    # -- care contacts -----------------------------------------------------------------

    def _contact(
        self,
        who: IntArray,
        ts: IntArray,
        reason: str,
        *,
        agent: BoolArray | bool = True,
        resolved: BoolArray | bool = True,
        outcome: NDArray[np.object_] | str = "resolved",
        offer: IntArray | int = NO_ONE,
        accepted: BoolArray | bool = False,
        fraud: bool = False,
        cell: IntArray | int = NO_ONE,
        caller: IntArray | None = None,
        ticket_close: IntArray | int = 0,
        complaint: bool = False,
    ) -> FloatArray:
        """Record care contacts with their CSAT answers; returns low-CSAT counts per person."""
        rng, p = self.rng, self.p
        count = len(who)
        agent_arr = np.broadcast_to(agent, count)
        resolved_arr = np.broadcast_to(resolved, count)
        latent = (
            4.4
            - 0.55 * self.dissatisfaction[who]
            - 1.1 * ~resolved_arr
            - 0.4 * complaint
            + rng.normal(0.0, 0.7, count)
        )
        csat = np.where(agent_arr, np.clip(np.rint(latent), 1, 5), 0).astype(np.int64)
        responded = agent_arr & (rng.random(count) < p.csat_response_share)
        if caller is None:
            proxy = (rng.random(count) < p.proxy_caller_share) & (self.household_size[who] > 1)
            # Someone else in the household rings on the customer's behalf from their phone.
            other = (
                who - self.pop.member[who] + rng.integers(0, 5, count) % self.household_size[who]
            )
            caller = np.where(proxy, other, who)
        self.contacts.add(
            person=who,
            ts=ts,
            reason=np.full(count, reason, dtype=object),
            agent=agent_arr.copy(),
            resolved=resolved_arr.copy(),
            outcome=np.broadcast_to(np.asarray(outcome, dtype=object), count).copy(),
            offer=np.broadcast_to(offer, count).astype(np.int64),
            accepted=np.broadcast_to(accepted, count).copy(),
            fraud=np.full(count, fraud),
            cell=np.broadcast_to(cell, count).astype(np.int64),
            caller=caller.astype(np.int64),
            csat=csat,
            csat_ts=ts + rng.integers(HOUR, 48 * HOUR, count),
            responded=responded,
            ticket_close=np.broadcast_to(ticket_close, count).astype(np.int64),
        )
        low = np.zeros(self.size)
        np.add.at(low, who, (csat > 0) & (csat <= 2))
        return low

    def _network(
        self, month: int, start: int, present: BoolArray
    ) -> tuple[BoolArray, IntArray, FloatArray, FloatArray]:
        rng, p, pop, cells = self.rng, self.p, self.pop, self.plan.cells
        home_impact = cells.impact[pop.home_cell, month]
        work_impact = cells.impact[pop.work_cell, month]
        felt = present & (
            rng.random(self.size) < np.clip(0.9 * home_impact + 0.5 * work_impact, 0.0, 0.95)
        )
        complains = np.flatnonzero(felt & (rng.random(self.size) < p.complaint_share))
        cell = np.where(home_impact >= work_impact, pop.home_cell, pop.work_cell)[complains]
        begin = np.maximum(cells.incident_start[cell, month], start)
        finish = np.maximum(cells.incident_end[cell, month], begin + HOUR)
        ts = begin + (rng.uniform(0.1, 0.7, len(complains)) * (finish - begin)).astype(np.int64)
        ts = in_hours(ts, rng, *AGENT_HOURS)
        resolved = rng.random(len(complains)) < 0.35
        closes = finish + rng.integers(12 * HOUR, 4 * DAY, len(complains))
        low = self._contact(
            complains,
            ts,
            "network_complaint",
            resolved=resolved,
            outcome=np.where(resolved, "resolved", "ticket_raised").astype(object),
            cell=cell,
            ticket_close=closes,
            complaint=True,
        )
        complaint_ts = np.zeros(self.size, dtype=np.int64)
        complaint_ts[complains] = ts
        unresolved = np.zeros(self.size)
        np.add.at(unresolved, complains, ~resolved)
        return felt, complaint_ts, unresolved, low

    def _disputes(
        self, shock: BoolArray, shock_ts: IntArray
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        rng, p = self.rng, self.p
        who = np.flatnonzero(shock & (rng.random(self.size) < p.bill_dispute_share))
        count = len(who)
        ts = in_hours(shock_ts[who] + rng.integers(DAY, 10 * DAY, count), rng, *AGENT_HOURS)
        resolved = rng.random(count) < 0.6
        offered = rng.random(count) < p.dispute_offer_share
        offer = np.where(offered, _pick(rng, RETENTION_OFFERS, count), NO_ONE)
        accepted = offered & (
            rng.random(count) < np.clip(0.45 - 0.1 * self.dissatisfaction[who], 0.05, 0.8)
        )
        outcome = np.where(resolved, "refund_credited", "ticket_raised").astype(object)
        outcome = np.where(
            offered, np.where(accepted, "offer_accepted", "offer_declined"), outcome
        ).astype(object)
        low = self._contact(
            who,
            ts,
            "bill_dispute",
            resolved=resolved,
            outcome=outcome,
            offer=offer,
            accepted=accepted,
            ticket_close=np.where(resolved, 0, ts + rng.integers(2 * DAY, 10 * DAY, count)),
            complaint=True,
        )
        self._record_offers(
            who[offered],
            ts[offered],
            offer[offered],
            "care",
            "bill_dispute",
            accepted[offered],
            ts[offered],
        )
        self._retain(who[accepted], ts[accepted], strong=False)
        dispute_ts = np.zeros(self.size, dtype=np.int64)
        dispute_ts[who] = ts
        unresolved = np.zeros(self.size)
        np.add.at(unresolved, who, ~resolved)
        return dispute_ts, unresolved, low

    def _routine_contacts(self, start: int, present: BoolArray) -> FloatArray:
        rng, p = self.rng, self.p
        who = np.flatnonzero(present & (rng.random(self.size) < p.care_contact_rate))
        count = len(who)
        agent = rng.random(count) < 0.6
        ts = start + rng.integers(0, MONTH, count)
        ts = np.where(agent, in_hours(ts, rng, *AGENT_HOURS), in_hours(ts, rng, *AWAKE_HOURS))
        resolved = rng.random(count) < 0.85
        support = rng.random(count) < 0.45
        low = np.zeros(self.size)
        for reason, chosen in (("device_support", support), ("general_enquiry", ~support)):
            low += self._contact(
                who[chosen],
                ts[chosen],
                reason,
                agent=agent[chosen],
                resolved=resolved[chosen] | ~agent[chosen],
                outcome=np.where(
                    agent[chosen],
                    np.where(resolved[chosen], "resolved", "unresolved"),
                    "self_service",
                ).astype(object),
            )
        return low

    # -- devices, SIM swaps and fraud ----------------------------------------------------

    def _fraud(self, month: int, start: int, staying: BoolArray) -> BoolArray:
        """SIM swap by an impostor, a new premium device within hours, then the victim rings."""
        rng, pop, plan = self.rng, self.pop, self.plan
        victims: BoolArray = (self.fraud_month == month) & staying
        who = np.flatnonzero(victims)
        count = len(who)
        in_shop = rng.random(count) < 0.6
        swap_ts = in_hours(start + rng.integers(0, MONTH - 4 * DAY, count), rng, *SHOP_HOURS)
        far_town = _elsewhere(rng, pop.town[who], len(plan.shops.town_shops))
        shop = _shop_in(plan, rng, far_town)
        self.swaps.add(
            person=who,
            ts=swap_ts,
            channel=np.where(in_shop, "retail", "care").astype(object),
            shop=np.where(in_shop, shop, NO_ONE),
            fraud=np.full(count, True),
        )
        care_swaps = ~in_shop
        self._contact(
            who[care_swaps],
            swap_ts[care_swaps],
            "sim_swap",
            outcome="sim_swapped",
            fraud=True,
            caller=np.full(int(care_swaps.sum()), NO_ONE),
        )
        in_shop_buy = rng.random(count) < 0.65
        buy_ts = swap_ts + rng.integers(HOUR, 30 * HOUR, count)
        buy_ts = np.where(in_shop_buy, in_hours(buy_ts, rng, *SHOP_HOURS), buy_ts)
        model = _pick(rng, PREMIUM_DEVICES, count)
        prices = np.array([DEVICE_MODELS[m].price_gbp for m in model.tolist()])
        self.devices.add(
            person=who,
            ts=buy_ts,
            model=model,
            reason=np.full(count, "fraud", dtype=object),
            channel=np.where(in_shop_buy, "retail", "web").astype(object),
            amount=(prices * rng.uniform(1.0, 1.15, count)).round(2),
            shop=np.where(in_shop_buy, shop, NO_ONE),
            fraud=np.full(count, True),
        )
        noticed = in_hours(swap_ts + rng.integers(3 * HOUR, 72 * HOUR, count), rng, *AGENT_HOURS)
        self._contact(
            who,
            noticed,
            "no_service",
            outcome="fraud_confirmed",
            ticket_close=noticed + rng.integers(DAY, 5 * DAY, count),
            complaint=True,
        )
        cell_towns = _elsewhere(rng, pop.town[who], len(plan.cells.town_cells))
        draws = rng.integers(0, 1 << 30, count)
        cells = np.array(
            [
                plan.cells.town_cells[t][r % len(plan.cells.town_cells[t])]
                for t, r in zip(cell_towns.tolist(), draws.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        self.frauds.add(
            person=who,
            start=swap_ts + 600,
            end=noticed,
            cell=cells,
            model=model,
            shop=np.where(in_shop, shop, NO_ONE),
        )
        return victims

    def _legit_devices(self, start: int, staying: BoolArray) -> None:
        """Genuine SIM replacements and upgrades: the look-alikes that make fraud non-trivial."""
        rng, p, pop, plan = self.rng, self.p, self.pop, self.plan
        swap = np.flatnonzero(staying & (rng.random(self.size) < p.legit_sim_swap_rate))
        count = len(swap)
        in_shop = rng.random(count) < 0.4
        swap_ts = in_hours(start + rng.integers(0, MONTH, count), rng, *SHOP_HOURS)
        shop = _shop_in(plan, rng, pop.town[swap])
        self.swaps.add(
            person=swap,
            ts=swap_ts,
            channel=np.where(in_shop, "retail", "care").astype(object),
            shop=np.where(in_shop, shop, NO_ONE),
            fraud=np.full(count, False),
        )
        self._contact(swap[~in_shop], swap_ts[~in_shop], "sim_swap", outcome="sim_swapped")
        replace = rng.random(count) < 0.3

        upgrade = np.flatnonzero(staying & (rng.random(self.size) < p.upgrade_rate))
        who = np.concatenate([swap[replace], upgrade])
        ts = np.concatenate(
            [
                swap_ts[replace] + rng.integers(DAY, 10 * DAY, int(replace.sum())),
                start + rng.integers(0, MONTH, len(upgrade)),
            ]
        )
        in_shop_buy = rng.random(len(who)) < 0.55
        ts = np.where(in_shop_buy, in_hours(ts, rng, *SHOP_HOURS), in_hours(ts, rng, *AWAKE_HOURS))
        reason = np.array(
            ["replacement"] * int(replace.sum()) + ["upgrade"] * len(upgrade), dtype=object
        )
        total = len(who)
        weights = np.array([m.weight for m in DEVICE_MODELS])
        model = rng.choice(len(DEVICE_MODELS), total, p=weights / weights.sum())
        prices = np.array([DEVICE_MODELS[m].price_gbp for m in model.tolist()])
        self.devices.add(
            person=who,
            ts=ts,
            model=model.astype(np.int64),
            reason=reason,
            channel=np.where(in_shop_buy, "retail", "web").astype(object),
            amount=(prices * rng.uniform(0.9, 1.1, total)).round(2),
            shop=np.where(in_shop_buy, _shop_in(plan, rng, pop.town[who]), NO_ONE),
            fraud=np.full(total, False),
        )

    # -- offers and shop visits ----------------------------------------------------------

    def _record_offers(
        self,
        who: IntArray,
        ts: IntArray,
        offer: IntArray,
        channel: str,
        context: str,
        accepted: BoolArray,
        accept_ts: IntArray,
    ) -> None:
        count = len(who)
        self.offers.add(
            person=who,
            ts=ts,
            offer=offer.astype(np.int64),
            channel=np.full(count, channel, dtype=object),
            context=np.full(count, context, dtype=object),
            accepted=accepted,
            accept_ts=np.where(accepted, accept_ts, 0),
        )

    def _retain(self, who: IntArray, ts: IntArray, *, strong: bool) -> None:
        """An accepted offer: the person is retained for a while and less unhappy."""
        days = self.p.retained_days if strong else self.p.retained_days * 2 // 3
        self.retained_until[who] = np.maximum(self.retained_until[who], ts + days * DAY)
        self.dissatisfaction[who] *= 0.5 if strong else 0.8
        self.loyalty[who] += 0.3 if strong else 0.15

    def _on_sale(self, ts: IntArray) -> IntArray:
        """A proactive offer for each time, uniformly among those already launched then."""
        launched = np.searchsorted(self.plan.start + _LAUNCH_DAY * DAY, ts, side="right")
        result: IntArray = _BY_LAUNCH[self.rng.integers(0, launched)]
        return result

    def _accept_share(self, who: IntArray, offer: IntArray) -> FloatArray:
        """Each person's chance to take the offer: high in the household's favourite category."""
        favourite = OFFER_CATEGORY[offer] == self.favourite_category[who]
        result: FloatArray = np.where(favourite, self.p.favourite_accept, self.p.other_accept)
        return result

    def _app_offers(self, start: int, present: BoolArray) -> None:
        rng, p = self.rng, self.p
        who = np.flatnonzero(present & self.digital & (rng.random(self.size) < p.app_offer_rate))
        count = len(who)
        ts = in_hours(start + rng.integers(0, MONTH, count), rng, *AWAKE_HOURS)
        offer = self._on_sale(ts)
        accepted = rng.random(count) < (
            self._accept_share(who, offer) + 0.1 * (self.dissatisfaction[who] > 1.0)
        )
        accept_ts = ts + rng.integers(120, 2 * DAY, count)
        self._record_offers(who, ts, offer, "app", "proactive", accepted, accept_ts)
        self._retain(who[accepted], accept_ts[accepted], strong=False)

    def _shop_visits(self, start: int, present: BoolArray) -> None:
        rng, p, pop = self.rng, self.p, self.pop
        who = np.flatnonzero(present & (rng.random(self.size) < p.shop_visit_rate))
        count = len(who)
        ts = in_hours(start + rng.integers(0, MONTH - DAY, count), rng, *SHOP_HOURS)
        kinds = np.array(
            ["bill_payment", "accessory_purchase", "enquiry", "app_setup"], dtype=object
        )
        visit_type = kinds[rng.choice(4, count, p=[0.25, 0.25, 0.3, 0.2])]
        amount = np.where(
            visit_type == "accessory_purchase",
            rng.uniform(8, 90, count),
            np.where(visit_type == "bill_payment", rng.uniform(10, 80, count), 0.0),
        )
        offered = rng.random(count) < p.shop_offer_share
        offer = np.where(offered, self._on_sale(ts), NO_ONE)
        accepted = offered & (rng.random(count) < self._accept_share(who, offer))
        # Staff only key in the offers customers accept; declines live in the truth only.
        visit_type = np.where(accepted, "offer_accepted", visit_type).astype(object)
        self.visits.add(
            person=who,
            ts=ts,
            shop=_shop_in(self.plan, rng, pop.town[who]),
            visit_type=visit_type,
            amount=amount.round(2),
            offer=np.where(accepted, offer, NO_ONE),
        )
        self._record_offers(
            who[offered],
            ts[offered],
            offer[offered],
            "retail",
            "proactive",
            accepted[offered],
            ts[offered],
        )
        self._retain(who[accepted], ts[accepted], strong=False)

    # -- leaving ------------------------------------------------------------------------

    def _port_out(
        self, start: int, staying: BoolArray, household_gone: BoolArray, trigger: IntArray
    ) -> None:
        rng, p, pop = self.rng, self.p, self.pop
        short_tenure = (start - pop.join_ts) < 365 * DAY
        logit = (
            p.port_out_intercept
            + p.dissatisfaction_slope * self.dissatisfaction
            - p.loyalty_slope * self.loyalty
            + p.household_churn_logit * household_gone
            + p.short_tenure_logit * short_tenure
            + p.retained_logit * (self.retained_until > start)
        )
        eligible = staying & (pop.join_ts < start + MONTH - 5 * DAY)
        who = np.flatnonzero(eligible & (rng.random(self.size) < _sigmoid(logit)))
        count = len(who)
        triggered = trigger[who] > 0
        ts = np.where(
            triggered,
            trigger[who] + rng.integers(2 * DAY, 15 * DAY, count),
            start + rng.integers(0, MONTH, count),
        )
        ts = in_hours(np.maximum(ts, pop.join_ts[who] + DAY), rng, *AGENT_HOURS)
        browsing = self.digital[who] & (rng.random(count) < 0.5)
        self.intents.add(
            person=who[browsing],
            ts=ts[browsing] - rng.integers(12 * HOUR, 5 * DAY, int(browsing.sum())),
            page=np.full(int(browsing.sum()), "/switching/pac-code", dtype=object),
        )
        offered = rng.random(count) < p.retention_offer_share
        offer = np.where(offered, _pick(rng, RETENTION_OFFERS, count), NO_ONE)
        accept_share = np.clip(
            0.5 - 0.12 * self.dissatisfaction[who] + 0.1 * self.loyalty[who], 0.05, 0.85
        )
        accepted = offered & (rng.random(count) < accept_share)
        self._contact(
            who,
            ts,
            "port_out_request",
            outcome=np.where(accepted, "offer_accepted", "pac_issued").astype(object),
            offer=offer,
            accepted=accepted,
        )
        self._record_offers(
            who[offered],
            ts[offered],
            offer[offered],
            "care",
            "port_out_request",
            accepted[offered],
            ts[offered],
        )
        self._retain(who[accepted], ts[accepted], strong=True)
        leaves = ~accepted & (rng.random(count) < p.port_out_completion)
        leaving = who[leaves]
        self._leave(
            leaving, ts[leaves] + rng.integers(DAY, 30 * DAY, len(leaving)), "port_out", ts[leaves]
        )

    def _cancellations(self, start: int, staying: BoolArray) -> None:
        rng, p, pop = self.rng, self.p, self.pop
        open_now = staying & (self.churn_ts == NEVER) & (pop.join_ts < start)
        who = np.flatnonzero(open_now & (rng.random(self.size) < p.cancellation_rate))
        count = len(who)
        ts = start + rng.integers(14 * DAY, MONTH, count)
        asked = in_hours(ts - rng.integers(DAY, 14 * DAY, count), rng, *AGENT_HOURS)
        self._contact(who, asked, "cancellation_request", outcome="cancellation_booked")
        self._leave(who, ts, "cancellation", asked)

    def _leave(self, who: IntArray, ts: IntArray, reason: str, request_ts: IntArray) -> None:
        """Cease lines; family-plan members of a departing payer mostly go with them."""
        rng, pop = self.rng, self.pop
        self.churn_ts[who] = ts
        self.churn_reason[who] = reason
        self.churns.add(
            person=who, ts=ts, reason=np.full(len(who), reason, dtype=object), request_ts=request_ts
        )
        leaving_payer = np.zeros(self.size, dtype=bool)
        leaving_payer[who] = pop.is_payer[who]
        followers = np.flatnonzero(
            leaving_payer[pop.payer]
            & ~pop.is_payer
            & (self.churn_ts == NEVER)
            & (rng.random(self.size) < self.p.family_follow_share)
        )
        if len(followers) == 0:
            return
        follow_ts = self.churn_ts[pop.payer[followers]] + rng.integers(0, 20 * DAY, len(followers))
        self.churn_ts[followers] = follow_ts
        self.churn_reason[followers] = reason
        self.churns.add(
            person=followers,
            ts=follow_ts,
            reason=np.full(len(followers), reason, dtype=object),
            request_ts=np.zeros(len(followers), dtype=np.int64),
        )
