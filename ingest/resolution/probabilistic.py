"""Probabilistic identity resolution: Splink's Fellegi-Sunter model on DuckDB.

Deterministic resolution joins records that share an identifier. What it cannot join
(a CRM duplicate typed with a nickname and no phone, a shop visit where staff took
names, date of birth and postcode) is scored here: each pair of records that a
blocking rule brings together gets a match weight, the sum over its compared columns
of log2(m/u) for the level the pair reaches, and a match probability after the prior.

* ``LinkageSettings`` says which column plays which role (``ColumnRole``), how pairs are
  blocked for prediction and for training, and the two thresholds: pairs at or above
  ``link_threshold`` link, pairs from ``review_threshold`` up go to a review queue.
  ``person_settings()`` is the journeygraph default over the touchpoint frame.
* ``ProbabilisticLinker.train`` is unsupervised: the prior from deterministic rules and
  an assumed recall, u from random pairs (seeded), m by EM over several blocking rules.
  ``save``/``load`` keep the trained model as a versioned JSON file.
* ``predict`` (dedupe), ``link`` (two tables), ``cluster`` (connected components at a
  threshold) and, for a stream, ``add_known`` + ``predict_incremental``, which scores a
  micro-batch against a DuckDB table of known records that stays open between calls.

Values are standardised per role before scoring (case, spaces in postcodes, ``Rd`` for
``Road``); records are pandas frames with a ``unique_id`` column and the compared columns.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import splink
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graph.errors import InvalidInput
from ingest.resolution import _splink_engine as engine
from ingest.resolution._splink_comparisons import LinkType
from ingest.resolution._splink_prepare import UNIQUE_ID, check_disjoint_ids, prepare_records

MODEL_FORMAT: Final = "journeygraph-splink-model"
MODEL_VERSION: Final = 1

_COLUMN_NAME: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NAME_IN_EXPRESSION: Final = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")

BlockingRule = tuple[str, ...]
"""Column names (or SQL expressions over one column, such as ``substr(first_name, 1, 1)``)
that must be equal on both sides for a pair to be compared."""


class ColumnRole(StrEnum):
    """How a column is compared; each role has its own ladder of agreement levels."""

    NAME = "name"
    """Exact (term-frequency adjusted if asked), optionally names reversed, then
    Jaro-Winkler at each of ``similarity_thresholds``."""
    DATE = "date"
    """ISO dates: exact, day and month swapped, optionally one typo, within a year."""
    POSTCODE = "postcode"
    """UK postcodes (spaces ignored): exact, same sector, same district."""
    ADDRESS = "address"
    """Free-text address (street words expanded): exact, then Jaro-Winkler levels."""
    IDENTIFIER = "identifier"
    """An identifier such as an email or MSISDN: exact, optionally one typo."""


class ColumnComparison(BaseModel):
    """One compared column and its role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str = Field(pattern=_COLUMN_NAME)
    role: ColumnRole
    term_frequency: bool = False
    """Scale the exact-match weight by how common the value is (``Smith`` counts less)."""
    similarity_thresholds: tuple[float, ...] = (0.92, 0.8)
    """Jaro-Winkler levels, highest first (``name`` and ``address`` only)."""
    reversed_with: str | None = Field(default=None, pattern=_COLUMN_NAME)
    """``name`` only: a level for this column and that one swapped (first/last name)."""
    typo_level: bool = False
    """``date`` and ``identifier``: a level for one edit (Damerau-Levenshtein 1)."""
    nicknames: bool = False
    """``name`` only: a level for informal forms of English given names (Bill, William)."""

    @model_validator(mode="after")
    def _check(self) -> ColumnComparison:
        thresholds = self.similarity_thresholds
        if any(not 0.0 < t < 1.0 for t in thresholds) or list(thresholds) != sorted(
            set(thresholds), reverse=True
        ):
            raise ValueError("similarity_thresholds must be distinct, in (0, 1), highest first")
        if self.role is not ColumnRole.NAME and (self.reversed_with or self.nicknames):
            raise ValueError("reversed_with and nicknames apply to name columns only")
        return self


class LinkageSettings(BaseModel):
    """Everything that defines a linkage model before training."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    comparisons: tuple[ColumnComparison, ...] = Field(min_length=1)
    blocking_rules: tuple[BlockingRule, ...] = Field(min_length=1)
    """Which pairs prediction scores: those equal on every expression of some rule."""
    training_blocking_rules: tuple[BlockingRule, ...] = Field(min_length=1)
    """One EM session each; a column in a rule gets no m estimate from that session."""
    deterministic_rules: tuple[BlockingRule, ...] = Field(min_length=1)
    """Rules that should admit almost no false pairs, for the prior's estimate."""
    deterministic_recall: float = Field(default=0.8, gt=0.0, le=1.0)
    """The share of all true pairs the deterministic rules are assumed to find."""
    prior_match_probability: float = Field(default=1e-4, gt=0.0, lt=1.0)
    """The prior before training replaces it."""
    link_threshold: float = Field(default=0.99, gt=0.0, le=1.0)
    review_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    u_max_pairs: int = Field(default=2_000_000, ge=1_000)
    seed: int = Field(default=42, ge=0)
    em_max_iterations: int = Field(default=25, ge=1)
    em_convergence: float = Field(default=1e-4, gt=0.0)

    @property
    def columns(self) -> tuple[str, ...]:
        """The compared columns, in the order of ``comparisons``."""
        return tuple(spec.column for spec in self.comparisons)

    @property
    def term_frequency_columns(self) -> tuple[str, ...]:
        """Columns whose exact matches are weighted by value frequency."""
        return tuple(spec.column for spec in self.comparisons if spec.term_frequency)

    @model_validator(mode="after")
    def _check(self) -> LinkageSettings:
        if self.review_threshold > self.link_threshold:
            raise ValueError("review_threshold must not exceed link_threshold")
        columns = self.columns
        if len(set(columns)) != len(columns):
            raise ValueError("each column may be compared once")
        for spec in self.comparisons:
            if spec.reversed_with is not None and spec.reversed_with not in columns:
                raise ValueError(f"reversed_with {spec.reversed_with!r} is not compared")
        rules = (*self.blocking_rules, *self.training_blocking_rules, *self.deterministic_rules)
        for rule in rules:
            if not rule:
                raise ValueError("a blocking rule needs at least one expression")
            for expression in rule:
                unknown = set(_NAME_IN_EXPRESSION.findall(expression)) - set(columns)
                if unknown:
                    raise ValueError(
                        f"blocking rule {list(rule)} names {sorted(unknown)}, not compared"
                    )
        return self


def person_settings() -> LinkageSettings:
    """The journeygraph default over the touchpoint frame's person and identifier columns.

    Tuned on generated worlds, whose traps are households (same last name, postcode and
    address; family-plan members share the account and sometimes the email):

    * ``address`` is left out: within a postcode it adds little, and counting it beside
      the postcode gave every household member a second vote for the same fact (link
      precision 0.956 with it, 0.998 without, on 10k customers).
    * ``account``, ``imei`` and ``cookie`` are left out: they are shared by a family plan,
      a handed-down phone or a shop tablet, so agreeing on them says little about the
      person. ``national_id_hash`` is in; where no source has it, it counts for nothing.
    * First names have a nickname level, so a different first name is strong evidence
      against a match; EM is trained on blocks (name, date of birth) where household
      members rarely meet, so they do not pass for duplicates during training.
    * ``link_threshold`` 0.995: a false merge of two family members is worse than a
      missed link, which the review band (from 0.8) still shows.
    """
    name = ColumnRole.NAME
    return LinkageSettings(
        comparisons=(
            ColumnComparison(
                column="first_name",
                role=name,
                term_frequency=True,
                reversed_with="last_name",
                nicknames=True,
            ),
            ColumnComparison(column="last_name", role=name, term_frequency=True),
            ColumnComparison(column="dob", role=ColumnRole.DATE),
            ColumnComparison(column="postcode", role=ColumnRole.POSTCODE),
            ColumnComparison(column="msisdn", role=ColumnRole.IDENTIFIER),
            ColumnComparison(column="email", role=ColumnRole.IDENTIFIER),
            ColumnComparison(column="national_id_hash", role=ColumnRole.IDENTIFIER),
        ),
        blocking_rules=(
            ("dob",),
            ("first_name", "last_name"),
            ("last_name", "postcode"),
            ("first_name", "postcode"),
            ("msisdn",),
            ("email",),
            ("national_id_hash",),
        ),
        training_blocking_rules=(("first_name", "last_name"), ("dob",)),
        deterministic_rules=(("first_name", "last_name", "dob"), ("msisdn",), ("email",)),
        deterministic_recall=0.8,
        link_threshold=0.995,
        review_threshold=0.8,
    )


@dataclass(frozen=True)
class LevelParameters:
    """The trained m and u of one comparison level and the match weight they give."""

    comparison: str
    level: str
    m_probability: float | None
    u_probability: float | None
    match_weight: float | None


@dataclass(frozen=True)
class TrainingReport:
    """What ``ProbabilisticLinker.train`` estimated and how long each stage took."""

    records: int
    link_type: str
    probability_two_random_records_match: float
    parameters: tuple[LevelParameters, ...]
    seconds: dict[str, float]
    """``prior``, ``u``, ``m`` and ``total`` (wall clock)."""
    u_max_pairs: int
    seed: int
    em_blocking_rules: tuple[BlockingRule, ...]
    warnings: tuple[str, ...] = ()
    """Splink's warnings, and the levels training never saw (they count as no evidence)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class TrainedModel:
    """A trained Splink model with the term frequencies it scores with."""

    splink: dict[str, Any]
    """Splink's settings dict with the trained prior, m and u."""
    term_frequencies: dict[str, dict[str, float]]
    created_at: str
    training: dict[str, Any] = field(default_factory=dict)
    """The ``TrainingReport`` as a dict, when the model was trained in this version."""


class ProbabilisticLinker:
    """Trains a Splink model and scores pairs of records with it."""

    def __init__(self, settings: LinkageSettings, model: TrainedModel | None = None) -> None:
        if model is not None:
            _check_model_matches(settings, model)
        self.settings = settings
        self._model = model
        self._known: engine.KnownRecords | None = None

    @property
    def model(self) -> TrainedModel:
        """The trained model; ``InvalidInput`` before ``train`` or ``load``."""
        if self._model is None:
            raise InvalidInput("the linker has no model yet: train it or load a saved one")
        return self._model

    @property
    def is_trained(self) -> bool:
        """Whether a model is present."""
        return self._model is not None

    def train(self, records: pd.DataFrame, right: pd.DataFrame | None = None) -> TrainingReport:
        """Estimate the model without labels on ``records`` (or ``records`` and ``right``
        when the model will link two tables). Replaces any model and forgets the known
        records of ``add_known`` (they were scored with the old model)."""
        started = time.perf_counter()
        tables = [prepare_records(records, self.settings, "training records")]
        link_type: LinkType = "dedupe_only"
        if right is not None:
            tables.append(prepare_records(right, self.settings, "right-hand training records"))
            check_disjoint_ids(tables[0], tables[1], "the two training tables")
            link_type = "link_only"
        trained = engine.train(self.settings, tables, link_type)
        seconds = {**trained.seconds, "total": round(time.perf_counter() - started, 3)}
        report = TrainingReport(
            records=sum(len(table) for table in tables),
            link_type=link_type,
            probability_two_random_records_match=float(
                trained.splink["probability_two_random_records_match"]
            ),
            parameters=_level_parameters(trained.splink),
            seconds=seconds,
            u_max_pairs=self.settings.u_max_pairs,
            seed=self.settings.seed,
            em_blocking_rules=self.settings.training_blocking_rules,
            warnings=trained.warnings,
        )
        self._model = TrainedModel(
            splink=trained.splink,
            term_frequencies=trained.term_frequencies,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            training=report.as_dict(),
        )
        self._forget_known()
        return report

    def save(self, path: Path | str) -> None:
        """Write the settings and trained model as versioned JSON."""
        model = self.model
        document = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "created_at": model.created_at,
            "splink_version": splink.__version__,
            "settings": self.settings.model_dump(mode="json"),
            "splink": model.splink,
            "term_frequencies": model.term_frequencies,
            "training": model.training,
        }
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
        partial.replace(target)

    @classmethod
    def load(cls, path: Path | str) -> ProbabilisticLinker:
        """A linker from a file written by ``save``; ``InvalidInput`` for any other file."""
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidInput(f"cannot read a linkage model from {path}: {error}") from error
        if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
            found = document.get("format") if isinstance(document, dict) else None
            raise InvalidInput(
                f"{path} is not a journeygraph linkage model (format {found!r}, "
                f"expected {MODEL_FORMAT!r})"
            )
        if document.get("version") != MODEL_VERSION:
            raise InvalidInput(
                f"{path} is a version {document.get('version')!r} linkage model; this "
                f"journeygraph reads version {MODEL_VERSION} only (retrain and save again)"
            )
        trained_with = str(document.get("splink_version", ""))
        if trained_with.split(".")[0] != splink.__version__.split(".")[0]:
            raise InvalidInput(
                f"{path} was trained with Splink {trained_with or '(unknown)'}; this "
                f"journeygraph scores with Splink {splink.__version__} (retrain and save again)"
            )
        try:
            settings = LinkageSettings.model_validate(document["settings"])
            model = TrainedModel(
                splink=dict(document["splink"]),
                term_frequencies={
                    str(column): {str(value): float(tf) for value, tf in shares.items()}
                    for column, shares in document["term_frequencies"].items()
                },
                created_at=str(document["created_at"]),
                training=dict(document.get("training") or {}),
            )
        except (KeyError, TypeError, AttributeError, ValueError, ValidationError) as error:
            raise InvalidInput(f"{path} is a damaged linkage model: {error}") from error
        return cls(settings, model)

    def predict(self, records: pd.DataFrame, min_probability: float | None = None) -> pd.DataFrame:
        """Scored pairs within ``records`` (dedupe), at or above ``min_probability``
        (default: the review threshold), with each pair's ``decision``."""
        prepared = prepare_records(records, self.settings)
        pairs = engine.predict(
            self.model.splink,
            self.model.term_frequencies,
            [prepared],
            "dedupe_only",
            self._floor(min_probability),
        )
        return self._finish(_ordered_pairs(pairs))

    def link(
        self, left: pd.DataFrame, right: pd.DataFrame, min_probability: float | None = None
    ) -> pd.DataFrame:
        """Scored pairs across two tables (``unique_id_l`` from ``left``), none within one."""
        tables = [
            prepare_records(left, self.settings, "left records"),
            prepare_records(right, self.settings, "right records"),
        ]
        check_disjoint_ids(tables[0], tables[1], "the left and right records")
        pairs = engine.predict(
            self.model.splink,
            self.model.term_frequencies,
            tables,
            "link_only",
            self._floor(min_probability),
        )
        return self._finish(pairs)

    def cluster(
        self, records: pd.DataFrame, pairs: pd.DataFrame, threshold: float | None = None
    ) -> pd.Series:
        """Cluster id per ``unique_id`` of ``records``: connected components of the pairs
        at or above ``threshold`` (default: the link threshold). A cluster's id is its
        smallest ``unique_id``; a record in no such pair is its own cluster."""
        if UNIQUE_ID not in records.columns:
            raise InvalidInput(f"records lack the column {UNIQUE_ID}")
        missing = [name for name in engine.PAIR_COLUMNS if name not in pairs.columns]
        if missing:
            raise InvalidInput(f"pairs lack the column(s) {', '.join(missing)}")
        cut = self.settings.link_threshold if threshold is None else threshold
        linked = pairs.loc[pairs["match_probability"] >= cut]
        ids = records[UNIQUE_ID].tolist()
        parent = _connected_components(
            ids, zip(linked["unique_id_l"], linked["unique_id_r"], strict=True)
        )
        return pd.Series(
            [parent[uid] for uid in ids], index=pd.Index(ids, name=UNIQUE_ID), name="cluster_id"
        )

    def add_known(self, records: pd.DataFrame) -> None:
        """Append records to the known table that ``predict_incremental`` searches."""
        prepared = prepare_records(records, self.settings, "known records")
        if self._known is None:
            self._known = engine.KnownRecords(
                self.model.splink, self.model.term_frequencies, self.settings
            )
        self._known.add(prepared)

    @property
    def known_count(self) -> int:
        """How many records ``add_known`` holds."""
        return 0 if self._known is None else len(self._known)

    def predict_incremental(
        self,
        new: pd.DataFrame,
        existing: pd.DataFrame | None = None,
        min_probability: float | None = None,
    ) -> pd.DataFrame:
        """Pairs between a micro-batch and the known records, plus pairs within it.

        ``existing``, when given, replaces the known records (once; grow them with
        ``add_known`` afterwards); otherwise the records added so far are searched.
        ``new`` is not added: call ``add_known(new)`` when the next batch should see it.
        Same columns and scores as ``predict`` on the union would give for these pairs.
        """
        floor = self._floor(min_probability)
        if existing is not None:
            self._forget_known()
            self.add_known(existing)
        prepared = prepare_records(new, self.settings, "new records")
        within = engine.predict(
            self.model.splink, self.model.term_frequencies, [prepared], "dedupe_only", floor
        )
        between = (
            engine.empty_pairs() if self._known is None else self._known.search(prepared, floor)
        )
        found = [frame for frame in (between, within) if not frame.empty]
        pairs = _ordered_pairs(pd.concat(found, ignore_index=True)) if found else within
        pairs = pairs.loc[pairs["unique_id_l"] != pairs["unique_id_r"]]
        pairs = pairs.drop_duplicates(["unique_id_l", "unique_id_r"])
        return self._finish(pairs)

    def close(self) -> None:
        """Release the known records' DuckDB connection."""
        self._forget_known()

    def _forget_known(self) -> None:
        if self._known is not None:
            self._known.close()
            self._known = None

    def _floor(self, min_probability: float | None) -> float:
        floor = self.settings.review_threshold if min_probability is None else min_probability
        if not 0.0 <= floor <= 1.0:
            raise InvalidInput(f"min_probability must be in [0, 1], not {floor}")
        return floor

    def _finish(self, pairs: pd.DataFrame) -> pd.DataFrame:
        finished = pairs.sort_values(["unique_id_l", "unique_id_r"], ignore_index=True)
        probability = finished["match_probability"].to_numpy()
        finished["decision"] = np.select(
            [
                probability >= self.settings.link_threshold,
                probability >= self.settings.review_threshold,
            ],
            ["link", "review"],
            default="non_link",
        )
        return finished


def _ordered_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """Each pair with its smaller ``unique_id`` on the left, as Splink's dedupe has it."""
    ordered = pairs.copy()
    swap = (ordered["unique_id_l"] > ordered["unique_id_r"]).to_numpy()
    ordered.loc[swap, ["unique_id_l", "unique_id_r"]] = ordered.loc[
        swap, ["unique_id_r", "unique_id_l"]
    ].to_numpy()
    return ordered


def _connected_components(ids: list[Any], edges: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    """Union-find; every id maps to the smallest id of its component."""
    parent = {uid: uid for uid in ids}

    def root(uid: Any) -> Any:
        while parent[uid] != uid:
            parent[uid] = parent[parent[uid]]
            uid = parent[uid]
        return uid

    for left, right in edges:
        if left not in parent or right not in parent:
            raise InvalidInput("pairs name a unique_id that is not among the records")
        a, b = root(left), root(right)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {uid: root(uid) for uid in ids}


def _level_parameters(model: dict[str, Any]) -> tuple[LevelParameters, ...]:
    levels = []
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            weight = None
            if m is not None and u is not None and m > 0 and u > 0:
                weight = round(math.log2(m / u), 3)
            levels.append(
                LevelParameters(
                    comparison=comparison["output_column_name"],
                    level=level["label_for_charts"],
                    m_probability=m,
                    u_probability=u,
                    match_weight=weight,
                )
            )
    return tuple(levels)


def _check_model_matches(settings: LinkageSettings, model: TrainedModel) -> None:
    try:
        compared = tuple(c["output_column_name"] for c in model.splink["comparisons"])
    except (KeyError, TypeError) as error:
        raise InvalidInput(f"the Splink model has no comparisons: {error}") from error
    if compared != settings.columns:
        raise InvalidInput(
            "the model compares other columns than the settings",
            details={"model": list(compared), "settings": list(settings.columns)},
        )
