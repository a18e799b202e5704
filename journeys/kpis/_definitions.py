"""KPI definitions as data: YAML files of SQL with metadata, and their parameters.

A definition (``journeys/kpis/definitions/<name>.yaml``) names a KPI, says what it
measures and in which unit, declares its parameters with defaults, and gives the
SQL that turns the lake into *facts*: one row per thing counted (a care contact, a
customer entering a funnel, a CSAT answer). The runner (``journeys.kpis._runner``)
groups facts by period, segment and dimension and aggregates them the way the
definition's ``aggregate`` says. Fact columns:

* ``customer`` (the customer the fact belongs to: segments join on it)
* ``ts`` (the fact's time: it picks the period and the time window)
* ``dimension`` (optional text: a funnel step's milestone, a channel, a journey)
* ``step`` (optional integer: the order of ``dimension`` values, where they have one)
* ``numerator`` and ``denominator`` for ``ratio`` and ``share``; ``value`` for
  ``distribution``

SQL reads the views ``touchpoints`` and ``milestone_reaches`` and refers to its
parameters as ``$name``; values are always bound, never spliced into the text.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graph.errors import InvalidInput, NotFound

NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PLACEHOLDER: Final = re.compile(r"\$([a-z_][a-z0-9_]*)")
"""A bound parameter in definition SQL (``$days``)."""
RUNNER_PARAMETERS: Final = frozenset({"since", "until"})
"""Parameters every definition's SQL may use to narrow what it reads: the time window."""
_RESERVED: Final = RUNNER_PARAMETERS | {"segment_order"}
"""Names the runner binds itself."""


class UnknownKpi(NotFound):
    """A KPI name that no definition has (HTTP 404)."""

    code = "unknown_kpi"


ParameterType = Literal["int", "float", "string", "strings", "bool"]
Aggregate = Literal["ratio", "share", "distribution"]

_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


class KpiParameter(BaseModel):
    """One parameter of a KPI: its type, default and bounds.

    ``strings`` is a list of text; given as text (the CLI, a query string) it is
    split at commas. ``minimum``/``maximum`` bound numbers, ``min_items`` lists.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ParameterType
    description: str = Field(min_length=1)
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = Field(None, ge=1)
    distinct: bool = Field(False, description="list items must not repeat")

    def coerce(self, name: str, raw: Any) -> Any:
        """``raw`` (a native value, or text from a command line) as this parameter's type."""
        value = _converted(name, self.type, raw)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise InvalidInput(
                    f"parameter {name}: {value} is below the minimum {self.minimum:g}",
                    details={"parameter": name},
                )
            if self.maximum is not None and value > self.maximum:
                raise InvalidInput(
                    f"parameter {name}: {value} is above the maximum {self.maximum:g}",
                    details={"parameter": name},
                )
        if isinstance(value, list):
            if self.min_items is not None and len(value) < self.min_items:
                raise InvalidInput(
                    f"parameter {name}: give at least {self.min_items} items",
                    details={"parameter": name},
                )
            if self.distinct and len(set(value)) < len(value):
                raise InvalidInput(
                    f"parameter {name}: items must not repeat", details={"parameter": name}
                )
        return value


def _converted(name: str, kind: ParameterType, raw: Any) -> Any:
    wrong = InvalidInput(
        f"parameter {name}: {raw!r} is not a valid {kind}", details={"parameter": name}
    )
    if kind == "strings":
        if isinstance(raw, str):
            raw = [part.strip() for part in raw.split(",")]
        if not isinstance(raw, list | tuple) or not all(
            isinstance(item, str) and item for item in raw
        ):
            raise wrong
        return list(raw)
    if kind == "string":
        if not isinstance(raw, str) or not raw:
            raise wrong
        return raw
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise wrong
    if isinstance(raw, bool):
        raise wrong
    try:
        number = float(raw) if kind == "float" else int(raw)
    except (TypeError, ValueError):
        raise wrong from None
    if kind == "int" and isinstance(raw, float) and raw != number:
        raise wrong
    return number


class KpiDefinition(BaseModel):
    """A named KPI: what it measures, its parameters and the SQL of its facts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME.pattern)]
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    unit: str = Field(min_length=1, description="e.g. share (0..1), days, score (1..5)")
    aggregate: Aggregate
    dimension: str | None = Field(
        None, description="what the dimension of a row is (channel, milestone, journey)"
    )
    parameters: dict[str, KpiParameter] = Field(default_factory=dict)
    sql: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check_placeholders(self) -> KpiDefinition:
        used = set(PLACEHOLDER.findall(self.sql))
        undeclared = used - set(self.parameters) - RUNNER_PARAMETERS
        if undeclared:
            raise ValueError(f"SQL uses undeclared parameters: {', '.join(sorted(undeclared))}")
        unused = set(self.parameters) - used
        if unused:
            raise ValueError(f"parameters never used in the SQL: {', '.join(sorted(unused))}")
        for name, parameter in self.parameters.items():
            if not NAME.match(name) or name in _RESERVED:
                raise ValueError(f"parameter name {name!r} is not allowed")
            if parameter.default is not None:
                parameter.coerce(name, parameter.default)
        if self.sql.rstrip().endswith(";"):
            raise ValueError("SQL must be one query without a trailing semicolon")
        return self

    def bind(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every parameter's value: ``given`` ones checked and converted, defaults for the rest.

        Unknown names and missing required parameters are ``InvalidInput``.
        """
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            known = ", ".join(sorted(self.parameters)) or "none"
            raise InvalidInput(
                f"KPI {self.name} has no parameter {', '.join(unknown)} (parameters: {known})",
                details={"kpi": self.name, "parameters": unknown},
            )
        bound: dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            if name in given and given[name] is not None:
                bound[name] = parameter.coerce(name, given[name])
            elif parameter.required:
                raise InvalidInput(
                    f"KPI {self.name} needs parameter {name}: {parameter.description}",
                    details={"kpi": self.name, "parameter": name},
                )
            else:
                bound[name] = (
                    None if parameter.default is None else parameter.coerce(name, parameter.default)
                )
        return bound


def parse_definition(text: str, origin: str) -> KpiDefinition:
    """A KPI definition from YAML text; ``InvalidInput`` naming ``origin`` if it is wrong."""
    try:
        data = yaml.safe_load(text)
        return KpiDefinition.model_validate(data)
    except yaml.YAMLError as error:
        raise InvalidInput(f"KPI definition {origin} is not valid YAML: {error}") from None
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "definition"
        message = problem["msg"].removeprefix("Value error, ")
        raise InvalidInput(
            f"KPI definition {origin}: {where}: {message}", details={"file": origin}
        ) from None


@cache
def _builtin() -> dict[str, KpiDefinition]:
    folder = resources.files("journeys.kpis") / "definitions"
    found: dict[str, KpiDefinition] = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            definition = parse_definition(entry.read_text(encoding="utf-8"), entry.name)
            if f"{definition.name}.yaml" != entry.name:
                raise InvalidInput(f"KPI definition {entry.name} names itself {definition.name}")
            found[definition.name] = definition
    return found


def kpi_definitions() -> dict[str, KpiDefinition]:
    """The KPIs shipped with journeygraph, by name (the registry)."""
    return dict(_builtin())


def kpi_definition(name: str) -> KpiDefinition:
    """One KPI by name; ``UnknownKpi`` listing the known ones if there is none."""
    definitions = _builtin()
    if name not in definitions:
        raise UnknownKpi(
            f"no KPI {name!r} (KPIs: {', '.join(sorted(definitions))})", details={"kpi": name}
        )
    return definitions[name]
