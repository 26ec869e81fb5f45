"""A JDBC pull's batch id: unique to the microsecond, and in the order the pulls started."""

from __future__ import annotations

import datetime as dt

from jobs.ingest import pull_batch_id


def test_a_pull_id_names_its_start_to_the_microsecond():
    started = dt.datetime(2026, 3, 1, 8, 5, 9, 42)
    assert pull_batch_id(started) == "pull-20260301080509000042"


def test_two_pulls_in_one_second_get_different_ids():
    first = dt.datetime(2026, 3, 1, 8, 5, 9, 1)
    assert pull_batch_id(first) != pull_batch_id(first.replace(microsecond=2))


def test_pull_ids_sort_as_the_pulls_started():
    # A build takes a source's batches in the order of their ids.
    starts = [
        dt.datetime(2026, 3, 1, 8, 5, 9, 999_999),
        dt.datetime(2026, 3, 1, 8, 5, 10, 0),
        dt.datetime(2026, 3, 1, 8, 5, 10, 7),
        dt.datetime(2026, 12, 31, 23, 59, 59, 0),
        dt.datetime(2027, 1, 1, 0, 0, 0, 0),
    ]
    ids = [pull_batch_id(s) for s in reversed(starts)]
    assert sorted(ids) == [pull_batch_id(s) for s in starts]
