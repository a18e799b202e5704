"""Fill a store with the generated demo world, resolved by the generator's ground truth.

This is how ``journeygraph serve --demo`` gets a realistic graph without running
identity resolution: each generated touchpoint is written to the customer the
generator says it belongs to (provenance ``method=det, rule=generator_truth``).
Real sources go through ingest and resolution instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice

from graph import GraphStore
from graph.model import customer_id
from ingest.graph_writer import GraphWriter, ResolvedTouchpoint, WriteSummary
from ingest.touchpoint import Touchpoint

TRUTH_RULE = "generator_truth"


def _resolved(world: Iterator[tuple[str, Touchpoint]]) -> Iterator[ResolvedTouchpoint]:
    for person, touchpoint in world:
        yield ResolvedTouchpoint(customer_id(person), touchpoint, rule=TRUTH_RULE)


def load_demo(
    store: GraphStore,
    customers: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 20_000,
    buffer_size: int = 200_000,
) -> WriteSummary:
    """Generate ``customers`` customers with ``seed`` and write them into ``store``."""
    from ingest.generator import iter_world

    writer = GraphWriter(store)
    total = WriteSummary()
    seen: set[str] = set()
    resolved = _resolved(iter_world(customers, seed))
    # The generator yields file by file; buffering and sorting by customer lets most
    # customers arrive whole, so their chains are written once instead of relinked.
    while buffer := sorted(islice(resolved, buffer_size), key=lambda item: item.customer):
        for start in range(0, len(buffer), batch_size):
            batch = buffer[start : start + batch_size]
            total.add(writer.write(batch))
            seen.update(item.customer for item in batch)
            if progress is not None:
                progress(len(seen))
    total.customers = len(seen)
    return total
