"""Facts derived from a row before validation, so a business rule is one GX expectation.

A business rule compares a column with something another column implies: the birth date a
citizen ID carries, the gender its sequence digit gives, the days a penalty is public, the
day a division code was retired. Each is a Spark built-in expression added as a column;
Great Expectations then compares the columns and counts and lists the failing rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from datong.reference import load_divisions

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from quality.checks import Derived


@cache
def retired_codes() -> dict[str, str]:
    """Division code → the day it stopped being valid (ISO), for retired codes only."""
    return {d.code: d.valid_to.isoformat() for d in load_divisions() if d.valid_to is not None}


def id_birth_date(citizen_id: Column) -> Column:
    """The birth date in a GB 11643 number (digits 7–14); null when it is not a date."""
    from pyspark.sql import functions as F

    return F.try_to_date(F.substring(citizen_id, 7, 8), "yyyyMMdd")


def id_gender(citizen_id: Column, gender: Column) -> Column:
    """GB/T 2261.1 code of the ID's sequence digit (odd 1, even 2), where ``gender`` is 1 or 2.

    Codes 0 (unknown) and 9 (not stated) say nothing to compare, so they give null.
    """
    from pyspark.sql import functions as F

    digit = F.substring(citizen_id, 17, 1).try_cast("int")
    parity = F.when(digit % 2 == 1, F.lit("1")).when(digit.isNotNull(), F.lit("2"))
    return F.when(gender.isin("1", "2"), parity)


def days_between(start: Column, end: Column) -> Column:
    from pyspark.sql import functions as F

    return F.datediff(end, start)


def retired_on(code: Column, record_date: Column, date_type: str) -> Column:
    """The day ``code`` was retired (null while current), typed like the record's date."""
    from pyspark.sql import functions as F

    codes = retired_codes()
    if not codes:
        return F.lit(None).cast(date_type)
    mapping = F.create_map(*[F.lit(x) for pair in sorted(codes.items()) for x in pair])
    return F.element_at(mapping, code).cast("date").cast(date_type)


def with_facts(frame: DataFrame, derived: Iterable[Derived]) -> DataFrame:
    """``frame`` with every derived column the checks read (each once)."""
    from pyspark.sql import functions as F

    types = dict(frame.dtypes)
    columns: dict[str, Column] = {}
    for fact in derived:
        if fact.name in types:  # derived already (a caller that materialised the frame)
            continue
        sources = [F.col(name) for name in fact.sources]
        if fact.kind == "id_birth_date":
            columns[fact.name] = id_birth_date(sources[0])
        elif fact.kind == "id_gender":
            columns[fact.name] = id_gender(sources[0], sources[1])
        elif fact.kind == "days_between":
            columns[fact.name] = days_between(sources[0], sources[1])
        elif fact.kind == "retired_on":
            columns[fact.name] = retired_on(sources[0], sources[1], types[fact.sources[1]])
        else:
            raise ValueError(f"no derivation for {fact.kind}")
    if not columns:
        return frame
    return frame.select("*", *(value.alias(name) for name, value in columns.items()))
