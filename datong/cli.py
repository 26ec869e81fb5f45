"""The `datong` command line: set up, start, stop and query the platform."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from datong.settings import Settings, load_settings

if TYPE_CHECKING:
    from jobs.quality import QualityRun

app = typer.Typer(
    help="数通 datong — government data-sharing exchange and big-data platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except Exception as error:  # pydantic's message names the field and the bad value
        _fail(f"invalid settings: {error}")


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(1)


@app.command()
def setup() -> None:
    """Fetch and verify the runtime (Spark jars, Trino); offline and quick when cached."""
    from datong import artifacts

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = _settings()
    try:
        runtime = artifacts.setup(settings.cache_dir)
    except artifacts.ArtifactError as error:
        _fail(str(error))
    out.print(f"Trino home: {runtime.trino_home}")
    out.print(f"Spark jars: {len(runtime.spark_jars)} verified under {settings.cache_dir / 'm2'}")


@app.command()
def up(
    with_postgres: Annotated[
        bool, typer.Option("--with-postgres", help="Also start the embedded PostgreSQL.")
    ] = False,
) -> None:
    """Start the embedded services (Trino, the catalogue; SeaweedFS for s3://) on 127.0.0.1."""
    from datong.query import QueryError
    from datong.services import platform
    from datong.services.process import ServiceError

    settings = _settings()
    services = ["postgres", *platform.wanted_services(settings)] if with_postgres else None
    try:
        pids = platform.up(settings, services=services)
    except (ServiceError, QueryError) as error:
        _fail(str(error))
    for name, pid in pids.items():
        out.print(f"{name}: running (pid {pid})")
    out.print(f"Trino: {settings.trino_url}  storage root: {settings.storage_root}")
    out.print(f"Catalogue: {settings.catalog_url}/docs  (`datong catalog sync` fills it)")
    if with_postgres:
        out.print(
            f"PostgreSQL: 127.0.0.1:{settings.postgres_port}  "
            f"(superuser password in {settings.state_dir / 'secrets' / 'postgres.json'})"
        )


@app.command()
def down() -> None:
    """Stop the services `up` started (gracefully, then forcibly)."""
    from datong.services import platform

    stopped = platform.down(_settings())
    out.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@app.command()
def status() -> None:
    """Show each service: pid, ports, health, log file."""
    from datong.services import platform

    settings = _settings()
    table = Table("service", "pid", "ports", "state", "log")
    for item in platform.status(settings):
        state = "healthy" if item.healthy else ("starting/unhealthy" if item.running else "stopped")
        table.add_row(
            item.name,
            str(item.pid or "-"),
            ",".join(map(str, item.ports)),
            state,
            str(item.log_file),
        )
    out.print(table)
    out.print(f"storage root: {settings.storage_root}")


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One SQL statement for Trino.")],
    user: Annotated[str | None, typer.Option(help="Query as this user (default: admin).")] = None,
    password_env: Annotated[
        str,
        typer.Option(help="Variable holding --user's password (never on the command line)."),
    ] = "DATONG_TRINO_PASSWORD",
) -> None:
    """Run a SQL statement through Trino and print the result as a table."""
    from datong.query import QueryError, run

    settings = _settings()
    password = None
    if user is not None and user != settings.trino_admin_user:
        password = _trino_password(user, password_env)
    try:
        result = run(settings, statement, user=user, password=password)
    except QueryError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"cannot reach Trino at {settings.trino_url} ({error}); is `datong up` running?")
    table = Table(*result.columns)
    for row in result.rows:
        table.add_row(*("NULL" if value is None else str(value) for value in row))
    out.print(table)
    out.print(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})")


def _trino_password(user: str, variable: str) -> str:
    """The password of a Trino user: from ``variable``, else asked for on a terminal."""
    password = os.environ.get(variable)
    if password:
        return password
    if sys.stdin.isatty():
        return str(typer.prompt(f"Trino password for {user}", hide_input=True))
    _fail(f"no password for Trino user {user!r}: set {variable} (or run on a terminal to be asked)")


@app.command()
def demo() -> None:
    """Run the platform's main job end to end and print a summary of what it did."""
    from datong.demo import run_demo

    settings = _settings()
    try:
        run_demo(settings, out)
    except Exception as error:
        _fail(f"{type(error).__name__}: {error}")


@app.command()
def generate(
    persons: Annotated[
        int, typer.Option(help="Number of persons (approximate: whole households).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Landing-zone directory to write into.")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 42,
    batch: Annotated[int, typer.Option(help="Delivery number: 1 first, K a later month.")] = 1,
    db: Annotated[
        str | None, typer.Option(help="PostgreSQL URL for resources delivered as DB tables.")
    ] = None,
    errors: Annotated[
        Path | None, typer.Option(help="YAML of error rates (default: synthetic/error_rates.yaml).")
    ] = None,
    error_scale: Annotated[float, typer.Option(help="Multiply every error rate.")] = 1.0,
    clean: Annotated[bool, typer.Option(help="Inject no errors at all.")] = False,
    resource: Annotated[
        list[str] | None,
        typer.Option(help="Only this resource's deliveries (repeatable), e.g. household_register."),
    ] = None,
) -> None:
    """Generate one synthetic province's department extracts, with errors and ground truth."""
    from rich.progress import Progress

    from synthetic.errors import ErrorRates
    from synthetic.generate import Options, UnknownResource
    from synthetic.generate import generate as run_generate

    if persons < 1 or batch < 1:
        _fail("--persons and --batch must be at least 1")
    rates = ErrorRates.load(errors, scale=0.0 if clean else error_scale)
    only = frozenset(r if r.startswith("bronze.") else "bronze." + r for r in resource or [])
    options = Options(
        persons=persons, seed=seed, out=out_dir, batch=batch, db_url=db, rates=rates,
        resources=only or None,
    )  # fmt: skip
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("generating", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            manifest = run_generate(options, advance)
        except UnknownResource as error:
            _fail(str(error))
    table = Table("resource", "delivered as", "records", "note", title=f"batch {batch}")
    for report in manifest.files:
        table.add_row(report.resource, report.path, str(report.records), report.failure or "")
    out.print(table)
    out.print(
        f"{manifest.persons} persons, {manifest.legal_persons} legal persons, "
        f"{sum(manifest.injected.values())} injected errors, {manifest.conflicts} true conflicts; "
        f"ground truth in {out_dir / '_truth' / f'batch-{batch:04d}'}"
    )


@app.command()
def ingest(
    landing: Annotated[
        Path | None, typer.Option(help="Landing zone (default: <state>/landing).")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(help="Source id(s), e.g. public_security.household_register."),
    ] = None,
) -> None:
    """Collect new deliveries into lake.bronze (bad rows to lake.quarantine), without Airflow."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from datong.sources import load_sources
    from datong.spark import spark_session
    from jobs.ingest import FileResult, run_source

    settings = _settings()
    declared = load_sources()
    wanted = source or [s for s, d in declared.items() if d.delivery.kind == "landing"]
    unknown = [s for s in wanted if s not in declared]
    if unknown:
        _fail(f"unknown source(s) {unknown}; declared: {sorted(declared)}")
    spark = spark_session(settings, "datong-ingest")
    results = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("ingesting", total=len(wanted))
        for source_id in wanted:
            progress.update(task, description=f"ingesting {source_id}")
            try:
                results += run_source(source_id, landing, settings, spark)
            except NotImplementedError as error:
                err.print(f"[yellow]skipped:[/] {error}")
            except Exception as error:  # one source's failure never stops the others
                logging.getLogger("datong.ingest").exception("%s failed", source_id)
                failure = f"{type(error).__name__}: {error}"
                resource = declared[source_id].resource
                results.append(
                    FileResult(source_id, resource, "", "—", "", "failed", error=failure)
                )
            progress.advance(task)
    table = Table("source", "file", "read", "accepted", "quarantined", "status", title="ingest")
    for result in results:
        status = result.status if not result.error else f"{result.status}: {result.error}"
        table.add_row(result.source_id, result.file, str(result.rows_read), str(result.accepted),
                      str(result.quarantined), status)  # fmt: skip
    out.print(table)
    failed = [r for r in results if r.status == "failed"]
    out.print(
        f"{sum(r.status == 'succeeded' for r in results)} files ingested, "
        f"{sum(r.status == 'skipped' for r in results)} already done, {len(failed)} failed"
    )
    if failed:
        raise typer.Exit(1)


@app.command("quarantine-report")
def quarantine_report(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder (default: <state>/reports/quarantine)."),
    ] = None,
    batch: Annotated[str | None, typer.Option(help="Only this batch, e.g. batch-0002.")] = None,
) -> None:
    """Write per-department quarantine reports (CSV + page, Chinese and English reasons)."""
    from datong.spark import spark_session
    from jobs.quarantine_report import write_reports

    settings = _settings()
    target = out_dir or settings.state_dir / "reports" / "quarantine"
    spark = spark_session(settings, "datong-quarantine-report")
    written = write_reports(spark, settings, target, batch)
    for department, folder in sorted(written.items()):
        out.print(f"{department}: {folder / 'index.html'}")
    out.print(f"index: {target / 'index.html'}")


@app.command("report")
def report(
    subject: Annotated[str, typer.Argument(help="What to report on: geo.")],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="PNG file (default: <state>/reports/geo/counties.png)."),
    ] = None,
) -> None:
    """Draw a report: `geo` maps persons and legal persons per county (PNG)."""
    if subject != "geo":
        _fail(f"unknown report {subject!r}; known: geo")
    from datong.spark import spark_session
    from jobs.geo_report import report as draw_report

    settings = _settings()
    target = out_file or settings.state_dir / "reports" / "geo" / "counties.png"
    spark = spark_session(settings, "datong-report-geo")
    try:
        result = draw_report(spark, settings, target)
    except FileNotFoundError as error:
        _fail(str(error))
    out.print(
        f"{result.path}: {result.counties} counties, {result.persons:,} persons, "
        f"{result.legal_persons:,} legal persons ({result.width}x{result.height} px)"
    )


@app.command()
def build(
    libraries: Annotated[
        list[str] | None,
        typer.Argument(
            help="Base libraries to build: population, legal_person, geo, credit, license, "
            "materials (default: all; the libraries they read are built first)."
        ),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rebuild from every bronze batch, not only new ones.")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Derive date-dependent statuses as of this date (YYYY-MM-DD)."
        ),
    ] = None,
) -> None:
    """Build the base libraries (golden records, history, conflicts) from bronze, no Airflow."""
    import datetime as dt

    from datong.spark import spark_session
    from jobs.build import ORDER
    from jobs.build import build as run_build

    settings = _settings()
    wanted = libraries or list(ORDER)
    unknown = sorted(set(wanted) - set(ORDER))
    if unknown:
        _fail(f"unknown base library {', '.join(unknown)}; known: {', '.join(ORDER)}")
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        _fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)")
    spark = spark_session(settings, "datong-build")
    result = run_build(wanted, settings, spark, full=full, as_of=day)
    if not (result.batches or result.derived or result.results or result.linkage):
        out.print("nothing new in bronze: the libraries are up to date")
        return
    table = Table("library", "batch", "affected", "subjects", "conflicts", "unmatched",
                  title="build")  # fmt: skip
    for item in result.results:
        table.add_row(item.library, item.batch_id, str(item.affected), str(item.subjects),
                      str(item.conflicts), str(item.unmatched))  # fmt: skip
    out.print(table)
    if result.derived:
        derived = Table("library", "table", "rows", title="derived libraries")
        for library, counts in result.derived.items():
            for name, rows in counts.items():
                derived.add_row(library, name, str(rows))
        out.print(derived)
    out.print(f"{len(result.batches)} batch(es) built; tables: {', '.join(result.tables)}")
    retired: dict[str, int] = {}
    for merged in result.silver:
        if merged.retired:
            retired[merged.table] = retired.get(merged.table, 0) + merged.retired
    if retired:
        listed = ", ".join(f"{name} {count}" for name, count in sorted(retired.items()))
        out.print(f"keys no longer in a complete full snapshot, retired: {listed}")
    if result.linkage:
        counts = dict(result.linkage)
        applied = counts.pop("applied", 0)
        decided = ", ".join(f"{decision} {count}" for decision, count in counts.items())
        out.print(f"rows quarantined without a valid person ID, linkage: {decided}")
        out.print(f"linked rows now in silver and gold as their persons' rows: {applied}")
    if result.views:
        out.print(f"views: {', '.join(result.views)}")
    from jobs import quality as quality_job

    _print_quality(quality_job.check_gold(settings, spark, as_of=day))


def _print_quality(checked: QualityRun) -> None:
    """The scorecard of a quality run: scores per bronze resource, gates per gold table."""
    if checked.scores:
        card = Table("resource", "score", "completeness", "validity", "consistency",
                     "timeliness", "failed fail", "failed warn", "quarantined",
                     title=f"quality scorecard (run {checked.run_id[:12]})")  # fmt: skip
        for name, score in sorted(checked.scores.items()):
            results = checked.results.get(name, [])
            failed = {sev: sum(1 for r in results if r.check.severity == sev and not r.success)
                      for sev in ("fail", "warn")}  # fmt: skip
            card.add_row(name, f"{score.score:.1f}", f"{score.completeness:.1f}",
                         f"{score.validity:.1f}", f"{score.consistency:.1f}",
                         f"{score.timeliness:.1f}", str(failed["fail"]), str(failed["warn"]),
                         str(checked.quarantined.get(name, 0)))  # fmt: skip
        out.print(card)
    if checked.gates:
        gates = Table("gold table", "gate", "why", title="publication gates")
        for name, gate in sorted(checked.gates.items()):
            verdict = "[green]open[/green]" if gate.passed else "[red]closed[/red]"
            gates.add_row(name, verdict, gate.reasons or "every fail expectation passed")
        out.print(gates)
    if checked.docs:
        out.print(f"Data Docs: {checked.docs}")


@app.command()
def quality(
    resource: Annotated[
        str | None,
        typer.Argument(help="A bronze resource or gold table (default: every one that exists)."),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Check date ranges as of this day (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Run the quality suites (latest batch of bronze, gold tables) and print the scorecard."""
    import datetime as dt

    from datong.spark import spark_session
    from jobs import quality as quality_job
    from quality.checks import tables_checked

    settings = _settings()
    if resource is not None and resource not in tables_checked():
        _fail(f"no quality suite for {resource!r}; known: {', '.join(tables_checked())}")
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        _fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)")
    spark = spark_session(settings, "datong-quality")
    checked = quality_job.run([resource] if resource else None, settings, spark, as_of=day)
    if not checked.results:
        out.print("nothing to check: no bronze or gold table exists yet")
        return
    _print_quality(checked)


@app.command("config")
def show_config() -> None:
    """Print the effective settings (secrets are never printed)."""
    settings = _settings()
    for key, value in settings.describe().items():
        out.print(f"{key} = {value}")


linkage_app = typer.Typer(
    help="Rows quarantined without a valid person ID: the linkage decisions, and a reviewer's.",
    no_args_is_help=True,
)
app.add_typer(linkage_app, name="linkage")
UserOption = Annotated[str | None, typer.Option("--user", "-u", help="Act as this user.")]


@linkage_app.command("list")
def linkage_list(
    decision: Annotated[
        str, typer.Option(help="linked, review, unmatched or rejected.")
    ] = "review",
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    user: UserOption = None,
) -> None:
    """The rows whose current decision is ``decision`` (personal data: a data engineer's)."""
    from pyspark.sql import functions as F

    from catalog import audit, people
    from catalog.cli import _acting
    from catalog.service import now_utc
    from datong.spark import spark_session
    from jobs.keyless import linkage_decisions

    settings = _settings()
    # The role is checked, and the reading audited, in short transactions of their own:
    # none is held open while Spark starts and reads.
    with _acting(user) as (_, _session, actor):
        people.require_role(actor, (people.DATA_ENGINEER,), "read linkage decisions")
        name = actor.name
    spark = spark_session(settings, "datong-linkage")
    decisions = linkage_decisions(spark, settings)
    rows = []
    if decisions is not None:
        rows = (
            decisions.where(F.col("decision") == decision)
            .orderBy("source_file", "row_number")
            .limit(limit)
            .collect()
        )
    with _acting(name) as (_, session, _actor):  # shown only once the reading is audited
        audit.record(session, name, "linkage.list", decision, now_utc(), rows=len(rows))
    table = Table("row", "source", "delivered ID", "name", "birth date", "person",
                  "best match", "probability", "decided by",
                  title=f"linkage decisions: {decision}")  # fmt: skip
    for row in rows:
        probability = row["match_probability"]
        table.add_row(
            f"{row['source_file']}#{row['row_number']}", row["source"], row["delivered_id"],
            row["name"], row["birth_date"], row["person_id"], row["candidate_id"],
            "" if probability is None else f"{probability:.4f}", row["decided_by"],
        )  # fmt: skip
    out.print(table)


@linkage_app.command("decide")
def linkage_decide(
    record: Annotated[str, typer.Argument(help="The row: <source file>#<row number>.")],
    person: Annotated[
        str | None, typer.Option("--person", help="The row is this person's (18-digit ID).")
    ] = None,
    reject: Annotated[
        bool, typer.Option("--reject", help="The row is nobody in the library.")
    ] = False,
    note: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    user: UserOption = None,
) -> None:
    """Decide a row for the next build: a linked row reaches gold as the person's row."""
    from catalog import audit, people
    from catalog.cli import _acting
    from catalog.service import now_utc
    from datong.spark import spark_session
    from jobs.keyless import LinkageError, record_verdict

    if (person is None) == (not reject):
        _fail("give either --person ID or --reject")
    settings = _settings()
    with _acting(user) as (_, _session, actor):
        people.require_role(actor, (people.DATA_ENGINEER,), "decide a linkage")
        name = actor.name
    spark = spark_session(settings, "datong-linkage")
    try:
        # The verdict row names its reviewer and time itself, should the audit then fail.
        was = record_verdict(spark, settings, record, person, name, note)
    except LinkageError as error:
        _fail(str(error))
    verdict = "rejected" if reject else "linked"
    with _acting(name) as (_, session, _actor):
        audit.record(session, name, "linkage.decide", record, now_utc(),
                     verdict=verdict, person_id=person, was=was["decision"], note=note)  # fmt: skip
    out.print(
        f"{record}: {verdict}{f' to {person}' if person else ''} (was {was['decision']}); "
        "the next build of the population library takes it"
    )


def _register_catalog() -> None:
    """The catalogue's sub-commands; their modules import only Typer until a command runs."""
    import catalog.cli_exchange  # noqa: F401 - registers `request` and `review` commands
    from catalog.cli import catalog_app, request_app, review_app

    app.add_typer(catalog_app, name="catalog")
    app.add_typer(request_app, name="request")
    app.add_typer(review_app, name="review")


_register_catalog()


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="datong")


if __name__ == "__main__":  # pragma: no cover
    main()
