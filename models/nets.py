"""``JourneyGNN``: heterogeneous GraphSAGE over the journey graph, one head per task.

Each node type's features are standardised (statistics fitted on the training
snapshot and saved as buffers, so a saved model carries them) and projected to
``hidden`` channels; ``layers`` rounds of ``HeteroConv`` (a ``SAGEConv`` per edge
type, summed per target type) pass messages; a customer's representation is its
own encoded features beside what its neighbourhood said. Heads:

* ``node``: one output per customer (churn and fraud logits, CSAT score);
* ``offer``: one logit per (customer, offer) pair, the offer encoded from its
  features only, so an offer added after training is scored, not refused.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch_geometric.nn import HeteroConv, SAGEConv

EdgeType = tuple[str, str, str]
HeadKind = Literal["node", "offer"]


class Standardise(nn.Module):
    """``(x - mean) / std`` with statistics fitted once, kept in the state dict."""

    mean: Tensor
    std: Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def fit(self, x: Tensor) -> None:
        """Take the statistics of ``x`` (constant columns keep a std of 1)."""
        if len(x):
            self.mean.copy_(x.mean(0))
            self.std.copy_(torch.where(x.std(0) > 1e-6, x.std(0), torch.ones_like(self.std)))

    def forward(self, x: Tensor) -> Tensor:
        """Standardised ``x``."""
        return (x - self.mean) / self.std


class JourneyGNN(nn.Module):
    """Heterogeneous GraphSAGE with a node head or a customer-offer head."""

    def __init__(
        self,
        in_channels: dict[str, int],
        edge_types: list[EdgeType],
        head: HeadKind,
        hidden: int = 64,
        layers: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.head_kind = head
        self.scale = nn.ModuleDict({kind: Standardise(size) for kind, size in in_channels.items()})
        self.encode = nn.ModuleDict(
            {kind: nn.Linear(size, hidden) for kind, size in in_channels.items()}
        )
        self.convs = nn.ModuleList(
            HeteroConv(
                {edge_type: SAGEConv((hidden, hidden), hidden) for edge_type in edge_types},
                aggr="sum",
            )
            for _ in range(layers)
        )
        self.own = nn.Sequential(
            nn.Linear(in_channels["customer"], hidden), nn.ReLU(), nn.Dropout(dropout)
        )
        self.dropout = nn.Dropout(dropout)
        width = 2 * hidden
        if head == "node":
            self.node_head = nn.Sequential(
                nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1)
            )
        else:
            self.offer_encoder = nn.Sequential(nn.Linear(in_channels["offer"], hidden), nn.ReLU())
            # A bilinear affinity beside the MLP: "likes this kind of offer" is a product of
            # a customer trait and an offer trait, which an MLP over the concatenation
            # learns slowly.
            self.affinity = nn.Linear(width, hidden, bias=False)
            self.pair_head = nn.Sequential(
                nn.Linear(width + hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
            )

    def fit_scalers(self, x_dict: dict[str, Tensor]) -> None:
        """Fit each node type's standardisation on the training snapshot."""
        for kind, x in x_dict.items():
            if kind in self.scale:
                self.scale[kind].fit(x)  # type: ignore[operator]

    def start_at(self, value: float) -> None:
        """Set the node head's output bias (regression starts from the mean label)."""
        with torch.no_grad():
            last: nn.Linear = self.node_head[-1]  # type: ignore[assignment]
            last.bias.fill_(value)

    def embed(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> Tensor:
        """Customer representations: own features beside the neighbourhood's messages."""
        scaled = {kind: self.scale[kind](x) for kind, x in x_dict.items() if kind in self.scale}
        hidden = {kind: self.encode[kind](x).relu() for kind, x in scaled.items()}
        for conv in self.convs:
            update = conv(hidden, edge_index_dict)
            # Node types nothing points at keep their encoding from the previous layer.
            hidden = {kind: self.dropout(update.get(kind, h).relu()) for kind, h in hidden.items()}
        own: Tensor = self.own(scaled["customer"])
        return torch.cat([own, hidden["customer"]], dim=-1)

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[EdgeType, Tensor],
        offer_x: Tensor | None = None,
        seeds: int | None = None,
    ) -> Tensor:
        """Node head: ``[customers]``; offer head: ``[customers, offers]`` logits.

        ``seeds``: score only the first customers (a mini-batch's seeds; the sampled
        neighbours only pass messages).
        """
        customers = self.embed(x_dict, edge_index_dict)[:seeds]
        if self.head_kind == "node":
            out: Tensor = self.node_head(customers).squeeze(-1)
            return out
        if offer_x is None:
            raise ValueError("the offer head needs the offers' features")
        return self.score_offers(customers, offer_x)

    def score_offers(self, customers: Tensor, offer_x: Tensor) -> Tensor:
        """A logit for every (customer, offer) pair."""
        offers = self.offer_encoder(self.scale["offer"](offer_x))
        pairs = torch.cat(
            [
                customers.unsqueeze(1).expand(-1, len(offers), -1),
                offers.unsqueeze(0).expand(len(customers), -1, -1),
            ],
            dim=-1,
        )
        affinity: Tensor = self.affinity(customers) @ offers.T
        logits: Tensor = self.pair_head(pairs).squeeze(-1) + affinity
        return logits
