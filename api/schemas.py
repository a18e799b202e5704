"""Request and response models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.security import ApiKey, Scope
from engage.feedback import MAX_ENGAGEMENT_ID, MAX_FEEDBACK_TEXT
from graph import Vertex
from ingest.frame import QuarantinedRow
from ingest.pipeline import IngestSummary
from journeys.customer360 import CustomerProfile, IdentifierLink
from models.scoring import Prediction


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    backend: str | None = None
    detail: str | None = None


class CustomerOut(BaseModel):
    """A customer and what hangs off it."""

    id: str
    properties: dict[str, Any]
    identifiers: int = Field(description="identifiers linked to the customer")
    touchpoints: int = Field(description="touchpoints the customer performed")

    @classmethod
    def of(cls, profile: CustomerProfile) -> CustomerOut:
        """Build from the domain object."""
        return cls(
            id=profile.id,
            properties=profile.properties,
            identifiers=profile.identifiers,
            touchpoints=profile.touchpoints,
        )


class TouchpointOut(BaseModel):
    """One touchpoint of a journey."""

    id: str
    event_type: str | None
    channel: str | None
    ts: datetime | None
    source: str | None
    attributes: dict[str, Any]

    @classmethod
    def of(cls, vertex: Vertex) -> TouchpointOut:
        """Build from a Touchpoint vertex."""
        props = dict(vertex.properties)
        ts = props.pop("ts", None)
        return cls(
            id=vertex.id,
            event_type=_text(props.pop("event_type", None)),
            channel=_text(props.pop("channel", None)),
            ts=ts if isinstance(ts, datetime) else None,
            source=_text(props.pop("source", None)),
            attributes=props,
        )


class JourneyOut(BaseModel):
    """A customer's touchpoints in time order."""

    customer_id: str
    touchpoints: list[TouchpointOut]
    next_cursor: str | None = Field(
        default=None, description="pass as cursor for the next page; null on the last page"
    )


class IdentifierOut(BaseModel):
    """An identifier of a customer with the provenance of its link."""

    id: str
    kind: str
    value: str
    link: dict[str, Any] = Field(description="method, rule, score, first_seen, last_seen")

    @classmethod
    def of(cls, link: IdentifierLink) -> IdentifierOut:
        """Build from the domain object."""
        return cls(id=link.id, kind=link.kind, value=link.value, link=link.link)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


MAX_EVENTS_PER_REQUEST = 10_000


class EventsIn(BaseModel):
    """A batch of touchpoints in the canonical JSON shape (see ``ingest/mappings/canonical``)."""

    events: list[Any] = Field(
        min_length=1,
        max_length=MAX_EVENTS_PER_REQUEST,
        description="event_id (or source_record_id), source, event_type, channel, ts, "
        "identifiers {msisdn, email, account, imei, cookie}, person, attributes",
    )


class RejectedEvent(BaseModel):
    """An event that was quarantined, by its position in the request (1-based)."""

    row: int
    reasons: list[str]


class EventsOut(BaseModel):
    """What happened to a pushed batch."""

    received: int
    accepted: int
    duplicates: int
    quarantined: int
    customers_created: int
    customers_merged: int
    rejected: list[RejectedEvent]

    @classmethod
    def of(cls, summary: IngestSummary, rejected: list[QuarantinedRow]) -> EventsOut:
        """From the pipeline's summary and rejects."""
        return cls(
            received=summary.read,
            accepted=summary.accepted,
            duplicates=summary.duplicates,
            quarantined=summary.quarantined,
            customers_created=summary.customers_created,
            customers_merged=summary.customers_merged,
            rejected=[RejectedEvent(row=row.row, reasons=list(row.reasons)) for row in rejected],
        )


# --- engagement (issue 7) ------------------------------------------------------------


class FeedbackIn(BaseModel):
    """A subscriber's answer to an engagement."""

    engagement_id: str = Field(
        min_length=1, max_length=MAX_ENGAGEMENT_ID, examples=["eng-3f2a9c41d0b7e5a61c28"]
    )
    score: int = Field(ge=1, le=5, description="1 (very bad) to 5 (very good)")
    text: str = Field(
        default="", max_length=MAX_FEEDBACK_TEXT, description="the subscriber's own words"
    )


class PredictRequest(BaseModel):
    """Which customer to score."""

    customer_id: str = Field(
        min_length=1, max_length=500, description="customer id, with or without cust:"
    )


class OfferScoreOut(BaseModel):
    """One ranked offer: P(accept), its margin and P x margin."""

    offer_id: str
    probability: float
    margin_gbp: float
    expected_revenue: float


class PredictionOut(BaseModel):
    """A request-time prediction from the promoted model of a task."""

    customer_id: str
    task: str
    model_version: str
    score: float = Field(
        description="probability (churn, fraud), expected score (csat), or the top offer's "
        "ranking value (nbo)"
    )
    offers: list[OfferScoreOut] = Field(default_factory=list, description="nbo: best first")

    @classmethod
    def of(cls, prediction: Prediction) -> PredictionOut:
        """Build from the domain object."""
        return cls(
            customer_id=prediction.customer_id,
            task=prediction.task,
            model_version=prediction.model_version,
            score=prediction.score,
            offers=[
                OfferScoreOut(
                    offer_id=offer.offer_id,
                    probability=offer.probability,
                    margin_gbp=offer.margin_gbp,
                    expected_revenue=offer.expected_revenue,
                )
                for offer in prediction.offers
            ],
        )


class ModelCardOut(BaseModel):
    """A trained model: task, version, cutoffs, config, metrics (GNN and baseline)."""

    task: str
    version: str
    created_at: datetime
    train_cutoff: datetime
    holdout_cutoff: datetime
    data_cutoff: datetime
    code_version: str
    metrics: dict[str, dict[str, float | None]]
    config: dict[str, Any]


class ScoresOut(BaseModel):
    """The batch scores written onto a customer, by task."""

    customer_id: str
    scores: dict[str, dict[str, Any]]


class KeyOut(BaseModel):
    """An API key as stored: never the key itself."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        """Build from the stored record."""
        return cls(
            id=key.id,
            name=key.name,
            scopes=sorted(key.scopes),
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class KeyIn(BaseModel):
    """A key to create."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, examples=["crm-sync"])
    scopes: list[Scope] = Field(min_length=1, examples=[["read"]])


class KeyCreated(KeyOut):
    """A new key, with the key itself: shown this once, stored only hashed."""

    key: str


class EmbedTokenIn(BaseModel):
    """An embed token to sign: one widget, with parameters the holder cannot change."""

    model_config = ConfigDict(extra="forbid")

    widget: str = Field(min_length=1, max_length=64, examples=["customer-timeline"])
    params: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="locked parameters, e.g. customer_id",
        examples=[{"customer_id": "cust:P0000001"}],
    )
    ttl_seconds: int = Field(default=86_400, ge=1, le=366 * 86_400)


class EmbedTokenOut(BaseModel):
    """A signed embed token and the widget URL (relative to the service) that uses it."""

    token: str
    url: str
    widget: str
    params: dict[str, str]
    expires_at: datetime
    key_id: str
