"""What the generated ingest DAGs' tasks run, kept out of the DAG files (parsed often).

An ingest task lands a source's new deliveries and hands on the errors of the files that
failed whole; a second task fails on them, naming each file, once the rest has landed and
its Asset has been updated. A run with nothing new is skipped, so the build downstream is
not woken for nothing.
"""

from __future__ import annotations


def ingest_source(source_id: str, landing: str | None = None) -> list[str]:
    """Ingest ``source_id``; the errors of its files that failed whole.

    Skipped when there was nothing new. When nothing landed and something failed, the task
    fails: without retries for a landing file (a bad file stays bad until the department
    sends it again), with them for a database pull (the database may come back).
    """
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from datong.sources import load_sources
    from jobs.ingest import run_source

    results = run_source(source_id, landing)
    landed = [r for r in results if r.status == "succeeded"]
    errors = [r.error or f"{r.file}: failed" for r in results if r.status == "failed"]
    if not landed and not errors:
        raise AirflowSkipException(f"{source_id}: no new delivery")
    if not landed:
        message = f"{source_id}: nothing landed; " + "; ".join(errors)
        if load_sources()[source_id].delivery.kind == "landing":
            raise AirflowFailException(message)
        raise RuntimeError(message)
    return errors


def check_deliveries(errors: list[str]) -> None:
    """Fails, naming each file and why, when a delivery failed whole; retrying cannot help."""
    from airflow.sdk.exceptions import AirflowFailException

    if errors:
        raise AirflowFailException(
            f"{len(errors)} file(s) failed whole and wait for the department: " + "; ".join(errors)
        )
