"""``LinkageSettings`` translated into Splink 4 comparisons, blocking rules and settings.

Each column role becomes one Splink comparison whose levels run from the most to the
least specific agreement (Splink takes the first level whose condition holds), always
with a null level first (a missing value is no evidence either way) and an else level
last. Column names were checked to be plain identifiers, so they can go into SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on

from ingest.resolution._splink_prepare import nickname_column

if TYPE_CHECKING:
    from ingest.resolution.probabilistic import BlockingRule, ColumnComparison, LinkageSettings

LinkType = Literal["dedupe_only", "link_only"]


def splink_settings(settings: LinkageSettings, link_type: LinkType) -> dict[str, Any]:
    """An untrained Splink settings dictionary for ``settings`` (DuckDB dialect)."""
    creator = SettingsCreator(
        link_type=link_type,
        unique_id_column_name="unique_id",
        comparisons=[_comparison(spec) for spec in settings.comparisons],
        blocking_rules_to_generate_predictions=[
            blocking_rule(rule) for rule in settings.blocking_rules
        ],
        probability_two_random_records_match=settings.prior_match_probability,
        em_convergence=settings.em_convergence,
        max_iterations=settings.em_max_iterations,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )
    built: Any = creator.get_settings("duckdb")
    result: dict[str, Any] = built.as_dict()
    return result


def blocking_rule(rule: BlockingRule) -> Any:
    """A Splink blocking rule: every expression equal on both sides of a pair."""
    return block_on(*rule)


def _comparison(spec: ColumnComparison) -> Any:
    column = spec.column
    levels: list[Any] = [cll.NullLevel(column)]
    levels.append(cll.ExactMatchLevel(column, term_frequency_adjustments=spec.term_frequency))
    role = spec.role.value
    if role == "name":
        if spec.reversed_with is not None:
            levels.append(_reversed_level(column, spec.reversed_with, spec.similarity_thresholds))
        if spec.nicknames:
            levels.append(_nickname_level(column))
        levels.extend(cll.JaroWinklerLevel(column, t) for t in spec.similarity_thresholds)
    elif role == "date":
        levels.append(_day_month_swapped_level(column))
        if spec.typo_level:
            levels.append(cll.DamerauLevenshteinLevel(column, 1))
        levels.append(
            cll.AbsoluteDateDifferenceLevel(
                column, input_is_string=True, threshold=365, metric="day"
            )
        )
    elif role == "postcode":
        levels.append(_prefix_level(column, drop=2, label="sector"))
        levels.append(_prefix_level(column, drop=3, label="district"))
    elif role == "address":
        levels.extend(cll.JaroWinklerLevel(column, t) for t in spec.similarity_thresholds)
    elif spec.typo_level:  # identifier
        levels.append(cll.DamerauLevenshteinLevel(column, 1))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(
        comparison_levels=levels,
        output_column_name=column,
        comparison_description=f"{column} ({role})",
    )


def _reversed_level(column: str, other: str, thresholds: tuple[float, ...]) -> Any:
    """Both names swapped between the records, each still as close as the highest
    Jaro-Winkler level (a swap and a typo together are common in typed names)."""
    threshold = thresholds[0] if thresholds else 1.0
    sql = (
        f'jaro_winkler_similarity("{column}_l", "{other}_r") >= {threshold}'
        f' AND jaro_winkler_similarity("{other}_l", "{column}_r") >= {threshold}'
    )
    return cll.CustomLevel(sql, label_for_charts=f"{column} and {other} reversed")


def _nickname_level(column: str) -> Any:
    groups = nickname_column(column)
    sql = f"list_has_any(string_split(\"{groups}_l\", '|'), string_split(\"{groups}_r\", '|'))"
    return cll.CustomLevel(sql, label_for_charts=f"{column} nicknames of one name")


def _day_month_swapped_level(column: str) -> Any:
    left, right = f'"{column}_l"', f'"{column}_r"'
    sql = (
        f"substr({left}, 1, 4) = substr({right}, 1, 4)"
        f" AND substr({left}, 6, 2) = substr({right}, 9, 2)"
        f" AND substr({left}, 9, 2) = substr({right}, 6, 2)"
    )
    return cll.CustomLevel(sql, label_for_charts=f"{column} day and month swapped")


def _prefix_level(column: str, drop: int, label: str) -> Any:
    """Postcodes (spaces removed) equal but for their last ``drop`` characters: the UK
    inward code is three characters, so dropping 2 leaves the sector, 3 the district."""
    left, right = f'"{column}_l"', f'"{column}_r"'
    sql = (
        f"length({left}) > {drop} AND length({right}) > {drop}"
        f" AND left({left}, length({left}) - {drop}) = left({right}, length({right}) - {drop})"
    )
    return cll.CustomLevel(sql, label_for_charts=f"{column} {label}")
