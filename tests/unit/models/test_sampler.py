"""``NeighbourSampler`` and ``neighbour_loader`` against a plain-Python reading of the graph.

Graphs are small random heterogeneous graphs (customers, cells, devices; ``at``,
``uses`` and ``household`` edges with their reverses). Each sample is replayed hop by
hop: every target of a hop keeps exactly ``min(in-degree, fanout)`` of its in-edges
of each type, every sampled edge maps back to an edge of the graph, and the next
hop's targets are the nodes first reached in this one.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import HeteroData
from torch_geometric.loader import LinkLoader
from torch_geometric.sampler import HeteroSamplerOutput, NegativeSampling, NodeSamplerInput

from models.sampler import NeighbourSampler, neighbour_loader

EdgeType = tuple[str, str, str]


def hetero(
    customers: int,
    cells: int,
    devices: int,
    at: list[tuple[int, int]],
    uses: list[tuple[int, int]],
    household: list[tuple[int, int]],
) -> HeteroData:
    """A graph shaped like a snapshot: features that name each node, reverse edges."""
    data = HeteroData()
    for kind, size in (("customer", customers), ("cell", cells), ("device", devices)):
        data[kind].x = torch.arange(size, dtype=torch.float32).unsqueeze(1)
    data["customer"].y = torch.arange(customers) * 10
    for (source, name, target), pairs in (
        (("customer", "at", "cell"), at),
        (("customer", "uses", "device"), uses),
        (("customer", "household", "customer"), household),
    ):
        edge_index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).t().contiguous()
        data[source, name, target].edge_index = edge_index
        if source != target:
            data[target, f"rev_{name}", source].edge_index = edge_index.flip(0).contiguous()
    return data


@st.composite
def graphs(draw: st.DrawFn) -> HeteroData:
    customers = draw(st.integers(1, 12))
    cells = draw(st.integers(1, 4))
    devices = draw(st.integers(1, 3))

    def pairs(sources: int, targets: int) -> list[tuple[int, int]]:
        every = [(s, t) for s in range(sources) for t in range(targets)]
        return draw(st.lists(st.sampled_from(every), unique=True, max_size=len(every)))

    return hetero(
        customers,
        cells,
        devices,
        pairs(customers, cells),
        pairs(customers, devices),
        [(s, t) for s, t in pairs(customers, customers) if s != t],
    )


def sample(
    data: HeteroData, seeds: list[int], fanouts: list[int], seed: int = 0
) -> HeteroSamplerOutput:
    sampler = NeighbourSampler(data, fanouts, seed)
    index = NodeSamplerInput(
        input_id=torch.arange(len(seeds)), node=torch.tensor(seeds), input_type="customer"
    )
    out: HeteroSamplerOutput = sampler.sample_from_nodes(index)
    return out


def sampled_edges(
    data: HeteroData, out: HeteroSamplerOutput
) -> dict[EdgeType, list[tuple[int, int, int]]]:
    """Each sampled edge as (global source, global target, edge id), checked against
    the graph: the local row/col must name the endpoints of the edge with that id."""
    edges: dict[EdgeType, list[tuple[int, int, int]]] = {}
    for edge_type in data.edge_types:
        source_type, _, target_type = edge_type
        row, col, edge = out.row[edge_type], out.col[edge_type], out.edge[edge_type]
        assert len(row) == len(col) == len(edge)
        if not len(edge):
            edges[edge_type] = []
            continue
        sources = out.node[source_type][row].tolist()
        targets = out.node[target_type][col].tolist()
        original = data[edge_type].edge_index[:, edge]
        assert original[0].tolist() == sources, edge_type
        assert original[1].tolist() == targets, edge_type
        edges[edge_type] = list(zip(sources, targets, edge.tolist(), strict=True))
    return edges


def in_edges(data: HeteroData, edge_type: EdgeType) -> dict[int, list[int]]:
    """Edge ids pointing at each target node."""
    found: dict[int, list[int]] = defaultdict(list)
    for edge, target in enumerate(data[edge_type].edge_index[1].tolist()):
        found[target].append(edge)
    return found


def replay(
    data: HeteroData, out: HeteroSamplerOutput, seeds: list[int], fanouts: list[int]
) -> None:
    """Check ``out`` hop by hop against the graph (the module docstring's rules)."""
    edges = sampled_edges(data, out)
    by_target = {
        edge_type: {target: [e for _, t, e in found if t == target] for _, target, _ in found}
        for edge_type, found in edges.items()
    }
    seen: dict[str, set[int]] = defaultdict(set)
    seen["customer"] = set(seeds)
    frontier: dict[str, set[int]] = {"customer": set(seeds)}
    expanded: dict[EdgeType, set[int]] = defaultdict(set)
    for fanout in fanouts:
        reached: dict[str, set[int]] = defaultdict(set)
        for edge_type in data.edge_types:
            source_type, _, target_type = edge_type
            everyone = in_edges(data, edge_type)
            for target in frontier.get(target_type, set()):
                kept = by_target[edge_type].get(target, [])
                assert len(kept) == len(set(kept)), "an edge sampled twice"
                assert set(kept) <= set(everyone[target])
                assert len(kept) == min(len(everyone[target]), fanout)
                expanded[edge_type].add(target)
                sources = data[edge_type].edge_index[0, kept].tolist()
                reached[source_type] |= set(sources) - seen[source_type]
        for kind, nodes in reached.items():
            seen[kind] |= nodes
        frontier = reached
    for edge_type, targets in by_target.items():
        assert set(targets) <= expanded[edge_type], "edges into a node never expanded"
    for kind, nodes in out.node.items():
        assert len(nodes) == len(set(nodes.tolist())), f"{kind} sampled twice"
        assert set(nodes.tolist()) == seen[kind]


@st.composite
def cases(draw: st.DrawFn) -> tuple[HeteroData, list[int], list[int], int]:
    data = draw(graphs())
    customers = data["customer"].num_nodes
    seeds = draw(st.lists(st.integers(0, customers - 1), min_size=1, unique=True))
    fanouts = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    return data, seeds, fanouts, draw(st.integers(0, 2**16))


@settings(max_examples=150, deadline=None)
@given(cases())
def test_samples_follow_the_graph_and_the_fanouts(
    case: tuple[HeteroData, list[int], list[int], int],
) -> None:
    data, seeds, fanouts, seed = case
    out = sample(data, seeds, fanouts, seed)
    assert out.node["customer"][: len(seeds)].tolist() == seeds
    replay(data, out, seeds, fanouts)


@settings(max_examples=50, deadline=None)
@given(cases())
def test_the_same_seed_gives_the_same_sample(
    case: tuple[HeteroData, list[int], list[int], int],
) -> None:
    data, seeds, fanouts, seed = case
    first, second = sample(data, seeds, fanouts, seed), sample(data, seeds, fanouts, seed)
    assert first.node.keys() == second.node.keys()
    assert all(torch.equal(first.node[k], second.node[k]) for k in first.node)
    for parts in ("row", "col", "edge"):
        one, two = getattr(first, parts), getattr(second, parts)
        assert all(torch.equal(one[k], two[k]) for k in one)


def star(leaves: int) -> HeteroData:
    """Customer 0 in a household with each of ``leaves`` others (both ways), one cell."""
    household = [(n, 0) for n in range(1, leaves + 1)] + [(0, n) for n in range(1, leaves + 1)]
    return hetero(leaves + 1, 1, 1, [(0, 0)], [], household)


def household_of(out: HeteroSamplerOutput) -> frozenset[int]:
    edge_type = ("customer", "household", "customer")
    return frozenset(out.node["customer"][out.row[edge_type]].tolist())


def test_different_seeds_give_different_samples() -> None:
    data = star(40)
    picks = {household_of(sample(data, [0], [3], seed)) for seed in range(6)}
    assert all(len(pick) == 3 for pick in picks)
    assert len(picks) > 1


def test_every_neighbour_can_be_drawn() -> None:
    data = star(8)
    drawn = Counter(n for seed in range(60) for n in household_of(sample(data, [0], [2], seed)))
    assert set(drawn) == set(range(1, 9))


def test_a_node_with_fewer_neighbours_than_the_fanout_keeps_them_all() -> None:
    data = star(3)
    out = sample(data, [0], [5])
    assert household_of(out) == {1, 2, 3}
    assert out.node["cell"].tolist() == [0]
    # A leaf has one neighbour (the centre), already sampled: the second hop adds nobody new.
    out = sample(data, [2], [5, 5])
    assert sorted(out.node["customer"].tolist()) == [0, 1, 2, 3]
    assert out.node["customer"][0] == 2


def test_a_seed_without_neighbours_is_sampled_alone() -> None:
    data = hetero(3, 1, 1, [], [], [(1, 2)])
    out = sample(data, [0], [4, 4])
    assert out.node["customer"].tolist() == [0]
    assert all(len(edge) == 0 for edge in out.edge.values())


# -- through the loader -----------------------------------------------------------------


def loader_graph() -> HeteroData:
    generator = torch.Generator().manual_seed(3)
    customers, cells = 40, 5
    at = {(int(c), int(torch.randint(cells, (1,), generator=generator))) for c in range(40)}
    household = {
        (int(a), int(b))
        for a, b in torch.randint(customers, (120, 2), generator=generator).tolist()
        if a != b
    }
    return hetero(customers, cells, 2, sorted(at), [(0, 0), (1, 0), (2, 1)], sorted(household))


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_loader_gives_batches_of_seeds_first(shuffle: bool) -> None:
    data = loader_graph()
    seeds = torch.tensor([17, 3, 29, 0, 38, 11, 5, 22, 31, 9, 14, 1, 26])
    batches = list(neighbour_loader(data, seeds, [3, 2], batch_size=5, shuffle=shuffle, seed=4))
    assert [batch["customer"].batch_size for batch in batches] == [5, 5, 3]
    firsts = [batch["customer"].n_id[: batch["customer"].batch_size] for batch in batches]
    if shuffle:
        assert sorted(torch.cat(firsts).tolist()) == sorted(seeds.tolist())
    else:
        assert torch.equal(torch.cat(firsts), seeds)
    for batch in batches:
        n_id = {kind: batch[kind].n_id for kind in batch.node_types}
        for kind in batch.node_types:
            assert torch.equal(batch[kind].x.squeeze(1), n_id[kind].float())
        assert torch.equal(batch["customer"].y, n_id["customer"] * 10)
        for edge_type in batch.edge_types:
            source_type, _, target_type = edge_type
            local = batch[edge_type].edge_index
            original = data[edge_type].edge_index[:, batch[edge_type].e_id]
            assert torch.equal(n_id[source_type][local[0]], original[0])
            assert torch.equal(n_id[target_type][local[1]], original[1])
            per_target = torch.bincount(local[1], minlength=batch[target_type].num_nodes)
            assert all(count <= 3 for count in per_target.tolist())


def test_the_loader_is_repeatable_for_a_seed() -> None:
    data = loader_graph()
    seeds = torch.arange(0, 40, 3)

    def run(seed: int) -> list[torch.Tensor]:
        loader = neighbour_loader(data, seeds, [2, 2], batch_size=4, shuffle=True, seed=seed)
        return [batch["customer"].n_id for batch in loader]

    first, again, other = run(1), run(1), run(2)
    assert len(first) == len(again) and all(map(torch.equal, first, again))
    assert len(first) != len(other) or not all(map(torch.equal, first, other))


def test_link_loader_samples_both_ends_of_labelled_links() -> None:
    data = loader_graph()
    at = data["customer", "at", "cell"].edge_index
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    loader = LinkLoader(
        data,
        link_sampler=NeighbourSampler(data, [3, 2], seed=5),
        edge_label_index=(("customer", "at", "cell"), at[:, :6]),
        edge_label=labels,
        batch_size=4,
    )
    seen = []
    for batch in loader:
        link = batch["customer", "at", "cell"]
        customers = batch["customer"].n_id[link.edge_label_index[0]]
        cells = batch["cell"].n_id[link.edge_label_index[1]]
        seen += list(zip(customers.tolist(), cells.tolist(), link.edge_label.tolist(), strict=True))
    assert seen == list(zip(at[0, :6].tolist(), at[1, :6].tolist(), labels.tolist(), strict=True))


def test_link_sampling_refuses_to_draw_negatives() -> None:
    data = loader_graph()
    with pytest.raises(ValueError, match="labelled seed links"):
        LinkLoader(
            data,
            link_sampler=NeighbourSampler(data, [3], seed=5),
            edge_label_index=(
                ("customer", "at", "cell"),
                data["customer", "at", "cell"].edge_index,
            ),
            neg_sampling=NegativeSampling("binary"),
            batch_size=4,
        ).__iter__().__next__()
