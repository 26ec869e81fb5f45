"""Writes run side by side (``tables.together``) and the MERGE sources they share a conf for."""

from __future__ import annotations

import threading

import pytest

from datong import tables
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path, s3_test_settings):
    return make_settings(tmp_path, "file", s3_test_settings)


def _merge(spark, settings, name: str, rows: list[tuple[str, int]]) -> None:
    from delta.tables import DeltaTable

    from datong.storage import spark_location

    frame = spark.createDataFrame(rows, "k string, v int")
    with tables.merge_source(spark, frame, few=True) as source:
        (
            DeltaTable.forPath(spark, spark_location(settings, name))
            .alias("t")
            .merge(source.alias("s"), "t.k = s.k")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )


def _rows(spark, settings, name: str) -> list[tuple[str, int]]:
    return sorted((r["k"], r["v"]) for r in tables.read(spark, settings, name).collect())


def test_merges_run_together_each_commit_theirs_and_restore_the_conf(spark, settings):
    for name in ("ops.together_a", "ops.together_b"):
        tables.append(spark.createDataFrame([("x", 1)], "k string, v int"), settings, name)
    spark.conf.set(tables.MATERIALIZE_SOURCE, "auto")
    seen: dict[str, str | None] = {}
    both_inside = threading.Barrier(2, timeout=120)
    first_left = threading.Event()

    def write(name: str, rows: list[tuple[str, int]], leaves_first: bool):  # type: ignore[no-untyped-def]
        def run() -> str:
            frame = spark.createDataFrame(rows, "k string, v int")
            with tables.merge_source(spark, frame, few=True):
                both_inside.wait()
                if leaves_first:
                    seen[name] = spark.conf.get(tables.MATERIALIZE_SOURCE)
                else:
                    # The other MERGE has finished: Delta's copy must still be off for this one.
                    first_left.wait(timeout=120)
                    seen[name] = spark.conf.get(tables.MATERIALIZE_SOURCE)
            if leaves_first:
                first_left.set()
            _merge(spark, settings, name, rows)
            return name

        return run

    done = tables.together(
        spark,
        write("ops.together_a", [("x", 2), ("y", 3)], leaves_first=True),
        write("ops.together_b", [("z", 4)], leaves_first=False),
    )

    assert done == ["ops.together_a", "ops.together_b"]
    assert seen == {"ops.together_a": "none", "ops.together_b": "none"}
    assert spark.conf.get(tables.MATERIALIZE_SOURCE) == "auto"
    assert _rows(spark, settings, "ops.together_a") == [("x", 2), ("y", 3)]
    assert _rows(spark, settings, "ops.together_b") == [("x", 1), ("z", 4)]
    spark.conf.unset(tables.MATERIALIZE_SOURCE)


def test_a_failed_write_is_raised_after_the_others_have_committed(spark, settings):
    tables.append(spark.createDataFrame([("x", 1)], "k string, v int"), settings, "ops.fine")
    failed_first = threading.Event()

    def fails() -> None:
        failed_first.set()
        raise ValueError("this write fails")

    def commits() -> None:
        failed_first.wait(timeout=120)
        _merge(spark, settings, "ops.fine", [("y", 2)])

    with pytest.raises(ValueError, match="this write fails"):
        tables.together(spark, fails, commits)

    assert _rows(spark, settings, "ops.fine") == [("x", 1), ("y", 2)]
    assert spark.conf.get(tables.MATERIALIZE_SOURCE, None) is None
