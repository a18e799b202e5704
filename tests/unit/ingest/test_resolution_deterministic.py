"""Deterministic resolution: shared identifiers stitch; hubs, households and ids behave."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from graph.errors import InvalidInput
from ingest.frame import FRAME_SCHEMA
from ingest.resolution.deterministic import (
    RULE_HUB,
    RULE_SHARED,
    DeterministicResolver,
    IdentityIndex,
    ResolutionSettings,
)

T0 = datetime(2024, 3, 1, 9, tzinfo=UTC)


def frame(*rows: dict[str, Any]) -> pa.Table:
    """A frame from short rows: ``event_id`` and ``hours`` plus identifier columns."""
    columns: dict[str, list[Any]] = {name: [] for name in FRAME_SCHEMA.names}
    for number, row in enumerate(rows):
        for name in FRAME_SCHEMA.names:
            columns[name].append(row.get(name))
        columns["source"][-1] = "test"
        columns["event_type"][-1] = "step"
        columns["channel"][-1] = "app"
        columns["ts"][-1] = T0 + timedelta(hours=row.get("hours", number))
        columns["attributes"][-1] = "{}"
        columns["origin"][-1] = "test"
        columns["origin_row"][-1] = number + 1
    return pa.Table.from_pydict(columns, schema=FRAME_SCHEMA)


ANN = "+447700900001"
BOB = "+447700900002"


@pytest.fixture
def resolver() -> DeterministicResolver:
    return DeterministicResolver(IdentityIndex(None))


def test_rows_sharing_any_identifier_become_one_customer(resolver: DeterministicResolver) -> None:
    result = resolver.resolve(
        frame(
            {"event_id": "a1", "msisdn": ANN},
            {"event_id": "a2", "msisdn": ANN, "email": "ann@example.com"},
            {"event_id": "a3", "email": "ann@example.com", "cookie": "c-ann"},
            {"event_id": "a4", "cookie": "c-ann"},
            {"event_id": "b1", "msisdn": BOB},
        )
    )
    customers = result.customers.to_pylist()
    assert len(set(customers[:4])) == 1
    assert customers[4] != customers[0]
    assert len(result.created) == 2
    link = result.links[(customers[0], "id:email:ann@example.com")]
    assert (link.rule, link.method, link.score) == (RULE_SHARED, "det", 1.0)
    assert link.first_seen < link.last_seen


def test_a_cookie_beside_two_lines_is_a_hub_and_stitches_nothing(
    resolver: DeterministicResolver,
) -> None:
    result = resolver.resolve(
        frame(
            {"event_id": "a1", "msisdn": ANN, "cookie": "shop-tablet"},
            {"event_id": "b1", "msisdn": BOB, "cookie": "shop-tablet"},
            {"event_id": "x1", "cookie": "shop-tablet"},
        )
    )
    ann, bob, anonymous = result.customers.to_pylist()
    assert len({ann, bob, anonymous}) == 3
    assert resolver.index.is_hub("id:cookie:shop-tablet")
    assert result.links[(ann, "id:cookie:shop-tablet")].rule == RULE_HUB


def test_family_bills_go_to_the_account_holder(resolver: DeterministicResolver) -> None:
    result = resolver.resolve(
        frame(
            {"event_id": "crm-head", "msisdn": ANN, "account": "ACC1", "hours": 0},
            {"event_id": "crm-member", "msisdn": BOB, "account": "ACC1", "hours": 5},
            {"event_id": "bill", "account": "ACC1", "hours": 9},
        )
    )
    head, member, bill = result.customers.to_pylist()
    assert head != member
    assert bill == head


def test_later_evidence_merges_customers_and_the_oldest_survives(
    resolver: DeterministicResolver,
) -> None:
    first = resolver.resolve(frame({"event_id": "web", "cookie": "c1"}))
    second = resolver.resolve(frame({"event_id": "call", "msisdn": ANN}))
    web, call = first.customers[0].as_py(), second.customers[0].as_py()
    assert web != call
    third = resolver.resolve(frame({"event_id": "login", "cookie": "c1", "msisdn": ANN}))
    assert third.merges == {call: web}
    assert third.customers[0].as_py() == web
    assert resolver.index.survivor(call) == web
    assert resolver.index.customer_of(f"id:msisdn:{ANN}") == web
    assert set(resolver.index.links_of(web)) == {"id:cookie:c1", f"id:msisdn:{ANN}"}


def test_customer_ids_are_stable_and_survive_a_reopen(tmp_path: Path) -> None:
    rows = frame({"event_id": "a1", "msisdn": ANN}, {"event_id": "b1", "msisdn": BOB})
    first = DeterministicResolver(IdentityIndex(None)).resolve(rows).customers.to_pylist()
    again = DeterministicResolver(IdentityIndex(None)).resolve(rows).customers.to_pylist()
    assert first == again

    index = IdentityIndex(tmp_path / "identity.sqlite")
    DeterministicResolver(index).resolve(rows)
    index.commit()
    index.close()
    reopened = DeterministicResolver(IdentityIndex(tmp_path / "identity.sqlite"))
    later = reopened.resolve(frame({"event_id": "a2", "msisdn": ANN}))
    assert later.customers[0].as_py() == first[0]
    assert later.created == []


def test_uncommitted_changes_are_rolled_back(tmp_path: Path) -> None:
    index = IdentityIndex(tmp_path / "identity.sqlite")
    DeterministicResolver(index).resolve(frame({"event_id": "a1", "msisdn": ANN}))
    index.rollback()
    assert index.customer_of(f"id:msisdn:{ANN}") is None
    assert index.customers() == []


def test_a_higher_hub_threshold_lets_a_shared_value_stitch() -> None:
    resolver = DeterministicResolver(IdentityIndex(None), ResolutionSettings(hub_threshold=2))
    result = resolver.resolve(
        frame(
            {"event_id": "a1", "msisdn": ANN, "email": "family@example.com"},
            {"event_id": "b1", "msisdn": BOB, "email": "family@example.com"},
        )
    )
    assert len(set(result.customers.to_pylist())) == 1


def test_settings_refuse_unknown_kinds_and_a_zero_threshold() -> None:
    with pytest.raises(InvalidInput, match="hub_threshold"):
        ResolutionSettings(hub_threshold=0)
    with pytest.raises(InvalidInput, match="unknown identifier kind"):
        ResolutionSettings(anchor_kind="passport")


def test_the_merge_map_file_is_read_again_only_after_a_change(tmp_path: Path) -> None:
    from ingest.resolution.merges import MergeMapFile

    index = IdentityIndex(tmp_path / "identity.sqlite")
    for customer in ("cust:a", "cust:b", "cust:c"):
        index.found(customer)
    index.commit()
    merges = MergeMapFile(tmp_path / "identity.sqlite")
    assert merges() == {}
    index.merge("cust:b", "cust:a", "test")
    index.commit()
    assert merges() == {"cust:b": "cust:a"}
    index.merge("cust:a", "cust:c", "test")
    index.commit()
    assert merges() == {"cust:a": "cust:c", "cust:b": "cust:c"}
    assert MergeMapFile(tmp_path / "absent.sqlite")() == {}


def _random_batches(seed: int, batches: int, size: int) -> list[pa.Table]:
    """Batches of rows naming lines, emails, cookies and accounts drawn from small pools,
    so later batches keep meeting, merging and sharing what earlier ones founded."""
    rng = random.Random(seed)
    kinds = {
        "msisdn": [f"+4477009{n:05d}" for n in range(40)],
        "email": [f"p{n}@example.com" for n in range(30)],
        "cookie": [f"c-{n}" for n in range(25)],
        "account": [f"acc-{n}" for n in range(12)],
    }
    tables = []
    for batch in range(batches):
        rows = []
        for number in range(size):
            row: dict[str, Any] = {"event_id": f"e{batch}-{number}", "hours": batch * size + number}
            for kind, pool in kinds.items():
                if rng.random() < 0.45:
                    row[kind] = rng.choice(pool)
            rows.append(row)
        tables.append(frame(*rows))
    return tables


def _resolve_all(index: IdentityIndex, batches: list[pa.Table]) -> list[list[str]]:
    resolver = DeterministicResolver(index)
    assigned = []
    for table in batches:
        assigned.append(resolver.resolve(table).customers.to_pylist())
        index.commit()
    return assigned


def test_an_index_that_lets_go_of_its_memory_resolves_as_one_that_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _random_batches(seed=3, batches=12, size=25)
    holding = IdentityIndex(tmp_path / "holding.sqlite")
    expected = _resolve_all(holding, batches)
    monkeypatch.setattr(IdentityIndex, "CACHE_LIMIT", 0)  # let go after every commit
    shedding = IdentityIndex(tmp_path / "shedding.sqlite")
    assert _resolve_all(shedding, batches) == expected
    assert shedding.merge_map() == holding.merge_map()
    assert shedding.merge_map(), "the batches were meant to merge customers"
    assert shedding.customers() == holding.customers()
    for customer in holding.customers():
        assert shedding.links_of(customer) == holding.links_of(customer)
    # And a fresh process over the same file (nothing held at all) agrees too.
    reopened = IdentityIndex(tmp_path / "shedding.sqlite")
    for customer in holding.customers():
        assert reopened.links_of(customer) == holding.links_of(customer)


def test_a_lookup_of_what_the_table_lacks_is_asked_once(tmp_path: Path) -> None:
    index = IdentityIndex(tmp_path / "identity.sqlite")
    DeterministicResolver(index).resolve(frame({"event_id": "a1", "msisdn": ANN}))
    index.commit()
    reopened = IdentityIndex(tmp_path / "identity.sqlite")
    statements: list[str] = []
    reopened._db.set_trace_callback(statements.append)
    reopened.prefetch(keys=[f"id:msisdn:{ANN}", "id:msisdn:+0"], customers=["cust:none"])
    assert reopened.customer_of(f"id:msisdn:{ANN}") is not None
    assert reopened.customer_of("id:msisdn:+0") is None
    assert "cust:none" not in reopened.created
    assert reopened.links_of("cust:none") == {}
    assert len(statements) == 3, statements  # the three prefetches, nothing after
