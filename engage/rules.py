"""The decision table: which profile values raise an incident, over which window.

A CX user edits it as YAML (the default is ``engage/rules.yaml``), one row a rule::

    rules:
      - name: call_drop_24h
        metric: call_drop_rate          # one of engage.model.METRICS
        threshold: 0.16                 # an incident when the profile goes above it
        window: 24h                     # 30s, 15m, 1h, 24h, 7d or 2w; at most 30 days
        min_weight: 5                   # calls/sessions the window must hold to count
        description: Dropped calls over the last day
        enabled: true                   # optional; a disabled row is kept but not run

The profile value of a rule is the weighted mean of its metric over the subscriber's
probe events in the window (``engage.profiles`` says exactly which). ``min_weight`` keeps
one bad call on one probe from being an incident. Rule names are unique, so an incident,
an engagement's deduplication key and a saved profile can name the row they came from.

``load_decision_table`` reports a wrong table as ``InvalidInput`` naming the file, the
row (its position and name) and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engage.model import METRICS
from graph.errors import InvalidInput

__all__ = [
    "DEFAULT_MIN_WEIGHT",
    "DEFAULT_WINDOW",
    "MAX_WINDOW",
    "DecisionTable",
    "Rule",
    "default_decision_table",
    "load_decision_table",
    "parse_window",
]

MAX_WINDOW: Final = timedelta(days=30)
"""The longest window a rule may have: profile state is kept for the longest window."""
DEFAULT_WINDOW: Final = timedelta(hours=24)
DEFAULT_MIN_WEIGHT: Final = 5.0
"""Calls or sessions of evidence a default rule needs in its window."""
_NAME: Final = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_DURATION: Final = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_DEFAULT_FILE: Final = "rules.yaml"


def parse_window(value: object) -> timedelta:
    """A window as written in the table: ``24h`` (a whole number and one of ``s m h d w``),
    a number of seconds, or a ``timedelta``; raises ``ValueError`` otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError(
        f"{value!r} is not a duration: write a whole number and a unit, e.g. 24h or 7d"
    )


def _window_text(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


class Rule(BaseModel):
    """One row of the decision table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Unique in the table: 1-64 lower-case letters, digits, ``_ . -``, a letter first."""
    metric: str
    """The probe metric the rule watches (``engage.model.METRICS``)."""
    threshold: float = Field(ge=0.0, le=1.0)
    """An incident when the profile value goes above it."""
    window: timedelta = DEFAULT_WINDOW
    """How far back from each probe event the profile looks (whole seconds, at most 30 days)."""
    min_weight: float = Field(default=DEFAULT_MIN_WEIGHT, ge=0.0, le=1e9)
    """Weight (calls or sessions) the window must hold before the value counts."""
    description: str = ""
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"name {value!r} must be 1-64 lower-case letters, digits, '_', '.' or '-', "
                "starting with a letter"
            )
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r} (one of {', '.join(METRICS)})")
        return value

    @field_validator("window", mode="before")
    @classmethod
    def _parsed_window(cls, value: object) -> timedelta:
        return parse_window(value)

    @field_validator("window")
    @classmethod
    def _bounded_window(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("window must be longer than zero")
        if value > MAX_WINDOW:
            raise ValueError(f"window {_window_text(value)} is longer than {MAX_WINDOW.days} days")
        if value.microseconds:
            raise ValueError("window must be a whole number of seconds")
        return value

    @property
    def window_seconds(self) -> int:
        """The window in seconds."""
        return int(self.window.total_seconds())

    def as_dict(self) -> dict[str, Any]:
        """The row as the YAML file writes it."""
        return {
            "name": self.name,
            "metric": self.metric,
            "threshold": self.threshold,
            "window": _window_text(self.window),
            "min_weight": self.min_weight,
            "description": self.description,
            "enabled": self.enabled,
        }


class DecisionTable(BaseModel):
    """The rules incidents are raised by, in the order they are evaluated and reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> DecisionTable:
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"row {index + 1}: rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self

    @property
    def enabled_rules(self) -> tuple[Rule, ...]:
        """The rules that run."""
        return tuple(rule for rule in self.rules if rule.enabled)

    @property
    def longest_window(self) -> timedelta:
        """The longest window of an enabled rule (zero when none is enabled)."""
        return max((rule.window for rule in self.enabled_rules), default=timedelta(0))

    def rule(self, name: str) -> Rule:
        """The rule called ``name``; raises ``InvalidInput`` when there is none."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise InvalidInput(f"the decision table has no rule {name!r}", details={"rule": name})

    def with_thresholds(self, thresholds: Mapping[str, float]) -> DecisionTable:
        """A copy with thresholds overridden (from settings).

        A key is a metric (every rule on it) or a rule name (that rule; a rule name
        wins over its metric). An unknown key or a threshold outside [0, 1] raises
        ``InvalidInput``.
        """
        names = {rule.name for rule in self.rules}
        unknown = sorted(key for key in thresholds if key not in names and key not in METRICS)
        if unknown:
            raise InvalidInput(
                f"threshold override for {', '.join(map(repr, unknown))}: not a rule of the "
                f"decision table nor a metric ({', '.join(METRICS)})",
                details={"keys": unknown},
            )
        rules = []
        for rule in self.rules:
            value = thresholds.get(rule.name, thresholds.get(rule.metric, rule.threshold))
            key = rule.name if rule.name in thresholds else rule.metric
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(
                    f"threshold override {key!r}: {value!r} is not a number",
                    details={"key": key},
                )
            if not 0.0 <= float(value) <= 1.0:
                raise InvalidInput(
                    f"threshold override {key!r}: {value!r} is outside [0, 1]",
                    details={"key": key},
                )
            rules.append(rule.model_copy(update={"threshold": float(value)}))
        return DecisionTable(rules=tuple(rules))

    def as_dict(self) -> dict[str, Any]:
        """The table as the YAML file writes it."""
        return {"rules": [rule.as_dict() for rule in self.rules]}


def default_decision_table() -> DecisionTable:
    """The shipped table (``engage/rules.yaml``): one rule per metric at its default
    threshold (``engage.model.DEFAULT_THRESHOLDS``), over 24 hours."""
    text = (resources.files("engage") / _DEFAULT_FILE).read_text(encoding="utf-8")
    return _parse(text, f"built-in {_DEFAULT_FILE}")


def load_decision_table(path: str | Path | None = None) -> DecisionTable:
    """The decision table in the YAML file at ``path`` (the shipped one when ``None``).

    Raises ``InvalidInput`` naming the file, the row and the field when the file
    cannot be read or a row is wrong.
    """
    if path is None:
        return default_decision_table()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(
            f"cannot read decision table {path}: {error}", details={"file": str(path)}
        ) from None
    return _parse(text, str(path))


def _parse(text: str, origin: str) -> DecisionTable:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidInput(
            f"decision table {origin} is not valid YAML: {error}", details={"file": origin}
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise InvalidInput(
            f"decision table {origin} must be a YAML mapping with a list of rules "
            "(rules: [{name, metric, threshold, window, min_weight}, ...])",
            details={"file": origin},
        )
    try:
        return DecisionTable.model_validate(data)
    except ValidationError as error:
        raise _located(error, data, origin) from None


def _located(error: ValidationError, data: dict[str, Any], origin: str) -> InvalidInput:
    """The first problem of a table, naming the row (position and name) and the field."""
    problems = error.errors(include_url=False)
    problem = problems[0]
    location = [part for part in problem["loc"] if part != "rules"]
    message = problem["msg"].removeprefix("Value error, ")
    details: dict[str, Any] = {"file": origin}
    where = "rules"
    if location and isinstance(location[0], int):
        index = location[0]
        row = data["rules"][index]
        name = row.get("name") if isinstance(row, dict) else None
        where = f"row {index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
        details["row"] = index + 1
        if isinstance(name, str):
            details["rule"] = name
        if len(location) > 1:
            field = ".".join(str(part) for part in location[1:])
            where = f"{where}, field {field}"
            details["field"] = field
    elif location:
        field = ".".join(str(part) for part in location)
        where = f"field {field}"
        details["field"] = field
    more = len(problems) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return InvalidInput(f"decision table {origin}: {where}: {message}{suffix}", details=details)
