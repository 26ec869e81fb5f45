"""Row-level error injection at delivery time, with every error written to the ground truth.

At most one row-level error per delivered row, drawn with the configured rates, so each
rejected or repaired row has exactly one expected reason.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from synthetic import business_errors
from synthetic.deliveries import Context, Record
from synthetic.errors import (
    GroundTruth,
    Injected,
    corrupt_identifier,
    full_width,
    other_date_format,
)
from synthetic.writers import CsvWriter, DeliveryWriter, PostgresTableWriter, text


class Injector:
    """Delivers the records of one resource's file, corrupting some as the rates say."""

    def __init__(
        self,
        resource: Any,
        writer: DeliveryWriter,
        truth: GroundTruth,
        ctx: Context,
        options: Any,
        out: Path,
    ):
        self.resource = resource
        self.writer = writer
        self.truth = truth
        self.ctx = ctx
        self.batch = options.batch
        self.is_csv = isinstance(writer, CsvWriter)
        self.is_db = isinstance(writer, PostgresTableWriter)
        if self.is_db:
            self.file = f"postgres:{resource.department}.{resource.name.split('.', 1)[1]}"
        else:
            self.file = writer.path.relative_to(out).as_posix()
        elements = resource.elements
        self.id_fields = [e.name for e in elements if e.standard == "GB 11643"]
        self.code_fields = [e.name for e in elements if e.standard == "GB 32100"]
        self.date_fields = [e.name for e in elements if e.type == "date"]
        self.text_fields = [
            e.name
            for e in elements
            if e.type == "string" and e.standard is None and not e.code_table
        ]
        self.serial = 0

    def deliver(self, record: Record) -> None:
        self.serial += 1
        if self.serial == 1:
            self._check_shape(record)
        row = dict(record.row)
        rng = self.ctx.rng("inject", self.resource.name, self.batch, record.subject, self.serial)
        rates = self.ctx.rates
        choice = rng.random()
        kinds = [
            ("invalid_check_character", rates.invalid_check_character),
            ("legacy_15_digit_id", rates.legacy_15_digit_id),
            ("full_width", rates.full_width),
            ("stray_whitespace", rates.stray_whitespace),
            ("date_format", 0.0 if self.is_db else rates.date_format),
            ("duplicate_row", rates.duplicate_row),
            ("column_count", rates.column_count if self.is_csv else 0.0),
            # Last, so adding them left every earlier kind's rows as they were.
            *((kind, getattr(rates, kind)) for kind in business_errors.KINDS),
        ]
        picked = None
        threshold = 0.0
        for kind, rate in kinds:
            threshold += rate
            if choice < threshold:
                picked = kind
                break
        error = self._apply(picked, row, rng) if picked else None
        if error and error.kind == "column_count":
            values = [text(row.get(c)) for c in self.writer.columns]
            values = values[:-1] if rng.random() < 0.5 else [*values, "多余字段"]
            error.record = self.writer.write_raw(values)
            error.delivered = len(values)
        else:
            number = self.writer.write(row)
            if error:
                # A duplicate's second copy is the one the platform must drop.
                error.record = self.writer.write(row) if error.kind == "duplicate_row" else number
        if error:
            self.truth.record(error)
        for field, kind, expected, true_value, delivered in record.injected:
            self.truth.record(
                Injected(
                    self.file,
                    self.writer.records,
                    self.resource.name,
                    field,
                    kind,
                    expected,
                    true_value,
                    delivered,
                    record.subject,
                )
            )

    def _check_shape(self, record: Record) -> None:
        """The builder must deliver exactly the contract's data elements."""
        declared = set(self.writer.columns)
        missing, extra = declared - set(record.row), set(record.row) - declared
        if missing or extra:
            raise RuntimeError(
                f"{self.resource.name}: builder rows lack {sorted(missing)} "
                f"and add undeclared {sorted(extra)}"
            )

    def _apply(self, kind: str, row: dict[str, Any], rng: Any) -> Injected | None:
        def made(field: str, expected: str, true_value: Any, delivered: Any) -> Injected:
            return Injected(
                self.file,
                0,
                self.resource.name,
                field,
                kind,
                expected,
                text(true_value),
                delivered,
                None,
            )

        present = lambda names: [n for n in names if row.get(n)]  # noqa: E731
        if kind == "invalid_check_character":
            fields = present(self.id_fields + self.code_fields)
            if not fields:
                return None
            field = rng.choice(fields)
            true_value = row[field]
            row[field] = corrupt_identifier(true_value, kind)
            return made(field, "quarantine", true_value, row[field])
        if kind == "legacy_15_digit_id":
            fields = [f for f in present(self.id_fields) if str(row[f])[6:8] == "19"]
            if not fields:
                return None
            field = rng.choice(fields)
            true_value = row[field]
            row[field] = corrupt_identifier(true_value, kind)
            return made(field, "normalise", true_value, row[field])
        if kind == "full_width":
            fields = [
                f
                for f in present(self.id_fields + self.code_fields + self.text_fields)
                if any(c.isascii() and c.isalnum() for c in str(row[f]))
            ]
            if not fields:
                return None
            field = rng.choice(fields)
            true_value = row[field]
            row[field] = full_width(str(true_value))
            return made(field, "normalise", true_value, row[field])
        if kind == "stray_whitespace":
            fields = present(self.text_fields + self.id_fields + self.code_fields)
            if not fields:
                return None
            field = rng.choice(fields)
            true_value = row[field]
            row[field] = (
                rng.choice([" ", "\t", "  "]) + str(true_value) + rng.choice(["", " ", "\u3000"])
            )
            return made(field, "normalise", true_value, row[field])
        if kind == "date_format":
            fields = [f for f in present(self.date_fields) if isinstance(row[f], dt.date)]
            if not fields:
                return None
            field = rng.choice(fields)
            true_value = row[field]
            row[field] = other_date_format(true_value, rng)
            return made(field, "normalise", true_value, row[field])
        if kind in business_errors.KINDS:
            broken = business_errors.corrupt(kind, self.resource.name, row, rng)
            if broken is None:
                return None
            field, true_value = broken
            return business_errors.injected(
                self.file, self.resource.name, kind, field, true_value, row
            )
        if kind == "duplicate_row":
            return made("", "deduplicate", None, None)
        if kind == "column_count":
            return made("", "quarantine", len(self.writer.columns), None)
        return None
