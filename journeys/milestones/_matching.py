"""Filters of the condition language compiled twice: to Python predicates and to SQL.

The incremental path tests Touchpoint vertices (a property dict: ``event_type``,
``source``, ``channel``, ``ts`` and the attributes beside them) with the Python form;
the backfill tests lake rows (``attributes`` a JSON text) in DuckDB with the SQL form.
Both follow one rule for attributes: only a JSON scalar is a value (a missing key,
null, an object or an array never matches, whatever the operator); numbers compare
with numbers, strings with strings, booleans with booleans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from journeys.milestones.definitions import (
    AttributeFilter,
    MilestoneDefinition,
    NameFilter,
    Scalar,
    Step,
    TouchpointFilter,
)

Properties = Mapping[str, Any]
Predicate = Callable[[Properties], bool]

# --- Python ---------------------------------------------------------------------------


def _kind(value: object) -> str | None:
    """``number``, ``string`` or ``bool`` for a JSON scalar; None for anything else."""
    kind = type(value)
    if kind is bool:
        return "bool"
    if kind is int or kind is float:
        return "number"
    if kind is str:
        return "string"
    return None


def _equal(value: object, operand: Scalar) -> bool:
    return _kind(value) == _kind(operand) and value == operand


def _present(value: object) -> bool:
    return _kind(value) is not None


def _number(value: object) -> bool:
    return _kind(value) == "number"


_PYTHON_OPERATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": _equal,
    "ne": lambda value, operand: _present(value) and not _equal(value, operand),
    "lt": lambda value, operand: _number(value) and value < operand,
    "le": lambda value, operand: _number(value) and value <= operand,
    "gt": lambda value, operand: _number(value) and value > operand,
    "ge": lambda value, operand: _number(value) and value >= operand,
    "in": lambda value, operands: any(_equal(value, operand) for operand in operands),
    "not_in": lambda value, operands: (
        _present(value) and not any(_equal(value, operand) for operand in operands)
    ),
}
"""Attribute operators on a property value (None when the attribute is missing)."""


NameKey = tuple[object, object, object]
"""A touchpoint's ``(event_type, source, channel)``."""
Residual = Predicate | bool
"""What is left of a step once the names are known: never, always, or an attribute test."""


def _attribute_predicate(name: str, test: AttributeFilter) -> Predicate:
    checks = [(_PYTHON_OPERATORS[operator], operand) for operator, operand in test.operators()]
    return lambda properties: all(check(properties.get(name), operand) for check, operand in checks)


@dataclass(frozen=True)
class _FilterRule:
    """A filter split into its name tests and its attribute tests."""

    names: tuple[tuple[int, NameFilter], ...]  # (position in NameKey, test)
    attributes: tuple[Predicate, ...]

    @classmethod
    def of(cls, touchpoint_filter: TouchpointFilter) -> _FilterRule:
        tests = (touchpoint_filter.event_type, touchpoint_filter.source, touchpoint_filter.channel)
        return cls(
            tuple((position, test) for position, test in enumerate(tests) if test is not None),
            tuple(
                _attribute_predicate(name, test)
                for name, test in touchpoint_filter.attributes.items()
            ),
        )

    def names_pass(self, key: NameKey) -> bool:
        return all(test.matches(key[position]) for position, test in self.names)

    def attributes_pass(self, properties: Properties) -> bool:
        return all(predicate(properties) for predicate in self.attributes)


@dataclass(frozen=True)
class _StepRule:
    own: _FilterRule
    options: tuple[_FilterRule, ...]

    def residual(self, key: NameKey) -> Residual:
        """The step's test for touchpoints of these names."""
        if not self.own.names_pass(key):
            return False
        own = self.own.attributes_pass if self.own.attributes else None
        if not self.options:
            return own or True
        passing = [option for option in self.options if option.names_pass(key)]
        if not passing:
            return False
        if any(not option.attributes for option in passing):
            return own or True
        tests = [option.attributes_pass for option in passing]

        def matches(properties: Properties) -> bool:
            return (own is None or own(properties)) and any(test(properties) for test in tests)

        return matches


def _step_rule(step: Step) -> _StepRule:
    return _StepRule(_FilterRule.of(step), tuple(_FilterRule.of(o) for o in step.any_of or ()))


def name_key(properties: Properties) -> NameKey:
    """The names a touchpoint is filtered by."""
    return properties.get("event_type"), properties.get("source"), properties.get("channel")


def step_predicate(step: Step) -> Predicate:
    """Whether a touchpoint (its vertex properties) matches a step."""
    rule = _step_rule(step)

    def matches(properties: Properties) -> bool:
        residual = rule.residual(name_key(properties))
        return residual if isinstance(residual, bool) else residual(properties)

    return matches


def _milliseconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds()) * 1000


@dataclass(frozen=True)
class CompiledStep:
    """A step's count and windows in milliseconds."""

    count: int
    within_ms: int | None
    max_gap_ms: int | None


class CompiledDefinition:
    """A definition ready to evaluate: its steps' tests and windows, its horizon in ms.

    Name tests (event type, source, channel) depend on three values that repeat on
    every touchpoint, so each combination is decided once and remembered; only the
    attribute tests run per touchpoint, and only for steps whose names match.
    """

    def __init__(self, definition: MilestoneDefinition) -> None:
        self.definition = definition
        self.steps = tuple(
            CompiledStep(step.count, _milliseconds(step.within), _milliseconds(step.max_gap))
            for step in definition.condition.steps
        )
        self.horizon_ms = _milliseconds(definition.condition.horizon)
        self._rules = tuple(_step_rule(step) for step in definition.condition.steps)
        self._residuals: dict[NameKey, tuple[tuple[int, Residual], ...]] = {}

    @classmethod
    def of(cls, definition: MilestoneDefinition) -> CompiledDefinition:
        """Compile a definition."""
        return cls(definition)

    def residuals(self, key: NameKey) -> tuple[tuple[int, Residual], ...]:
        """``(step, test)`` for the steps touchpoints of these names may match."""
        found = self._residuals.get(key)
        if found is None:
            pairs = ((index, rule.residual(key)) for index, rule in enumerate(self._rules))
            found = tuple((index, residual) for index, residual in pairs if residual is not False)
            if len(self._residuals) < _MAX_REMEMBERED:
                self._residuals[key] = found
        return found

    def mask(self, properties: Properties) -> int:
        """Bit ``k`` set when the touchpoint matches step ``k``."""
        mask = 0
        for index, residual in self.residuals(name_key(properties)):
            if residual is True or (residual is not False and residual(properties)):
                mask |= 1 << index
        return mask


_MAX_REMEMBERED: Final = 100_000
"""Name combinations remembered per definition (event types are a small vocabulary)."""


class TouchpointMatcher:
    """Which steps of which definitions a touchpoint matches.

    Most touchpoints (network KPIs, page views, bills) match no step of any
    definition; for them the answer is one dictionary look-up of their names.
    """

    def __init__(self, definitions: Sequence[CompiledDefinition]) -> None:
        self.definitions = list(definitions)
        self._relevant: dict[NameKey, tuple[int, ...]] = {}

    def masks(self, properties: Properties) -> dict[int, int]:
        """``{definition index: step mask}`` for the definitions the touchpoint matches."""
        key = name_key(properties)
        relevant = self._relevant.get(key)
        if relevant is None:
            relevant = tuple(
                index for index, compiled in enumerate(self.definitions) if compiled.residuals(key)
            )
            if len(self._relevant) < _MAX_REMEMBERED:
                self._relevant[key] = relevant
        result: dict[int, int] = {}
        for index in relevant:
            mask = self.definitions[index].mask(properties)
            if mask:
                result[index] = mask
        return result


# --- SQL (DuckDB over lake rows) ----------------------------------------------------

_NUMERIC_TYPES: Final = "('BIGINT', 'UBIGINT', 'DOUBLE')"
_SCALAR_TYPES: Final = "('BIGINT', 'UBIGINT', 'DOUBLE', 'VARCHAR', 'BOOLEAN')"


@dataclass(frozen=True)
class _Attribute:
    """SQL expressions reading one attribute of the ``attributes`` JSON text.

    The name is part of the SQL text, not a parameter: DuckDB's JSON path must be
    a constant, and names are validated to ``[A-Za-z_][A-Za-z0-9_]*``.
    """

    name: str

    @property
    def kind(self) -> str:
        return f"json_type(attributes, '$.{self.name}')"

    def value(self, operand: Scalar) -> str:
        """The attribute as a SQL value of the operand's kind (NULL when of another)."""
        path = f"attributes, '$.{self.name}'"
        if isinstance(operand, bool):
            return (
                f"(CASE WHEN {self.kind} = 'BOOLEAN' "
                f"THEN CAST(json_extract({path}) AS BOOLEAN) END)"
            )
        if isinstance(operand, str):
            return f"(CASE WHEN {self.kind} = 'VARCHAR' THEN json_extract_string({path}) END)"
        return (
            f"(CASE WHEN {self.kind} IN {_NUMERIC_TYPES} "
            f"THEN CAST(json_extract({path}) AS DOUBLE) END)"
        )

    @property
    def present(self) -> str:
        return f"coalesce({self.kind} IN {_SCALAR_TYPES}, false)"


def _parameter(operand: Scalar) -> Scalar:
    # Numbers compare as DOUBLE on both sides, as JSON numbers of any form are read.
    if isinstance(operand, int) and not isinstance(operand, bool):
        return float(operand)
    return operand


def _sql_equal(attribute: _Attribute, operand: Scalar, params: list[Any]) -> str:
    params.append(_parameter(operand))
    return f"coalesce({attribute.value(operand)} = ?, false)"


def _sql_any_equal(attribute: _Attribute, operands: Sequence[Scalar], params: list[Any]) -> str:
    return "(" + " OR ".join(_sql_equal(attribute, operand, params) for operand in operands) + ")"


def _sql_compare(symbol: str) -> Callable[[_Attribute, Any, list[Any]], str]:
    def compare(attribute: _Attribute, operand: float, params: list[Any]) -> str:
        params.append(float(operand))
        return f"coalesce({attribute.value(operand)} {symbol} ?, false)"

    return compare


_SQL_OPERATORS: Final[dict[str, Callable[[_Attribute, Any, list[Any]], str]]] = {
    "eq": _sql_equal,
    "ne": lambda attribute, operand, params: (
        f"({attribute.present} AND NOT {_sql_equal(attribute, operand, params)})"
    ),
    "lt": _sql_compare("<"),
    "le": _sql_compare("<="),
    "gt": _sql_compare(">"),
    "ge": _sql_compare(">="),
    "in": _sql_any_equal,
    "not_in": lambda attribute, operands, params: (
        f"({attribute.present} AND NOT {_sql_any_equal(attribute, operands, params)})"
    ),
}
"""Attribute operators as SQL over a lake row's ``attributes`` JSON text."""


def _sql_names(column: str, test: NameFilter, params: list[Any]) -> str:
    names = test.in_ if test.in_ is not None else test.not_in or ()
    params.extend(names)
    marks = ", ".join("?" * len(names))
    return f"{column} {'IN' if test.in_ is not None else 'NOT IN'} ({marks})"


def _sql_filter(touchpoint_filter: TouchpointFilter, params: list[Any]) -> str:
    clauses = [
        _sql_names(column, test, params)
        for column, test in (
            ("event_type", touchpoint_filter.event_type),
            ("source", touchpoint_filter.source),
            ("channel", touchpoint_filter.channel),
        )
        if test is not None
    ]
    for name, test in touchpoint_filter.attributes.items():
        attribute = _Attribute(name)
        clauses += [
            _SQL_OPERATORS[operator](attribute, operand, params)
            for operator, operand in test.operators()
        ]
    return "(" + " AND ".join(clauses) + ")" if clauses else "true"


def step_sql(step: Step, params: list[Any]) -> str:
    """A SQL condition true for lake rows matching ``step``; appends its parameters."""
    own = _sql_filter(step, params)
    if not step.any_of:
        return own
    options = " OR ".join(_sql_filter(option, params) for option in step.any_of)
    return f"({own} AND ({options}))"
