"""Linking person records without a usable ID to golden persons (Splink 5, DuckDB backend).

Candidates are compared with the reference in Splink's link_only mode, blocked on equal
birth date, name or address. Parameters are not fitted with EM (unstable on a few hundred
rows): every m probability is set by hand (``_levels``), and u probabilities are estimated
by random sampling of pairs *within the reference*: golden persons are distinct, so every
such pair is a true non-match and the estimate does not depend on how few candidates there
are. Each sampled u is floored at a population value, so a level never seen in a small
sample (two references never share a birth date) cannot carry an unbounded weight; with no
sample at all the floors are used. The prior is 1 / (population + 1): a candidate is one
of the golden persons or nobody.

A large population need not be handed over whole: blocking pairs a candidate only with the
persons sharing one of its ``BLOCKING`` values (``blocking_values``), and u needs only a
random sample. The caller passes those persons as the reference, a sample of the population
for u, and the population's size for the prior; the pairs and their scores are those of the
whole population, up to the sample's randomness.

DuckDB's levenshtein and jaro_winkler work on UTF-8 bytes (one Chinese character is three),
so a one-character difference in a name is its own level, counted per character.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import splink.comparison_level_library as cll
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink.comparison_library import CustomComparison

if TYPE_CHECKING:
    from splink.internals.comparison_creator import ComparisonCreator
    from splink.internals.comparison_level_creator import ComparisonLevelCreator
    from splink.internals.splink_dataframe import SplinkDataFrame

FIELDS = ["name", "gender", "birth_date", "division_code", "address"]
#: A pair is scored only if the two agree exactly on one of these.
BLOCKING = ("birth_date", "name", "address")
Decision = Literal["linked", "review", "unmatched"]
DECISIONS: tuple[Decision, ...] = ("linked", "review", "unmatched")
LINK_COLUMNS = ["record_id", "person_id", "match_probability", "decision", "candidate_id"]

# Enough pairs to resolve u to about 1e-6 on a large reference, still fast on DuckDB.
_U_MAX_PAIRS = 2e6
_U_SEED = 42

# Same length and exactly one character differs (桂花 / 贵花), compared per character.
_ONE_CHARACTER_APART = (
    "length(name_l) = length(name_r) AND length(list_filter("
    "list_zip(string_split(name_l, ''), string_split(name_r, '')), "
    "lambda p: p[1] <> p[2])) = 1"
)


@dataclass(frozen=True)
class _Level:
    """One comparison level: its Splink creator, m, and the floor of its u (None: else)."""

    creator: ComparisonLevelCreator
    m: float
    u_floor: float | None


def _null(column: str) -> _Level:
    return _Level(cll.NullLevel(column), 0.0, None)


def _levels() -> dict[str, list[_Level]]:
    """Fresh level creators per call (Splink's ``configure`` mutates them).

    m: share of true matches at each level, given that these fields are typed by hand.
    u floor: the least chance that two different people agree at that level in a real
    population (Chinese names are short and concentrated; one birth date in ~30 years).
    The floors cap name agreement at ~10 bits and birth date at ~13, and a typed gender is
    rarely wrong (m 0.002 for a mismatch, -8 bits): same name and birth date alone cannot
    auto-link a person of the other gender living elsewhere.
    """
    return {
        "name": [
            _null("name"),
            _Level(cll.ExactMatchLevel("name"), 0.88, 1e-3),
            _Level(cll.CustomLevel(_ONE_CHARACTER_APART, "One character apart"), 0.08, 1e-3),
            # On bytes: a character dropped or added in a 3-4 character name.
            _Level(cll.JaroWinklerLevel("name", 0.88), 0.03, 1e-3),
            _Level(cll.ElseLevel(), 0.01, None),
        ],
        "birth_date": [
            _null("birth_date"),
            _Level(cll.ExactMatchLevel("birth_date"), 0.93, 1e-4),
            _Level(
                cll.Or(
                    cll.DamerauLevenshteinLevel("birth_date", 1),
                    cll.AbsoluteDateDifferenceLevel(
                        "birth_date", input_is_string=True, threshold=31, metric="day"
                    ),
                ).configure(label_for_charts="One keystroke or at most 31 days apart"),
                0.05,
                1e-3,
            ),
            _Level(cll.ElseLevel(), 0.02, None),
        ],
        "gender": [
            _null("gender"),
            _Level(cll.ExactMatchLevel("gender"), 0.998, 0.3),
            _Level(cll.ElseLevel(), 0.002, None),
        ],
        "division_code": [
            _null("division_code"),
            _Level(cll.ExactMatchLevel("division_code"), 0.80, 1e-3),
            _Level(cll.ElseLevel(), 0.20, None),
        ],
        "address": [
            _null("address"),
            _Level(cll.ExactMatchLevel("address"), 0.55, 1e-4),
            # Three bytes: one Chinese character or up to three digits of a house number.
            _Level(cll.LevenshteinLevel("address", 3), 0.20, 1e-3),
            _Level(cll.JaroWinklerLevel("address", 0.9), 0.10, 1e-2),
            _Level(cll.ElseLevel(), 0.15, None),
        ],
    }


@dataclass(frozen=True)
class LinkageResult:
    #: record_id, person_id (when linked), match_probability, decision, and candidate_id:
    #: the best-scoring person whatever the decision, for a reviewer to confirm or not.
    links: pd.DataFrame
    counts: dict[str, int]  # candidates, linked, review, unmatched


def _settings(
    levels: dict[str, list[_Level]],
    link_type: Literal["link_only", "dedupe_only"],
    prior: float,
) -> SettingsCreator:
    comparisons: list[ComparisonCreator | dict[str, Any]] = [
        CustomComparison(
            [
                level.creator
                if level.creator.is_null_level
                else level.creator.configure(m_probability=level.m)
                for level in column_levels
            ],
            output_column_name=column,
        )
        for column, column_levels in levels.items()
    ]
    return SettingsCreator(
        link_type=link_type,
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[block_on(column) for column in BLOCKING],
        probability_two_random_records_match=prior,
        retain_matching_columns=False,
    )


def _table(frame: pd.DataFrame | pa.Table, id_column: str) -> pa.Table:
    """Splink's input: unique_id plus the compared fields, all strings, None for blanks."""
    if isinstance(frame, pa.Table):
        # Column by column in Arrow: a reference of ten million persons never becomes Python
        # objects (as pandas it took over 12 GB and the build was killed).
        arrays = {"unique_id": frame[id_column]} | {field: frame[field] for field in FIELDS}
        columns = {name: _stripped(array) for name, array in arrays.items()}
        return pa.table(columns, schema=pa.schema([(c, pa.string()) for c in columns]))
    lists: dict[str, list[str | None]] = {"unique_id": _strings(frame[id_column])}
    for field in FIELDS:
        lists[field] = _strings(frame[field])
    return pa.table(lists, schema=pa.schema([(c, pa.string()) for c in lists]))


def _stripped(array: pa.ChunkedArray) -> pa.ChunkedArray:
    """As ``_strings``, in Arrow: text, trimmed, None for blank."""
    text = pc.utf8_trim_whitespace(pc.cast(array, pa.string()))
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _check(frame: pd.DataFrame | pa.Table, id_column: str, what: str) -> None:
    names = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
    missing = [c for c in [id_column, *FIELDS] if c not in names]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")
    if isinstance(frame, pa.Table):
        ids = pc.cast(frame[id_column], pa.string())
        if ids.null_count or pc.count_distinct(ids).as_py() != len(ids):
            raise ValueError(f"{what} {id_column} values must be present and unique")
        return
    ids = frame[id_column]
    if ids.isna().any() or ids.astype(str).duplicated().any():
        raise ValueError(f"{what} {id_column} values must be present and unique")


def _strings(values: pd.Series) -> list[str | None]:
    out: list[str | None] = []
    for value in values.tolist():
        text = None if value is None or pd.isna(value) else str(value).strip()
        out.append(text or None)
    return out


def _model(
    sample: SplinkDataFrame, rows: int, levels: dict[str, list[_Level]], population: int
) -> dict[str, Any]:
    """The link_only model: hand-set m, u sampled within ``sample`` (``rows`` persons) and
    floored, the prior one in ``population`` + 1."""
    prior = 1.0 / (population + 1)
    linker = Linker(sample, _settings(levels, "dedupe_only", prior), log_level=None)
    if rows >= 2:
        linker.training.estimate_u_using_random_sampling(
            max_pairs=_U_MAX_PAIRS, seed=_U_SEED, min_count_per_level=None, num_chunks=1
        )
    model = linker.misc.save_model_to_json()
    for comparison, column_levels in zip(model["comparisons"], levels.values(), strict=True):
        dict_levels = comparison["comparison_levels"]
        assert len(dict_levels) == len(column_levels)
        floors = [level.u_floor for level in column_levels if level.u_floor is not None]
        for dict_level, level in zip(dict_levels, column_levels, strict=True):
            if dict_level.get("is_null_level"):
                continue
            sampled = dict_level.get("u_probability")
            if not isinstance(sampled, float | int) or rows < 2:
                sampled = None
            if level.u_floor is None:  # else level: what the agreement levels leave over
                u = sampled if sampled is not None else 1.0 - sum(floors)
            else:
                u = max(sampled or 0.0, level.u_floor)
            dict_level["u_probability"] = u
    model["link_type"] = "link_only"
    return model


def _no_pairs() -> pd.DataFrame:
    return pd.DataFrame(columns=["record_id", "person_id", "match_weight", "probability"])


def _empty_links() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_id": pd.Series([], dtype=object),
            "person_id": pd.Series([], dtype=object),
            "match_probability": pd.Series([], dtype=object),
            "decision": pd.Series([], dtype=object),
            "candidate_id": pd.Series([], dtype=object),
        }
    )


def _count(links: pd.DataFrame) -> dict[str, int]:
    counts = {"candidates": len(links)}
    for decision in DECISIONS:
        counts[decision] = int((links["decision"] == decision).sum())
    assert counts["linked"] + counts["review"] + counts["unmatched"] == counts["candidates"]
    return counts


def _pairs(
    candidates: pa.Table,
    reference: pa.Table,
    sample: pa.Table | None = None,
    population: int | None = None,
) -> pd.DataFrame:
    """Scored candidate/reference pairs: record_id, person_id, match_weight, probability.

    u is estimated within ``sample`` (default: the reference), the prior is one in
    ``population`` (default: the reference's size). Only each candidate's two best pairs (by
    weight, then person ID) leave DuckDB: the decision reads no more, and a large reference
    blocks tens of millions of pairs.
    """
    logging.getLogger("splink").setLevel(logging.WARNING)
    sample = reference if sample is None else sample
    db = DuckDBAPI()  # in-memory, this call's own
    try:
        cand = db.register(candidates, table_name="candidates")
        ref = db.register(reference, table_name="reference")
        pool = ref if sample is reference else db.register(sample, table_name="sample")
        size = reference.num_rows if population is None else population
        model = _model(pool, sample.num_rows, _levels(), size)
        linker = Linker([cand, ref], model, log_level=None)
        scored = linker.inference.predict().physical_name
        best = db.duckdb_con.execute(
            f"""
            SELECT record_id, person_id, match_weight, probability FROM (
              SELECT *, row_number() OVER (
                PARTITION BY record_id ORDER BY match_weight DESC, person_id) AS _rank
              FROM (
                SELECT
                  CASE WHEN source_dataset_l = 'candidates' THEN unique_id_l
                       ELSE unique_id_r END AS record_id,
                  CASE WHEN source_dataset_l = 'candidates' THEN unique_id_r
                       ELSE unique_id_l END AS person_id,
                  CAST(match_weight AS DOUBLE) AS match_weight,
                  CAST(match_probability AS DOUBLE) AS probability
                FROM {scored}))
            WHERE _rank <= 2
            """
        ).df()
    finally:
        db.duckdb_con.close()
    if best.empty:
        return _no_pairs()
    return best


def blocking_values(candidates: pd.DataFrame) -> dict[str, list[str]]:
    """Per ``BLOCKING`` column, the candidates' values (as compared: stripped, no blanks).

    The golden persons with one of these values are the only ones blocking can pair with a
    candidate: a reference of just those gives the pairs of the whole population.
    """
    return {
        column: sorted({v for v in _strings(candidates[column]) if v is not None})
        for column in BLOCKING
    }


def link_records(
    candidates: pd.DataFrame,
    reference: pd.DataFrame | pa.Table,
    *,
    sample: pd.DataFrame | pa.Table | None = None,
    population: int | None = None,
    accept: float = 0.99,
    review: float = 0.80,
) -> LinkageResult:
    """Link each candidate to its best golden person, send close calls to review.

    ``reference``: the golden persons, or at least those sharing a ``blocking_values``
    value with a candidate; then ``sample`` is a random sample of all of them (for u) and
    ``population`` their number (for the prior). Linked: best probability >= ``accept`` and
    no other person reaches ``review`` (two plausible persons are a question for a human).
    Review: best >= ``review``. Otherwise, and when blocking found no pair at all, unmatched.
    """
    if not 0.0 < review <= accept <= 1.0:
        raise ValueError(f"need 0 < review <= accept <= 1, got {review=} {accept=}")
    _check(candidates, "record_id", "candidates")
    _check(reference, "person_id", "reference")
    if sample is not None:
        _check(sample, "person_id", "sample")
    if candidates.empty:
        links = _empty_links()
        return LinkageResult(links, _count(links))

    record_ids = [str(r) for r in candidates["record_id"].tolist()]
    if len(reference) == 0:
        pairs = _no_pairs()
    else:
        pool = None if sample is None else _table(sample, "person_id")
        pairs = _pairs(
            _table(candidates, "record_id"), _table(reference, "person_id"), pool, population
        )

    rows: list[tuple[str, str | None, float | None, Decision, str | None]] = []
    ranked = pairs.sort_values(
        ["record_id", "match_weight", "person_id"], ascending=[True, False, True]
    )
    by_record = {str(key): group for key, group in ranked.groupby("record_id", sort=False)}
    for record_id in record_ids:
        group = by_record.get(record_id)
        if group is None or group.empty:
            rows.append((record_id, None, None, "unmatched", None))
            continue
        best = float(group["probability"].iloc[0])
        runner_up = float(group["probability"].iloc[1]) if len(group) > 1 else 0.0
        candidate = str(group["person_id"].iloc[0])
        if best >= accept and runner_up < review:
            rows.append((record_id, candidate, best, "linked", candidate))
        elif best >= review:
            rows.append((record_id, None, best, "review", candidate))
        else:
            rows.append((record_id, None, best, "unmatched", candidate))
    links = pd.DataFrame(rows, columns=LINK_COLUMNS)
    links = links.astype(object).where(links.notna(), None)
    return LinkageResult(links, _count(links))
