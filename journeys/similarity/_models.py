"""The similarity query, its answer, and the settings of the index."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OutcomeRules = dict[str, tuple[str, ...]]
"""Outcome name -> the event types that mark it."""

DEFAULT_OUTCOMES: Final[OutcomeRules] = {
    "churned": ("port_out", "cancellation"),
    "accepted_offer": ("offer_accepted",),
}
"""A customer's outcome is the one marked by their latest marking touchpoint."""
Method = Literal["lsh", "lsh+exact", "exact"]
"""How an answer was found: the index, the index then a full scan, or a full scan."""
STILL_ACTIVE: Final = "still_active"
"""The outcome of a customer with no marking touchpoint."""


class JourneyRepresentation(BaseModel):
    """Which steps of a timeline make the journey that similarity compares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclude: tuple[str, ...] = Field(
        default=("network_kpi",),
        description="event types to drop (machine events); names that never occur drop nothing",
    )
    collapse_repeats: bool = Field(default=True, description="merge consecutive same-type steps")
    last_steps: int = Field(default=20, ge=1, le=100, description="keep only the most recent steps")

    @field_validator("exclude")
    @classmethod
    def _canonical(cls, exclude: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(exclude)))


class IndexSettings(BaseModel):
    """How the MinHash-LSH index is built (defaults chosen by measured recall)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    representation: JourneyRepresentation = JourneyRepresentation()
    shingle: int = Field(default=3, ge=1, le=5, description="k of the k-gram shingles")
    num_perm: int = Field(default=128, ge=2, le=512, description="MinHash permutations")
    band_rows: int = Field(default=2, ge=1, le=16, description="signature values per LSH band")
    seed: int = 1
    candidates: int = Field(
        default=5000, ge=10, description="distinct journeys re-ranked exactly, by band collisions"
    )
    compact_fraction: float = Field(
        default=0.05, gt=0, description="merge updates into the base tables beyond this share"
    )
    rebuild_fraction: float = Field(
        default=0.25, gt=0, description="re-sign everything when this share of customers changed"
    )

    @model_validator(mode="after")
    def _check_bands(self) -> IndexSettings:
        if self.num_perm % self.band_rows:
            raise ValueError("num_perm must be a multiple of band_rows")
        if self.shingle > self.representation.last_steps + 2:
            raise ValueError("shingle can be at most last_steps + 2 (the markers)")
        return self


class SimilarityQuery(BaseModel):
    """Customers whose journeys are most like a customer's, or like a list of steps."""

    model_config = ConfigDict(extra="forbid")

    customer: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="compare with this customer's journey",
    )
    steps: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="or with these event types, in order",
    )
    top: int = Field(default=10, ge=1, le=1000)
    min_similarity: float = Field(
        default=0.7, ge=0, le=1, description="count the customers at or above this similarity"
    )
    exclude: list[str] = Field(
        default_factory=lambda: ["network_kpi"], description="event types to drop"
    )
    collapse_repeats: bool = True
    last_steps: int = Field(default=20, ge=1, le=100, description="compare the most recent steps")
    since: datetime | None = Field(
        default=None, description="keep touchpoints at or after this time"
    )
    until: datetime | None = Field(default=None, description="keep touchpoints before this time")
    include_outcome: bool = Field(
        default=True, description="say what became of each similar customer"
    )
    method: Literal["lsh", "exact"] = Field(
        default="lsh", description="lsh: the index, re-ranked exactly; exact: scan every journey"
    )

    @model_validator(mode="after")
    def _check(self) -> SimilarityQuery:
        if (self.customer is None) == (self.steps is None):
            raise ValueError("give either customer or steps")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2024-01-01T00:00:00Z)")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    @property
    def representation(self) -> JourneyRepresentation:
        """The journey representation this query compares on."""
        return JourneyRepresentation(
            exclude=tuple(self.exclude),
            collapse_repeats=self.collapse_repeats,
            last_steps=self.last_steps,
        )

    @property
    def windowed(self) -> bool:
        """Whether the query keeps only touchpoints inside a time window."""
        return self.since is not None or self.until is not None


class SimilarCustomer(BaseModel):
    """One similar customer and how their journey compares."""

    customer: str
    similarity: float = Field(description="1 - normalised edit distance of the journeys")
    steps: list[str] = Field(description="their journey, as compared")
    shared_steps: list[str] = Field(
        description="steps an optimal edit alignment keeps (matches, in order)"
    )
    outcome: str | None = Field(
        default=None, description="churned, accepted_offer, still_active, ..."
    )


class SimilarityResult(BaseModel):
    """The answer to a SimilarityQuery."""

    steps: list[str] = Field(description="the journey compared with, as compared")
    count: int = Field(description="customers at or above min_similarity (the query's excluded)")
    count_exact: bool = Field(
        description="false: counted among the index's candidates, so a lower bound"
    )
    min_similarity: float
    method: Method = Field(
        description="lsh+exact: too few candidates, so every journey was scanned"
    )
    candidates: int = Field(description="distinct journeys compared exactly")
    similar: list[SimilarCustomer] = Field(description="most similar first; ties by customer id")
    outcomes: dict[str, int] | None = Field(
        default=None, description="how many of the similar customers reached each outcome"
    )
