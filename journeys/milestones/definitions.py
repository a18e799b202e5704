"""Milestone definitions: named conditions on a customer's touchpoints, written as data.

A definition is a YAML (or JSON) document a CX analyst can write without Gremlin or
SQL::

    name: repeat_care_3_in_7d
    version: 1
    description: Three care contacts within seven days.
    condition:
      source: care
      event_type: {not_in: [csat_response, ticket_opened]}
      count: 3
      within: 7d

    name: port_out_after_incident
    version: 1
    description: A port-out request at most 30 days after a network incident.
    condition:
      steps:
        - event_type: [network_complaint, no_service]
        - event_type: port_out_request
          max_gap: 30d

A condition is a sequence of one or more *steps* (a single step may be written
without ``steps``). A step matches touchpoints by ``event_type``, ``source`` and
``channel`` (a name, a list of names, or ``{in: [...]}`` / ``{not_in: [...]}``) and by
``attributes`` (``{csat: {le: 2}}``, ``{outcome: unresolved}``; operators eq, ne, lt,
le, gt, ge, in, not_in). It needs ``count`` matching touchpoints (default 1) lying
``within`` a duration of each other, and its last one at most ``max_gap`` after the
previous step's last one. The exact semantics are in docs/milestones.md; the
evaluators in this package implement them and the tests check them against a
plain-Python reference.

A customer reaches a milestone once per definition version: at the first touchpoint,
in ``(ts, event_id)`` order, at which the condition holds. So "first bill shock" is
simply ``event_type: bill_shock``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from graph.errors import InvalidInput

_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ATTRIBUTE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
CORE_FIELDS: Final = frozenset({"event_type", "channel", "ts", "source"})
"""Touchpoint fields of their own; the graph keeps attributes beside them, so an
attribute of one of these names cannot be told apart and is refused."""
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION: Final = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
MAX_STEPS: Final = 10
MAX_COUNT: Final = 100

Scalar = str | int | float | bool
"""A value an attribute filter compares with (attributes are JSON scalars)."""


def _duration(value: object) -> object:
    """``7d``, ``12h``, ``90m``, ``45s``, ``2w`` or whole seconds, as a ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, such as 7d, 12h, 30m or 45s")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(
            f"{value!r} is not a duration: write a whole number with a unit s, m, h, d or w "
            "(7d, 12h, 30m, 45s), or whole seconds"
        )
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact ``<n><unit>`` form of a duration (``7d``, ``90m``)."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A positive whole number of seconds, written ``7d``, ``12h``, ``90m``, ``45s`` or ``2w``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _names(value: object) -> object:
    """``x`` -> ``{in: [x]}``; ``[x, y]`` -> ``{in: [x, y]}``; ``{eq|ne: x}`` likewise."""
    if isinstance(value, str):
        return {"in": [value]}
    if isinstance(value, list):
        return {"in": value}
    if isinstance(value, dict) and len(value) == 1:
        (operator, operand), *_ = value.items()
        if operator == "eq":
            return {"in": [operand]}
        if operator == "ne":
            return {"not_in": [operand]}
    return value


class NameFilter(_Strict):
    """Which names of a touchpoint field (event type, source or channel) match."""

    in_: tuple[str, ...] | None = Field(default=None, alias="in", min_length=1)
    not_in: tuple[str, ...] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_operator(self) -> NameFilter:
        if (self.in_ is None) == (self.not_in is None):
            raise ValueError("give a name, a list of names, or exactly one of in / not_in")
        return self

    def matches(self, name: object) -> bool:
        """Whether a touchpoint with this field value passes."""
        if self.in_ is not None:
            return name in self.in_
        return self.not_in is not None and name not in self.not_in


NameTest = Annotated[NameFilter, BeforeValidator(_names)]


def _attribute_test(value: object) -> object:
    """A bare scalar is ``{eq: scalar}``; a list is ``{in: list}``."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {"in": value}
    return {"eq": value}


def _number(value: object, operator: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{operator} compares numbers; {value!r} is not a finite number")
    return value


class AttributeFilter(_Strict):
    """Tests on one attribute; every operator given must hold.

    An attribute that is missing, null or not a scalar never matches, whatever the
    operator (``ne`` and ``not_in`` included). ``eq``/``ne``/``in``/``not_in`` compare
    strings with strings, numbers with numbers and booleans with booleans (a value
    of another kind is not equal); ``lt``/``le``/``gt``/``ge`` take numbers and match
    numeric values only.
    """

    eq: Scalar | None = None
    ne: Scalar | None = None
    lt: float | int | None = None
    le: float | int | None = None
    gt: float | int | None = None
    ge: float | int | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in", min_length=1)
    not_in: tuple[Scalar, ...] | None = Field(default=None, min_length=1)

    @field_validator("lt", "le", "gt", "ge", mode="before")
    @classmethod
    def _numeric(cls, value: object) -> object:
        return None if value is None else _number(value, "lt/le/gt/ge")

    @field_validator("eq", "ne", mode="before")
    @classmethod
    def _scalar(cls, value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return value

    @model_validator(mode="after")
    def _some_operator(self) -> AttributeFilter:
        if not self.operators():
            raise ValueError("give at least one of eq, ne, lt, le, gt, ge, in, not_in")
        return self

    def operators(self) -> list[tuple[str, Any]]:
        """``(operator, operand)`` for each operator given, in a fixed order."""
        fields: list[tuple[str, Any]] = [
            ("eq", self.eq),
            ("ne", self.ne),
            ("lt", self.lt),
            ("le", self.le),
            ("gt", self.gt),
            ("ge", self.ge),
            ("in", self.in_),
            ("not_in", self.not_in),
        ]
        return [(operator, operand) for operator, operand in fields if operand is not None]


AttributeTest = Annotated[AttributeFilter, BeforeValidator(_attribute_test)]


class TouchpointFilter(_Strict):
    """Which touchpoints match: every field given must hold (an empty filter matches all)."""

    event_type: NameTest | None = None
    source: NameTest | None = None
    channel: NameTest | None = None
    attributes: dict[str, AttributeTest] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, value: dict[str, AttributeFilter]) -> dict[str, AttributeFilter]:
        for name in value:
            if not _ATTRIBUTE.match(name):
                raise ValueError(
                    f"attribute name {name!r} must be 1-64 letters, digits or underscores, "
                    "not starting with a digit"
                )
            if name in CORE_FIELDS:
                raise ValueError(
                    f"{name!r} is a touchpoint field, not an attribute: filter it with "
                    f"{name}: ... on the step"
                )
        return value


class Step(TouchpointFilter):
    """One step of a condition: ``count`` matching touchpoints, close enough together.

    A touchpoint matches the step when it passes the step's own filter fields and, if
    ``any_of`` is given, at least one of those filters too.
    """

    any_of: tuple[TouchpointFilter, ...] | None = Field(default=None, min_length=1)
    count: int = Field(default=1, ge=1, le=MAX_COUNT)
    within: Duration | None = Field(
        default=None, description="the step's count touchpoints lie within this of each other"
    )
    max_gap: Duration | None = Field(
        default=None,
        description="the most time from the previous step's last touchpoint to this one's",
    )

    @model_validator(mode="after")
    def _window_needs_count(self) -> Step:
        if self.within is not None and self.count < 2:
            raise ValueError("within applies to a step with count of 2 or more")
        return self


def _single_step(value: object) -> object:
    """A condition without ``steps`` is one step written inline."""
    if isinstance(value, dict) and "steps" not in value:
        return {"steps": [value]}
    return value


class Condition(_Strict):
    """Steps in order; the condition holds at the touchpoint that completes the last."""

    steps: tuple[Step, ...] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _first_step_has_no_gap(self) -> Condition:
        if self.steps[0].max_gap is not None:
            raise ValueError("steps.0.max_gap: the first step has no previous step")
        return self

    @property
    def horizon(self) -> timedelta | None:
        """The longest time a chain of touchpoints satisfying the condition can span.

        ``None`` when unbounded (a later step without ``max_gap``, or a first step
        counting several touchpoints without ``within``). Whether the condition holds
        at a touchpoint depends only on the touchpoints up to ``horizon`` before it,
        which is how the incremental path reads a short window of a timeline.
        """
        first = self.steps[0]
        if first.count > 1 and first.within is None:
            return None
        total = first.within if first.count > 1 and first.within else timedelta(0)
        for step in self.steps[1:]:
            if step.max_gap is None:
                return None
            total += step.max_gap
        return total


class MilestoneDefinition(_Strict):
    """A named, versioned milestone: what it means and when a customer reaches it."""

    name: str = Field(description="a token: lower-case letters, digits and underscores")
    version: int = Field(default=1, ge=1, le=1_000_000)
    description: str = Field(min_length=1, max_length=2000)
    condition: Annotated[Condition, BeforeValidator(_single_step)]

    @field_validator("name")
    @classmethod
    def _token(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r} is not a milestone name: 1-63 lower-case letters, digits or "
                "underscores, starting with a letter"
            )
        return value

    @property
    def key(self) -> str:
        """``name@version``: what a reach is of."""
        return f"{self.name}@{self.version}"

    def document(self) -> dict[str, Any]:
        """The definition as plain data (durations as ``7d``), as it is stored."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)

    def to_json(self) -> str:
        """The stored JSON text of the definition (stable key order)."""
        document = self.document()
        document.setdefault("version", self.version)
        return json.dumps(document, sort_keys=True, separators=(",", ":"))

    def to_yaml(self) -> str:
        """The definition as YAML, as ``add`` stores it."""
        document = {"name": self.name, "version": self.version, **self.document()}
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def parse_definition(data: object, *, origin: str = "<definition>") -> MilestoneDefinition:
    """Validate a definition given as plain data; ``origin`` names it in errors.

    A wrong definition raises ``InvalidInput`` naming the milestone, the field and
    what is wrong with it (``details``: ``milestone``, ``field``, ``problems``).
    """
    name = data.get("name") if isinstance(data, Mapping) else None
    label = f"milestone {name!r}" if isinstance(name, str) else "milestone"
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"{label} ({origin}): a definition is a mapping with name, version, "
            "description and condition",
            details={"file": origin},
        )
    try:
        return MilestoneDefinition.model_validate(dict(data))
    except ValidationError as error:
        problems = [
            {
                "field": ".".join(str(part) for part in problem["loc"]) or "definition",
                "problem": problem["msg"].removeprefix("Value error, "),
            }
            for problem in error.errors(include_url=False)
        ]
        first = problems[0]
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise InvalidInput(
            f"{label} ({origin}): {first['field']}: {first['problem']}{suffix}",
            details={
                "milestone": name,
                "file": origin,
                "field": first["field"],
                "problems": problems,
            },
        ) from None


def parse_definition_text(text: str, *, origin: str = "<definition>") -> MilestoneDefinition:
    """Parse a YAML or JSON document (JSON is YAML) into a definition."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidInput(
            f"milestone definition {origin} is not valid YAML or JSON: {error}",
            details={"file": origin},
        ) from None
    return parse_definition(data, origin=origin)


def load_definition(path: Path) -> MilestoneDefinition:
    """Read and validate one definition file (``.yaml``, ``.yml`` or ``.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(
            f"cannot read milestone definition {path}: {error}", details={"file": str(path)}
        ) from None
    return parse_definition_text(text, origin=str(path))
