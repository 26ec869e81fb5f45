"""The platform's main job, end to end, as far as the platform goes today.

Generate a synthetic province's department deliveries (with errors and ground truth), start
the services, ingest every delivery (bad rows quarantined, files that fail whole recorded),
report back to the departments, build the base libraries, take the departments' corrected
redeliveries through ingest and an incremental build, take the deliveries of a month later
(batch 2: history versions, full snapshots retiring keys), check quality, catalogue the
resources, and run the exchange: a request, a joint review, a grant enforced by Trino, the
audit. It ends with a summary of every step.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from datong.settings import Settings

log = logging.getLogger(__name__)

DEMO_TABLE = "bronze.demo_division"
# Small enough to generate in seconds, large enough to show every kind of error.
DEMO_PERSONS = 10_000
DEMO_SEED = 2026

#: Hubei's prefecture-level divisions (GB/T 2260): code, name, kind.
HUBEI_PREFECTURES: tuple[tuple[str, str, str], ...] = (
    ("420100", "武汉市", "地级市"),
    ("420200", "黄石市", "地级市"),
    ("420300", "十堰市", "地级市"),
    ("420500", "宜昌市", "地级市"),
    ("420600", "襄阳市", "地级市"),
    ("420700", "鄂州市", "地级市"),
    ("420800", "荆门市", "地级市"),
    ("420900", "孝感市", "地级市"),
    ("421000", "荆州市", "地级市"),
    ("421100", "黄冈市", "地级市"),
    ("421200", "咸宁市", "地级市"),
    ("421300", "随州市", "地级市"),
    ("422800", "恩施土家族苗族自治州", "自治州"),
    ("429004", "仙桃市", "省直辖县级市"),
    ("429005", "潜江市", "省直辖县级市"),
    ("429006", "天门市", "省直辖县级市"),
    ("429021", "神农架林区", "林区"),
)


@dataclass
class DemoSummary:
    steps: list[tuple[str, str, float]] = field(default_factory=list)

    def add(self, step: str, outcome: str, started: float) -> None:
        self.steps.append((step, outcome, time.monotonic() - started))


def run_demo(settings: Settings, console: Console) -> DemoSummary:
    from datong.query import register_table, run
    from datong.services import platform
    from datong.spark import spark_session
    from datong.storage import spark_location

    summary = DemoSummary()

    started = time.monotonic()
    department_db = _department_database(settings)
    summary.add(
        "department database (人社)",
        "PostgreSQL on 127.0.0.1:" + str(settings.postgres_port)
        if department_db
        else "PostgreSQL not available: the JDBC source is skipped",
        started,
    )

    started = time.monotonic()
    landing = settings.state_dir / "landing"
    manifest, made = _province(landing, department_db)
    failed = [f.resource for f in manifest.files if f.failure]
    summary.add(
        "generate a synthetic province" if made else "synthetic province (from an earlier run)",
        f"{manifest.persons:,} persons, {manifest.legal_persons:,} legal persons, "
        f"{len(manifest.files)} department deliveries in {landing}; "
        f"{sum(manifest.injected.values()):,} injected errors, {manifest.conflicts} true "
        f"conflicts, failed files: {', '.join(failed) or 'none'} (ground truth in _truth/)",
        started,
    )

    started = time.monotonic()
    pids = platform.up(settings)
    summary.add("start services", ", ".join(f"{n} pid {p}" for n, p in pids.items()), started)

    started = time.monotonic()
    spark = spark_session(settings, "datong-demo")
    summary.add("start Spark", f"{settings.spark_master}, Delta enabled", started)

    started = time.monotonic()
    location = spark_location(settings, DEMO_TABLE)
    frame = spark.createDataFrame(
        list(HUBEI_PREFECTURES), "division_code string, division_name string, division_kind string"
    )
    frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(location)
    version = spark.sql(f"DESCRIBE HISTORY delta.`{location}` LIMIT 1").collect()[0]["version"]
    summary.add(
        "Spark writes Delta", f"{frame.count()} rows to {location} (version {version})", started
    )

    started = time.monotonic()
    newly = register_table(settings, DEMO_TABLE)
    summary.add(
        "register in Trino",
        f"lake.{DEMO_TABLE} ({'new' if newly else 'already registered'})",
        started,
    )

    started = time.monotonic()
    result = run(
        settings,
        f"SELECT division_code, division_name, division_kind FROM lake.{DEMO_TABLE} "
        "ORDER BY division_code",
    )
    summary.add("query through Trino", f"{len(result.rows)} rows", started)

    table = Table(*result.columns, title=f"SELECT … FROM lake.{DEMO_TABLE} (through Trino)")
    for row in result.rows:
        table.add_row(*map(str, row))
    console.print(table)

    _ingest_and_report(settings, spark, landing, summary, console, (department_db, made))

    report = Table("step", "outcome", "seconds", title="datong demo — summary")
    for step, outcome, seconds in summary.steps:
        report.add_row(step, outcome, f"{seconds:.1f}")
    console.print(report)
    console.print(
        f'Services keep running: try `uv run datong sql "SELECT * FROM lake.{DEMO_TABLE}"`, '
        "stop them with `uv run datong down`."
    )
    return summary


def _ingest_all(settings: Settings, spark: Any, landing: Path) -> list[Any]:
    """Every landing-zone source, and the JDBC source when its database is named."""
    from datong.sources import load_sources
    from jobs.ingest import run_source

    results = []
    for source_id, source in sorted(load_sources().items()):
        if source.delivery.kind == "landing" or os.environ.get(source.delivery.url_env):
            results += run_source(source_id, landing, settings, spark)
    return results


def _ingest_and_report(
    settings: Settings,
    spark: Any,
    landing: Path,
    summary: DemoSummary,
    console: Console,
    province: tuple[str | None, bool],
) -> None:
    """Ingest every landing-zone source, write the quarantine reports, build the libraries,
    take a month's later deliveries, query as two users. ``province``: the department
    database, and whether batch 1 was generated just now."""
    from datong.query import run
    from jobs.quarantine_report import write_reports
    from synthetic.world import extract_date

    started = time.monotonic()
    results = _ingest_all(settings, spark, landing)
    done = [r for r in results if r.status == "succeeded"]
    skipped = [r for r in results if r.status == "skipped"]
    failed = [r for r in results if r.status == "failed"]
    read = sum(r.rows_read for r in done)
    accepted = sum(r.accepted for r in done)
    quarantined = sum(r.quarantined for r in done)
    if read != accepted + quarantined:
        raise RuntimeError(f"ingest does not reconcile: {read} != {accepted} + {quarantined}")
    summary.add(
        "ingest into lake.bronze",
        f"{len(done)} files ({len(skipped)} already in the ledger), {read:,} rows read = "
        f"{accepted:,} accepted + {quarantined:,} "
        f"quarantined; {len(failed)} files failed whole: "
        + "; ".join(f"{r.file} ({(r.error or '').split(': ', 1)[-1][:60]})" for r in failed),
        started,
    )

    started = time.monotonic()
    reports = settings.state_dir / "reports" / "quarantine"
    written = write_reports(spark, settings, reports)
    summary.add(
        "quarantine reports",
        f"{len(written)} departments, CSV + page each, in {reports}",
        started,
    )

    started = time.monotonic()
    from jobs.build import ORDER, build

    # The generated deliveries were extracted on batch 1's date: derive license and credit
    # statuses as of that day, as a build on the day of a real extract would.
    built = build(list(ORDER), settings, spark, as_of=extract_date(1))
    linkage = dict(built.linkage)
    linked = (
        f"; quarantined rows without a valid person ID: {linkage.get('candidates', 0):,} "
        f"offered to Splink, {linkage.get('linked', 0):,} linked "
        f"({linkage.get('applied', 0):,} now their persons' rows), "
        f"{linkage.get('review', 0):,} for review"
    )
    summary.add("build base libraries", _library_counts(settings) + (
        f" ({len(built.batches)} batch(es), {len(built.tables)} tables registered in Trino)"
    ) + linked, started)  # fmt: skip

    started = time.monotonic()
    summary.add("corrected files redelivered (数据纠错)",
                _redeliver(settings, spark, landing, failed), started)  # fmt: skip
    started = time.monotonic()
    summary.add("a month later: batch 2, built incrementally",
                _next_month(settings, spark, landing, *province), started)  # fmt: skip
    from jobs.quality import check_gold

    # As `datong build` and the build DAG do: the gold suites set the publication gates.
    check_gold(settings, spark, as_of=extract_date(2))
    started = time.monotonic()
    summary.add("derived libraries", _derived_summary(settings), started)
    started = time.monotonic()
    summary.add("data quality (GX suites, gates)", _quality_summary(settings), started)

    started = time.monotonic()
    from jobs.geo_report import report as geo_report

    drawn = geo_report(spark, settings, settings.state_dir / "reports" / "geo" / "counties.png")
    summary.add(
        "map (datong report geo)",
        f"{drawn.path}: {drawn.counties} counties, {drawn.persons:,} persons and "
        f"{drawn.legal_persons:,} legal persons placed",
        started,
    )

    started = time.monotonic()
    worklist = run(
        settings,
        "SELECT department, attribute, count(*) FROM lake.population.correction_worklist "
        "GROUP BY department, attribute ORDER BY 3 DESC",
    )
    table = Table("department", "attribute", "rows", title="correction worklist (数据纠错)")
    for row in worklist.rows:
        table.add_row(*map(str, row))
    console.print(table)
    summary.add(
        "query gold through Trino",
        f"correction worklist: {sum(r[2] for r in worklist.rows):,} rows for "
        f"{len({r[0] for r in worklist.rows})} departments",
        started,
    )

    from datong.demo_exchange import run_exchange

    for step, outcome, seconds in run_exchange(settings):
        summary.steps.append((step, outcome, seconds))


def _province(landing: Path, department_db: str | None) -> tuple[Any, bool]:
    """The demo's province and whether it was made now.

    Generated once: the same seed gives the same bytes, so a rerun finds it in the landing
    zone, with the departments' redeliveries in place, and generates nothing (a fresh
    generation would break those files again, and the ingest would refuse them as changed).
    """
    import json

    from synthetic.generate import Manifest, Options, generate

    wanted = {"persons": DEMO_PERSONS, "seed": DEMO_SEED, "department_db": bool(department_db)}
    marker = landing / "_truth" / "demo.json"
    written = landing / "_truth" / "batch-0001" / "manifest.json"
    if marker.exists() and written.exists() and json.loads(marker.read_text()) == wanted:
        return Manifest.load(written), False
    manifest = generate(
        Options(persons=DEMO_PERSONS, seed=DEMO_SEED, out=landing, db_url=department_db)
    )
    marker.write_text(json.dumps(wanted), encoding="utf-8")
    return manifest, True


def _library_counts(settings: Settings) -> str:
    """Golden records, conflicts and unmatched rows of the two keyed libraries (Trino)."""
    from datong.query import run

    counts = []
    for library, main in (("population", "person"), ("legal_person", "entity")):
        [(subjects, conflicts, unmatched)] = run(
            settings,
            f"SELECT (SELECT count(*) FROM lake.{library}.{main}), "
            f"(SELECT count(*) FROM lake.{library}.conflict), "
            f"(SELECT count(*) FROM lake.{library}.unmatched)",
        ).rows
        counts.append(
            f"{library}: {subjects:,} golden records, {conflicts:,} conflicts, "
            f"{unmatched:,} source rows unmatched"
        )
    return "; ".join(counts)


def _redeliver(settings: Settings, spark: Any, landing: Path, failed: list[Any]) -> str:
    """The departments whose files failed whole send them again, intact, under the same name:
    the next ingest takes them and the next build rebuilds only the subjects they touch."""
    import shutil

    from jobs.build import ORDER, build
    from jobs.ingest import run_source
    from synthetic.generate import redelivery_dir
    from synthetic.world import extract_date

    sent = []
    for result in failed:
        batch = int(result.batch_id.rsplit("-", 1)[1])
        intact = redelivery_dir(landing, batch) / result.file
        if intact.exists():
            shutil.copyfile(intact, landing / result.file)
            sent.append(result)
    if not sent:
        return "no file failed whole"
    landed = []
    for source_id in sorted({r.source_id for r in sent}):
        landed += [r for r in run_source(source_id, landing, settings, spark)
                   if r.status == "succeeded"]  # fmt: skip
    built = build(list(ORDER), settings, spark, as_of=extract_date(1))
    rebuilt = ", ".join(f"{r.library} {r.affected:,}" for r in built.results)
    return (
        f"{len(landed)} of {len(sent)} files ingested "
        f"({sum(r.accepted for r in landed):,} rows accepted, "
        f"{sum(r.quarantined for r in landed):,} quarantined); the incremental build rebuilt "
        f"only the subjects they touch ({rebuilt or 'none'}); now " + _library_counts(settings)
    )


def _next_month(
    settings: Settings, spark: Any, landing: Path, department_db: str | None, fresh: bool
) -> str:
    """The departments' deliveries a month after the first (batch 2): ingested, and built
    incrementally. Only a second batch shows the history (a person who moved, married or
    died has a new version) and the full snapshots retiring what they no longer hold.
    ``fresh``: batch 1 was generated just now, so batch 2 is generated anew too."""
    from datong.query import run
    from jobs.build import ORDER, build
    from synthetic.generate import Options, generate
    from synthetic.world import extract_date

    if fresh or not (landing / "_truth" / "batch-0002" / "manifest.json").exists():
        generate(Options(persons=DEMO_PERSONS, seed=DEMO_SEED, out=landing,
                         db_url=department_db, batch=2))  # fmt: skip
    results = [r for r in _ingest_all(settings, spark, landing) if r.status != "skipped"]
    done = [r for r in results if r.status == "succeeded"]
    failed = [r for r in results if r.status == "failed"]
    built = build(list(ORDER), settings, spark, as_of=extract_date(2))
    rebuilt = ", ".join(f"{r.library} {r.affected:,}" for r in built.results if r.affected)
    retired = sum(merged.retired or 0 for merged in built.silver)
    [(versions,)] = run(
        settings,
        "SELECT count(*) FROM (SELECT person_id FROM lake.population.person_history "
        "GROUP BY person_id HAVING count(*) > 1)",
    ).rows
    return (
        f"{len(done)} files of {extract_date(2)} ingested "
        f"({sum(r.accepted for r in done):,} rows accepted, "
        f"{sum(r.quarantined for r in done):,} quarantined; {len(failed)} failed whole); "
        f"the build rebuilt only the subjects they touch ({rebuilt or 'none'}); "
        f"{retired:,} keys retired by complete full snapshots; {versions:,} persons have a "
        "new version in population.person_history (moved, married, died); now "
        + _library_counts(settings)
    )


def _quality_summary(settings: Settings) -> str:
    """Rows the quality suites quarantined, scores per resource and the gold gates (Trino)."""
    from datong.query import QueryError, run
    from quality.gate import latest_gates
    from quality.score import latest_scores

    try:
        [(rejected,)] = run(settings, "SELECT count(*) FROM lake.quarantine.quality_rejected").rows
    except QueryError:  # no batch has had a row rejected yet, so the table was never written
        rejected = 0
    try:
        scores, gates = latest_scores(settings), latest_gates(settings)
    except QueryError as error:  # a state dir from before the quality suites
        return f"no quality results yet ({str(error)[:80]})"
    lowest = min(scores.items(), key=lambda item: item[1]["score"]) if scores else None
    closed = [f"{name} ({gate.reasons[:80]})" for name, gate in gates.items() if not gate.passed]
    return (
        f"{rejected:,} bronze rows quarantined by business rules; {len(scores)} resources "
        f"scored"
        + (f", lowest {lowest[0]} {lowest[1]['score']:.1f}/100" if lowest else "")
        + f"; gold gates: {len(gates) - len(closed)} open, {len(closed)} closed"
        + (": " + "; ".join(closed) if closed else "")
    )


def _derived_summary(settings: Settings) -> str:
    """One line per derived library, every figure read back through Trino."""
    from datong.query import run

    [(matched, total, outside)] = run(
        settings,
        "SELECT count(address_id), count(*), (SELECT count(*) FROM lake.geo.conflict "
        "WHERE kind = 'point_outside_division') FROM lake.geo.address_match",
    ).rows
    grades = run(
        settings, "SELECT grade, count(*) FROM lake.credit.profile GROUP BY grade ORDER BY grade"
    ).rows
    statuses = run(
        settings,
        "SELECT status, count(*) FROM lake.license.license GROUP BY status ORDER BY 2 DESC",
    ).rows
    [(license_conflicts,)] = run(settings, "SELECT count(*) FROM lake.license.conflict").rows
    [(materials,)] = run(
        settings,
        "SELECT count(*) FROM lake.information_schema.views WHERE table_schema = 'materials'",
    ).rows
    rate = matched / total if total else 0.0
    return (
        f"geo: {matched:,}/{total:,} addresses matched ({rate:.1%}), {outside} points outside "
        f"their division; credit grades "
        + ", ".join(f"{g} {n:,}" for g, n in grades)
        + "; licenses "
        + ", ".join(f"{s} {n:,}" for s, n in statuses)
        + f", {license_conflicts:,} conflicts; {materials} shared-material views"
    )


def _department_database(settings: Settings) -> str | None:
    """Start the embedded PostgreSQL as 人社's own database; None when it cannot run here."""
    from datong.services import platform
    from datong.services.postgres import ensure_database
    from datong.services.process import ServiceError

    try:
        platform.up(settings, services=["postgres"])
        url = ensure_database(settings, "dept_human_resources")
    except (ServiceError, OSError) as error:
        log.warning("no department database for the demo: %s", error)
        return None
    # The source declaration names this variable; the URL (with its password) stays in env.
    os.environ["DATONG_SOURCE_HUMAN_RESOURCES_URL"] = url
    return url
