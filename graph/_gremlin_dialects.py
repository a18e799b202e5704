"""What differs between the Gremlin servers ``GremlinStore`` talks to.

One frozen ``Dialect`` a server, looked up by name. The store asks the dialect, never
the name, so a new server is one more entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from graph.errors import InvalidInput


def _janusgraph_serializer() -> Any:
    # JanusGraph writes edge ids as RelationIdentifier objects, which plain GraphSON
    # readers cannot parse; janusgraphpython's reader knows them.
    from janusgraph_python.driver.serializer import JanusGraphSONSerializersV3d0

    return JanusGraphSONSerializersV3d0()


def _graphbinary_serializer() -> Any:
    from gremlin_python.driver.serializer import GraphBinarySerializersV1

    return GraphBinarySerializersV1()


def _graphson_serializer() -> Any:
    from gremlin_python.driver.serializer import GraphSONSerializersV3d0

    return GraphSONSerializersV3d0()


@dataclass(frozen=True)
class Dialect:
    """The differences between Gremlin servers that ``GremlinStore`` has to know about."""

    name: str
    serializer: Callable[[], Any]
    """Builds the message serializer for a new connection."""
    transactions: bool
    """Remote transactions (``g.tx()``) make one batch atomic. Without them the store
    validates a batch before writing it and a failure part-way leaves part of it."""
    client_ids: bool
    """The server accepts client-chosen vertex ids, so a vertex's server id is its
    project id and lookups need no index on ``uid``."""
    single_cardinality: bool
    """The server's default property cardinality is ``set``, so every vertex property
    write must say ``Cardinality.single`` to replace rather than add a value."""
    index_within: bool
    """The ``uid`` index answers ``has('uid', within(ids))``; TinkerGraph's answers
    equality only, so there a lookup of many ids is a union of single-id lookups."""


DIALECTS: Final[dict[str, Dialect]] = {
    dialect.name: dialect
    for dialect in (
        Dialect(
            "janusgraph",
            _janusgraph_serializer,
            transactions=True,
            client_ids=False,
            single_cardinality=False,
            index_within=True,
        ),
        # Neptune reads GraphSON 3 on every engine version; GraphBinary only on newer ones.
        Dialect(
            "neptune",
            _graphson_serializer,
            transactions=True,
            client_ids=True,
            single_cardinality=True,
            index_within=True,
        ),
        Dialect(
            "tinkergraph",
            _graphbinary_serializer,
            transactions=False,
            client_ids=False,
            single_cardinality=False,
            index_within=False,
        ),
    )
}


def dialect_named(name: str) -> Dialect:
    """The dialect called ``name``, or ``InvalidInput`` listing the known ones."""
    try:
        return DIALECTS[name]
    except KeyError:
        known = ", ".join(sorted(DIALECTS))
        raise InvalidInput(f"unknown Gremlin dialect {name!r}; known dialects: {known}") from None
