"""`datong generate`: one province's department extracts in a landing-zone layout.

``OUT/<department>/<table>/batch-<K>/<table>.<ext>`` for each declared resource, plus the
ground truth under ``OUT/_truth/batch-<K>/``: injected errors, true conflicts, the true
golden records, and a manifest with every file's record count and checksum.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthetic import credit_licence, deliveries
from synthetic.deliveries import Context, Record
from synthetic.errors import ErrorRates, GroundTruth
from synthetic.inject import Injector
from synthetic.world import ChunkBuilder, extract_date
from synthetic.writers import (
    CsvWriter,
    DeliveryWriter,
    JsonLinesWriter,
    PostgresTableWriter,
    XlsxWriter,
)

BUILDERS = {
    **deliveries.BUILDERS,
    "bronze.administrative_license": credit_licence.administrative_licence,
    "bronze.administrative_penalty": credit_licence.administrative_penalty,
    "bronze.credit_red_list": credit_licence.credit_red_list,
    "bronze.credit_black_list": credit_licence.credit_black_list,
    "bronze.e_license": credit_licence.e_licence,
}
# Average persons per generated household (head, spouse 75 %, children, parents 12 %).
PERSONS_PER_HOUSEHOLD = 2.9
HOUSEHOLDS_PER_CHUNK = 4000


@dataclass
class Options:
    persons: int
    seed: int
    out: Path
    batch: int = 1
    db_url: str | None = None
    rates: ErrorRates = field(default_factory=ErrorRates)
    households_per_chunk: int = HOUSEHOLDS_PER_CHUNK
    #: Only these resources' deliveries (bronze names); None for all. The province (its
    #: persons and legal persons, and their truth) stays whole, and each file written is the
    #: one a full run writes, except that file-level errors (truncated, re-encoded files) are
    #: drawn among these files; the truth of errors and conflicts covers these files only.
    resources: frozenset[str] | None = None


class UnknownResource(ValueError):
    """A resource asked for that the generator does not write."""


@dataclass
class FileReport:
    resource: str
    department: str
    path: str
    format: str
    encoding: str | None
    mode: str
    records: int
    sha256: str | None = None
    failure: str | None = None


@dataclass
class Manifest:
    seed: int
    batch: int
    extract_date: str
    persons: int
    legal_persons: int
    files: list[FileReport] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """A batch's ``manifest.json``, as ``generate`` wrote it."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{**data, "files": [FileReport(**f) for f in data["files"]]})


def _open_writer(options: Options, resource: Any) -> DeliveryWriter:
    table = resource.name.split(".", 1)[1]
    delivery = resource.delivery
    folder = options.out / resource.department / table / f"batch-{options.batch:04d}"
    columns = [element.name for element in resource.elements]
    if delivery.format == "db_table" and options.db_url:
        types = {element.name: element.type for element in resource.elements}
        return PostgresTableWriter(
            folder,
            columns,
            options.db_url,
            resource.department,
            table,
            types,
            replace=delivery.mode == "full",
        )
    if delivery.format == "jsonl":
        return JsonLinesWriter(folder / f"{table}.jsonl", columns)
    if delivery.format == "xlsx":
        return XlsxWriter(folder / f"{table}.xlsx", columns)
    # CSV, and db_table resources when no department database is given.
    return CsvWriter(folder / f"{table}.csv", columns, delivery.encoding or "utf-8")


def _in_window(record: Record, batch: int, mode: str) -> bool:
    if mode == "full":
        return True
    upper = extract_date(batch)
    lower = extract_date(batch - 1) if batch > 1 else dt.date.min
    return lower < record.event_date <= upper


def generate(options: Options, progress: Callable[[int, int], None] | None = None) -> Manifest:
    """Write every declared resource's delivery for one batch, and its ground truth."""
    from datong.contracts import load_resources

    resources = {name: r for name, r in sorted(load_resources().items()) if name in BUILDERS}
    missing = sorted(set(BUILDERS) - set(resources))
    if missing:
        raise RuntimeError(f"no contract in schemas/ for {missing}")
    if options.resources is not None:
        unknown = sorted(options.resources - set(resources))
        if unknown:
            raise UnknownResource(f"no generated resource {unknown} (known: {sorted(resources)})")
        resources = {name: r for name, r in resources.items() if name in options.resources}
    truth_dir = options.out / "_truth" / f"batch-{options.batch:04d}"
    truth_dir.mkdir(parents=True, exist_ok=True)
    per_chunk = round(options.households_per_chunk * PERSONS_PER_HOUSEHOLD)
    chunks = math.ceil(options.persons / per_chunk)
    ctx = Context(options.seed, options.rates)
    writers = {name: _open_writer(options, r) for name, r in resources.items()}
    manifest = Manifest(options.seed, options.batch, extract_date(options.batch).isoformat(), 0, 0)
    id_sequences: dict[Any, int] = {}

    with (
        (truth_dir / "errors.jsonl").open("w", encoding="utf-8") as errors_file,
        (truth_dir / "conflicts.jsonl").open("w", encoding="utf-8") as conflicts_file,
        _GoldenWriter(truth_dir) as golden,
    ):
        truth = GroundTruth(errors_file)
        injectors = {
            name: Injector(resource, writers[name], truth, ctx, options, options.out)
            for name, resource in resources.items()
        }
        for index in range(chunks):
            size = min(per_chunk, options.persons - index * per_chunk)
            builder = ChunkBuilder(options.seed, index, size, id_sequences)
            chunk = builder.build()
            for _ in range(1, options.batch):
                chunk = builder.evolve(chunk)
            golden.write(chunk)
            manifest.persons += len(chunk.persons)
            manifest.legal_persons += len(chunk.legal_persons)
            for name, resource in resources.items():
                for record in BUILDERS[name](chunk, ctx):
                    if not _in_window(record, options.batch, resource.delivery.mode):
                        continue
                    injectors[name].deliver(record)
                    for conflict in record.conflicts:
                        manifest.conflicts += 1
                        conflicts_file.write(
                            json.dumps(conflict.__dict__, ensure_ascii=False, default=str) + "\n"
                        )
            if progress:
                progress(index + 1, chunks)
        for name, resource in resources.items():
            writers[name].close()
            manifest.files.append(_report(options, resource, writers[name]))
        _file_level_errors(options, manifest, truth)
        manifest.injected = dict(sorted(truth.counts.items()))
    for report in manifest.files:
        path = options.out / report.path
        if path.is_file():
            report.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    (truth_dir / "manifest.json").write_text(
        json.dumps(_plain(manifest), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return manifest


def _report(options: Options, resource: Any, writer: DeliveryWriter) -> FileReport:
    delivery = resource.delivery
    if isinstance(writer, PostgresTableWriter):
        location = f"postgres:{resource.department}.{resource.name.split('.', 1)[1]}"
        fmt = "db_table"
    else:
        location = writer.path.relative_to(options.out).as_posix()
        fmt = "csv" if isinstance(writer, CsvWriter) else delivery.format
    return FileReport(
        resource=resource.name,
        department=resource.department,
        path=location,
        format=fmt,
        encoding=getattr(writer, "encoding", None) or ("utf-8" if fmt == "jsonl" else None),
        mode=delivery.mode,
        records=writer.records,
    )


def redelivery_dir(out: Path, batch: int) -> Path:
    """Where the intact copy of each file broken on purpose is kept: the department's
    corrected delivery, at the same path below it as the broken file below ``out``."""
    return out / "_truth" / f"batch-{batch:04d}" / "redelivery"


def _keep_intact(options: Options, relative: str) -> None:
    kept = redelivery_dir(options.out, options.batch) / relative
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(options.out / relative, kept)


def _file_level_errors(options: Options, manifest: Manifest, truth: GroundTruth) -> None:
    """Truncate one CSV file and re-encode another, as the rates ask; both fail whole.

    Each file's intact copy is kept in ``redelivery_dir``.
    """
    from datong.contracts import load_resources

    ctx = Context(options.seed, options.rates)
    rng = ctx.rng("file-errors", options.batch)
    # Only real file deliveries: a db_table resource written as CSV (no --db) is a stand-in.
    resources = load_resources()
    csv_files = [
        f
        for f in manifest.files
        if f.format == "csv" and f.records > 2 and resources[f.resource].delivery.format == "csv"
    ]
    utf8_files = [f for f in csv_files if (f.encoding or "utf-8") == "utf-8"]
    chosen: set[str] = set()
    for _ in range(options.rates.wrong_encoding_files):
        candidates = [f for f in utf8_files if f.path not in chosen]
        if not candidates:
            break
        victim = rng.choice(candidates)
        chosen.add(victim.path)
        _keep_intact(options, victim.path)
        path = options.out / victim.path
        path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))
        victim.failure = "wrong_encoding"
        truth.record_file(
            victim.path, victim.resource, "wrong_encoding", "delivered in GB18030, declared UTF-8"
        )
    for _ in range(options.rates.truncated_files):
        candidates = [f for f in csv_files if f.path not in chosen]
        if not candidates:
            break
        victim = rng.choice(candidates)
        chosen.add(victim.path)
        _keep_intact(options, victim.path)
        path = options.out / victim.path
        data = path.read_bytes()
        # Cut inside a record, just after its first field, like an interrupted transfer:
        # the last line then has too few fields whatever the values look like.
        line_start = data.rfind(b"\n", 0, len(data) // 2) + 1
        cut = data.index(b",", line_start) + 1
        path.write_bytes(data[:cut])
        victim.failure = "truncated"
        truth.record_file(
            victim.path, victim.resource, "truncated_file", f"cut at byte {cut} of {len(data)}"
        )


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(v) for k, v in value.__dict__.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _GoldenWriter:
    """The true golden records at the batch's extract date (for scoring the base libraries)."""

    PERSON = [
        "person_id",
        "name",
        "gender",
        "ethnicity",
        "birth_date",
        "household_id",
        "relation_to_head",
        "division_code",
        "address_id",
        "marital_status",
        "spouse_id",
        "death_date",
    ]
    LEGAL = [
        "credit_code",
        "name",
        "authority",
        "entity_type",
        "legal_representative_id",
        "industry",
        "division_code",
        "address_id",
        "established",
        "status",
        "deregistered",
    ]

    def __init__(self, folder: Path):
        self.folder = folder

    def __enter__(self) -> _GoldenWriter:
        self.person_handle = (self.folder / "person.csv").open("w", encoding="utf-8", newline="")
        self.legal_handle = (self.folder / "legal_person.csv").open(
            "w", encoding="utf-8", newline=""
        )
        self.persons = csv.writer(self.person_handle, lineterminator="\n")
        self.legal = csv.writer(self.legal_handle, lineterminator="\n")
        self.persons.writerow(self.PERSON)
        self.legal.writerow(self.LEGAL)
        return self

    def write(self, chunk: Any) -> None:
        for person in chunk.persons.values():
            self.persons.writerow(
                ["" if getattr(person, c) is None else getattr(person, c) for c in self.PERSON]
            )
        for legal in chunk.legal_persons.values():
            self.legal.writerow(
                ["" if getattr(legal, c) is None else getattr(legal, c) for c in self.LEGAL]
            )

    def __exit__(self, *exc: object) -> None:
        self.person_handle.close()
        self.legal_handle.close()


def iter_truth(path: Path) -> Iterator[dict[str, Any]]:
    """Read a ground-truth JSON Lines file."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)
