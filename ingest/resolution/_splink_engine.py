"""Splink on DuckDB: training, scoring, and the growing table of known records.

The only module that touches Splink's ``Linker``; everything it hands back is a plain
pandas frame or dict, so ``Any`` stays behind this boundary. Every scoring path
registers the model's frozen term-frequency lookups instead of letting Splink count
values in whatever table it is given: a name's weight must not depend on which
micro-batch it arrived in, or incremental and batch scores would differ.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import duckdb
import pandas as pd
from splink import DuckDBAPI, Linker

from graph.errors import InvalidInput
from ingest.resolution._splink_comparisons import LinkType, blocking_rule, splink_settings
from ingest.resolution._splink_prepare import UNIQUE_ID

if TYPE_CHECKING:
    from ingest.resolution.probabilistic import LinkageSettings

# Splink announces every step at INFO; the CLI's own progress is what users should see.
logging.getLogger("splink").setLevel(logging.WARNING)

PAIR_COLUMNS: Final = ("unique_id_l", "unique_id_r", "match_probability", "match_weight")
TermFrequencies = dict[str, dict[str, float]]
"""Per column, the share of non-null values that equal each value (Splink's ``tf_``)."""

_KNOWN_TABLE: Final = "jg_known_records"
# Splink filters on match weight; the SQL prefilter is a little looser than the
# probability asked for so that rounding never drops a pair the final filter keeps.
_WEIGHT_SLACK: Final = 1e-6


@dataclass(frozen=True)
class TrainedParameters:
    """What training produced: Splink's trained settings and the stages' timings."""

    splink: dict[str, Any]
    term_frequencies: TermFrequencies
    seconds: dict[str, float]
    warnings: tuple[str, ...]


def term_frequencies(records: pd.DataFrame, columns: Sequence[str]) -> TermFrequencies:
    """Term frequencies of ``columns`` in prepared ``records`` (values sorted)."""
    lookups: TermFrequencies = {}
    for column in columns:
        shares = records[column].dropna().value_counts(normalize=True).sort_index()
        lookups[column] = {str(value): float(share) for value, share in shares.items()}
    return lookups


def train(
    settings: LinkageSettings, tables: Sequence[pd.DataFrame], link_type: LinkType
) -> TrainedParameters:
    """Estimate the prior, u by seeded random sampling and m by EM over each training
    blocking rule, on prepared ``tables`` (one to deduplicate, two to link)."""
    frames = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    lookups = term_frequencies(frames, settings.term_frequency_columns)
    seconds: dict[str, float] = {}
    with _collected_warnings() as warnings, _session() as database:
        linker = _linker(database, list(tables), splink_settings(settings, link_type), lookups)
        started = time.perf_counter()
        linker.training.estimate_probability_two_random_records_match(
            [blocking_rule(rule) for rule in settings.deterministic_rules],
            recall=settings.deterministic_recall,
        )
        seconds["prior"] = _since(started)
        started = time.perf_counter()
        linker.training.estimate_u_using_random_sampling(
            max_pairs=settings.u_max_pairs, seed=settings.seed
        )
        seconds["u"] = _since(started)
        started = time.perf_counter()
        for rule in settings.training_blocking_rules:
            linker.training.estimate_parameters_using_expectation_maximisation(blocking_rule(rule))
        seconds["m"] = _since(started)
        trained: dict[str, Any] = linker.misc.save_model_to_json()
    # Splink's random per-linker id would make two trainings on the same data differ.
    trained.pop("linker_uid", None)
    notes = _neutralise_untrained_levels(trained)
    _round_parameters(trained)
    messages = [" ".join(text.replace("WARNING:", " ").split()) for text in warnings]
    return TrainedParameters(trained, lookups, seconds, tuple(dict.fromkeys(messages + notes)))


def predict(
    model: Mapping[str, Any],
    lookups: TermFrequencies,
    tables: Sequence[pd.DataFrame],
    link_type: LinkType,
    min_probability: float,
) -> pd.DataFrame:
    """Scored pairs at or above ``min_probability`` among prepared ``tables``."""
    with _session() as database:
        linker = _linker(database, list(tables), _with_link_type(model, link_type), lookups)
        scored = linker.inference.predict(threshold_match_weight=_weight_floor(min_probability))
        return _pairs(scored, min_probability)


class KnownRecords:
    """Known records kept in one DuckDB table, scored against micro-batches.

    The table already carries the term-frequency columns and is registered as Splink's
    ``__splink__df_concat_with_tf``, so Splink never copies it: appending rows is an
    ``INSERT`` and every later search sees them.
    """

    def __init__(
        self, model: Mapping[str, Any], lookups: TermFrequencies, settings: LinkageSettings
    ) -> None:
        self._lookups = lookups
        self._rules = [blocking_rule(rule) for rule in settings.blocking_rules]
        self._connection = duckdb.connect()
        self._database = DuckDBAPI(connection=self._connection)
        self._created = False
        self._model = _with_link_type(model, "dedupe_only")
        self._linker: Any = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, prepared: pd.DataFrame) -> None:
        """Append prepared records; ``InvalidInput`` when a ``unique_id`` is known already."""
        if prepared.empty:
            return
        with_tf = _with_term_frequencies(prepared, self._lookups)
        self._connection.register("jg_incoming", with_tf)
        try:
            if not self._created:
                self._create_table(prepared)
            self._connection.execute(
                f"INSERT INTO {_KNOWN_TABLE} BY NAME SELECT * FROM jg_incoming"
            )
        except duckdb.ConstraintException as error:
            raise InvalidInput(
                "some records are known already (unique_id repeats)",
                details={"error": str(error).splitlines()[0]},
            ) from error
        except duckdb.ConversionException as error:
            raise InvalidInput(
                "these records' unique_id type differs from the known records'",
                details={"error": str(error).splitlines()[0]},
            ) from error
        finally:
            self._connection.unregister("jg_incoming")
        self._count += len(prepared)

    def search(self, prepared: pd.DataFrame, min_probability: float) -> pd.DataFrame:
        """Pairs between ``prepared`` (new records) and the known ones, known on the left."""
        if not self._created or prepared.empty:
            return empty_pairs()
        if self._linker is None:
            self._linker = _linker(self._database, _KNOWN_TABLE, self._model, self._lookups)
            self._linker.table_management.register_table_input_nodes_concat_with_tf(_KNOWN_TABLE)
        scored = self._linker.inference.find_matches_to_new_records(
            prepared,
            blocking_rules=self._rules,
            match_weight_threshold=_weight_floor(min_probability),
        )
        return _pairs(scored, min_probability)

    def close(self) -> None:
        """Release the DuckDB connection."""
        self._connection.close()

    def _create_table(self, prepared: pd.DataFrame) -> None:
        integer_ids = pd.api.types.is_integer_dtype(prepared[UNIQUE_ID].dtype)
        id_type = "BIGINT" if integer_ids else "VARCHAR"
        columns = [f'"{UNIQUE_ID}" {id_type} PRIMARY KEY']
        columns += [f'"{name}" VARCHAR' for name in prepared.columns if name != UNIQUE_ID]
        columns += [f'"tf_{name}" DOUBLE' for name in self._lookups]
        self._connection.execute(f"CREATE TABLE {_KNOWN_TABLE} ({', '.join(columns)})")
        self._created = True


def empty_pairs() -> pd.DataFrame:
    """A pair frame with no rows."""
    return pd.DataFrame(
        {
            "unique_id_l": pd.Series(dtype=object),
            "unique_id_r": pd.Series(dtype=object),
            "match_probability": pd.Series(dtype=float),
            "match_weight": pd.Series(dtype=float),
        }
    )


def _linker(
    database: Any,
    tables: Any,
    model: Mapping[str, Any],
    lookups: TermFrequencies,
) -> Any:
    linker: Any = Linker(tables, dict(model), db_api=database, set_up_basic_logging=False)
    for column, shares in lookups.items():
        linker.table_management.register_term_frequency_lookup(
            pd.DataFrame(
                {column: list(shares), f"tf_{column}": list(shares.values())},
            ),
            column,
            overwrite=True,
        )
    return linker


def _neutralise_untrained_levels(model: dict[str, Any]) -> list[str]:
    """Give a level that training never saw (no m, or no u) a match weight of zero.

    Splink would score it with generic defaults instead; a level with no evidence about
    it should move a pair neither way. Returns a note per level changed.
    """
    notes = []
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            if m is not None and u is not None:
                continue
            neutral = m if m is not None else u if u is not None else 1.0
            level["m_probability"] = level["u_probability"] = neutral
            notes.append(
                f"{comparison['output_column_name']}: level {level['label_for_charts']!r} "
                "was not seen in training; it counts as no evidence"
            )
    return notes


def _round_parameters(model: dict[str, Any]) -> None:
    """Round the prior, m and u to 12 significant digits.

    DuckDB sums in parallel, so the last bits of EM's estimates depend on thread timing;
    rounding makes the same data and seed give the same model file.
    """
    model["probability_two_random_records_match"] = _significant(
        model["probability_two_random_records_match"]
    )
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            for key in ("m_probability", "u_probability"):
                if level.get(key) is not None:
                    level[key] = _significant(level[key])


def _significant(value: float) -> float:
    return float(f"{value:.12g}")


def _with_link_type(model: Mapping[str, Any], link_type: LinkType) -> dict[str, Any]:
    return {**model, "link_type": link_type}


def _with_term_frequencies(prepared: pd.DataFrame, lookups: TermFrequencies) -> pd.DataFrame:
    with_tf = prepared.copy()
    for column, shares in lookups.items():
        with_tf[f"tf_{column}"] = prepared[column].map(shares).astype(float)
    return with_tf


def _pairs(scored: Any, min_probability: float) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = scored.as_pandas_dataframe()
    finally:
        scored.drop_table_from_database_and_remove_from_cache()
    if frame.empty:
        return empty_pairs()
    frame = frame.loc[frame["match_probability"] >= min_probability, list(PAIR_COLUMNS)]
    return frame.reset_index(drop=True)


def _weight_floor(probability: float) -> float:
    if probability <= 0.0:
        return -1e9
    if probability >= 1.0:
        return 1e9
    return math.log2(probability / (1.0 - probability)) - _WEIGHT_SLACK


@contextmanager
def _session() -> Iterator[Any]:
    connection = duckdb.connect()
    try:
        yield DuckDBAPI(connection=connection)
    finally:
        connection.close()


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _collected_warnings() -> Iterator[list[str]]:
    """Splink's warnings kept as messages instead of printed (the report carries them)."""
    splink_logger = logging.getLogger("splink")
    collector = _WarningCollector()
    splink_logger.addHandler(collector)
    propagate = splink_logger.propagate
    splink_logger.propagate = False
    try:
        yield collector.messages
    finally:
        splink_logger.propagate = propagate
        splink_logger.removeHandler(collector)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
