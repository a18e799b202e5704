"""Neighbour sampling in plain torch, fed to PyG's ``NodeLoader``.

PyG's ``NeighborLoader`` needs ``pyg-lib`` or ``torch-sparse``, neither of which
installs from a wheel here, so ``NeighbourSampler`` does the same job: from a batch of
seed customers it samples, hop by hop, up to ``fanout`` in-neighbours per node and
edge type, and returns a ``HeteroSamplerOutput`` that ``NodeLoader`` turns into a
mini-batch ``HeteroData`` (seeds first, ``batch_size`` on the seed type). Memory is
bounded by the batch size and the fanouts, not the graph.

Sampling is seeded per edge: which in-neighbours a node keeps depends only on the node,
its edges and ``seed``, never on the rest of the batch, so a customer scored alone at
request time gets the same neighbourhood as in a batch, and a new ``seed`` (each
training epoch) draws a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.loader import NodeLoader
from torch_geometric.sampler import (
    BaseSampler,
    EdgeSamplerInput,
    HeteroSamplerOutput,
    NodeSamplerInput,
)

EdgeType = tuple[str, str, str]


class _Adjacency:
    """One edge type's edges grouped by target node (CSR over targets)."""

    def __init__(self, edge_index: Tensor, targets: int) -> None:
        order = torch.argsort(edge_index[1], stable=True)
        self.source = edge_index[0][order]
        self.edge = order
        counts = torch.bincount(edge_index[1], minlength=targets)
        self.start = torch.zeros(targets + 1, dtype=torch.long)
        self.start[1:] = torch.cumsum(counts, 0)

    def sample(self, targets: Tensor, fanout: int, seed: int) -> tuple[Tensor, ...]:
        """Up to ``fanout`` random in-edges of each target: (target position, source, edge)."""
        begin, end = self.start[targets], self.start[targets + 1]
        degree = end - begin
        total = int(degree.sum())
        if total == 0:
            empty = torch.empty(0, dtype=torch.long)
            return empty, empty, empty
        owner = torch.repeat_interleave(torch.arange(len(targets)), degree)
        rank = torch.arange(total) - torch.repeat_interleave(
            torch.cumsum(degree, 0) - degree, degree
        )
        slot = begin[owner] + rank
        if int(degree.max()) > fanout:
            # Shuffle within each target's group by a key hashed from (edge, seed), keep the
            # first few. A target's sample depends on nothing else: not on the other seeds
            # of the batch, so a customer scores the same alone or in a batch.
            noise = _edge_keys(self.edge[slot], seed)
            order = torch.argsort(owner.to(torch.float64) + noise)
            keep = rank < fanout
            owner, slot = owner[order][keep], slot[order][keep]
        return owner, self.source[slot], self.edge[slot]


def _edge_keys(edges: Tensor, seed: int) -> Tensor:
    """A pseudo-random number in [0, 1) per edge and seed (a SplitMix64 finaliser)."""
    mixed = (seed * 0x2545F4914F6CDD1D) % (1 << 64)
    x = edges * -7046029254386353131 + (mixed - (1 << 64) if mixed >= 1 << 63 else mixed)
    x = (x ^ (x >> 30)) * -4658895280553007687
    x = (x ^ (x >> 27)) * -7723592293110705685
    x = x ^ (x >> 31)
    return (x & ((1 << 53) - 1)).to(torch.float64) / float(1 << 53)


class NeighbourSampler(BaseSampler):  # type: ignore[misc]
    """Hop-by-hop neighbour sampling over a ``HeteroData`` (the ``NeighborLoader`` idea)."""

    def __init__(self, data: HeteroData, fanouts: list[int], seed: int = 0) -> None:
        self.fanouts = fanouts
        self.seed = seed
        self.num_nodes = {node_type: data[node_type].num_nodes for node_type in data.node_types}
        self.adjacency: dict[EdgeType, _Adjacency] = {
            edge_type: _Adjacency(data[edge_type].edge_index, self.num_nodes[edge_type[2]])
            for edge_type in data.edge_types
        }

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs: Any) -> HeteroSamplerOutput:
        """Sample the neighbourhood of ``index.node`` (of type ``index.input_type``)."""
        if index.input_type is None:
            raise ValueError("NeighbourSampler samples heterogeneous graphs: give an input type")
        _, out = self.sample({index.input_type: index.node})
        return out(metadata=(index.input_id, None))

    def sample_from_edges(
        self, index: EdgeSamplerInput, neg_sampling: Any = None
    ) -> HeteroSamplerOutput:
        """Sample the neighbourhoods of both ends of the seed links (``LinkLoader``).

        The seed links come labelled (positives and negatives alike), as for a
        ``LinkNeighborLoader`` without ``neg_sampling``; drawing negatives is the caller's.
        """
        if neg_sampling is not None:
            raise ValueError("NeighbourSampler takes labelled seed links; give negatives as links")
        if index.input_type is None:
            raise ValueError("NeighbourSampler samples heterogeneous graphs: give an edge type")
        source_type, _, target_type = index.input_type
        if source_type == target_type:
            seeds = {source_type: torch.cat([index.row, index.col])}
        else:
            seeds = {source_type: index.row, target_type: index.col}
        nodes, out = self.sample(seeds)
        label_index = torch.stack(
            [nodes.local(source_type, index.row), nodes.local(target_type, index.col)]
        )
        return out(metadata=(index.input_id, label_index, index.label, None))

    def sample(
        self, seeds: dict[str, Tensor]
    ) -> tuple[_NodeSet, Callable[..., HeteroSamplerOutput]]:
        """The sampled subgraph around ``seeds``, seeds first in their type's node list.

        Returns the node set (global-to-local maps) and the output, less its metadata.
        """
        nodes = _NodeSet(self.num_nodes)
        frontier = {kind: nodes.add(kind, ids) for kind, ids in seeds.items()}
        rows: dict[EdgeType, list[Tensor]] = {edge_type: [] for edge_type in self.adjacency}
        cols: dict[EdgeType, list[Tensor]] = {edge_type: [] for edge_type in self.adjacency}
        edges: dict[EdgeType, list[Tensor]] = {edge_type: [] for edge_type in self.adjacency}
        for fanout in self.fanouts:
            reached: dict[str, list[Tensor]] = {}
            for edge_type, adjacency in self.adjacency.items():
                source_type, _, target_type = edge_type
                targets = frontier.get(target_type)
                if targets is None or len(targets) == 0:
                    continue
                owner, source, edge = adjacency.sample(targets, fanout, self.seed)
                new = nodes.add(source_type, source)
                reached.setdefault(source_type, []).append(new)
                rows[edge_type].append(nodes.local(source_type, source))
                cols[edge_type].append(nodes.local(target_type, targets[owner]))
                edges[edge_type].append(edge)
            frontier = {kind: torch.cat(parts) for kind, parts in reached.items()}
        return nodes, partial(
            HeteroSamplerOutput,
            node=nodes.as_dict(),
            row=_cat(rows),
            col=_cat(cols),
            edge=_cat(edges),
            batch=None,
        )


class _NodeSet:
    """Sampled nodes per type, in the order first reached, with global-to-local maps."""

    def __init__(self, num_nodes: Mapping[str, int]) -> None:
        self.num_nodes = num_nodes
        self.nodes: dict[str, list[Tensor]] = {}
        self.size: dict[str, int] = {}
        self.position: dict[str, Tensor] = {}

    def add(self, node_type: str, ids: Tensor) -> Tensor:
        """Add ``ids`` not yet in the set; return the new ones."""
        if node_type not in self.position:
            self.position[node_type] = torch.full((self.num_nodes[node_type],), -1)
            self.nodes[node_type] = []
            self.size[node_type] = 0
        position = self.position[node_type]
        fresh: Tensor
        if self.nodes[node_type]:
            fresh = torch.unique(ids[position[ids] < 0])
        else:
            # The seeds keep the order given: the loader reads results off the first rows.
            fresh = _unique_in_order(ids)
        count = self.size[node_type]
        position[fresh] = torch.arange(count, count + len(fresh))
        self.nodes[node_type].append(fresh)
        self.size[node_type] = count + len(fresh)
        return fresh

    def local(self, node_type: str, ids: Tensor) -> Tensor:
        """Positions of ``ids`` among the sampled nodes of their type."""
        return self.position[node_type][ids]

    def as_dict(self) -> dict[str, Tensor]:
        """Sampled global node ids per type."""
        return {kind: torch.cat(parts) for kind, parts in self.nodes.items()}


def _unique_in_order(ids: Tensor) -> Tensor:
    unique, inverse = torch.unique(ids, return_inverse=True)
    first = torch.full((len(unique),), len(ids), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(ids)), reduce="amin")
    ordered: Tensor = ids[torch.sort(first).values]
    return ordered


def _cat(parts: dict[EdgeType, list[Tensor]]) -> dict[EdgeType, Tensor]:
    return {
        edge_type: torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.long)
        for edge_type, chunks in parts.items()
    }


def neighbour_loader(
    data: HeteroData,
    seeds: Tensor,
    fanouts: list[int],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
) -> NodeLoader:
    """Mini-batches of ``customer`` seeds with their sampled neighbourhoods."""
    return NodeLoader(
        data,
        node_sampler=NeighbourSampler(data, fanouts, seed),
        input_nodes=("customer", seeds),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
    )
