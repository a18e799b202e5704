"""Milestones: declarative definitions, evaluated by backfill and from the change feed.

A milestone definition (``MilestoneDefinition``, YAML or JSON) names a condition on a
customer's touchpoints: event types, sources, channels and attribute filters, counts
within a time window, steps in order with a maximum gap. ``MilestoneBackfill``
evaluates definitions over the whole lake (vectorised); ``MilestoneFollower`` keeps
them current from the graph's change feed. Reaches go to the graph (Milestone
vertices, REACHED and EVIDENCED_BY edges) and to Parquet beside the lake, which KPIs
read with ``read_reaches``. docs/milestones.md has the language and the semantics.
"""

from journeys.milestones.backfill import (
    BackfillSummary,
    DryRunQuery,
    DryRunResult,
    DryRunRunner,
    LakeEvaluation,
    MilestoneBackfill,
    ReachOut,
    evaluate_lake,
)
from journeys.milestones.catalog import MilestoneCatalog, UnknownMilestone, shipped_definitions
from journeys.milestones.definitions import (
    AttributeFilter,
    Condition,
    MilestoneDefinition,
    NameFilter,
    Step,
    TouchpointFilter,
    load_definition,
    parse_definition,
    parse_definition_text,
)
from journeys.milestones.incremental import (
    FeedBatch,
    FollowCursor,
    FollowSummary,
    MilestoneFollower,
)
from journeys.milestones.reaches import (
    REACH_SCHEMA,
    Reach,
    ReachStore,
    reaches_relation,
    read_reaches,
)
from journeys.milestones.service import (
    AddedDefinition,
    CustomerMilestone,
    MilestoneService,
    MilestoneSummary,
)

__all__ = [
    "REACH_SCHEMA",
    "AddedDefinition",
    "AttributeFilter",
    "BackfillSummary",
    "Condition",
    "CustomerMilestone",
    "DryRunQuery",
    "DryRunResult",
    "DryRunRunner",
    "FeedBatch",
    "FollowCursor",
    "FollowSummary",
    "LakeEvaluation",
    "MilestoneBackfill",
    "MilestoneCatalog",
    "MilestoneDefinition",
    "MilestoneFollower",
    "MilestoneService",
    "MilestoneSummary",
    "NameFilter",
    "Reach",
    "ReachOut",
    "ReachStore",
    "Step",
    "TouchpointFilter",
    "UnknownMilestone",
    "evaluate_lake",
    "load_definition",
    "parse_definition",
    "parse_definition_text",
    "read_reaches",
    "reaches_relation",
    "shipped_definitions",
]
