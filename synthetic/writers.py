"""Delivery writers: how departments really send data (CSV in UTF-8 or GB18030, JSON Lines,
XLSX, a table in their own PostgreSQL database). Output is byte-identical for one seed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

Row = dict[str, Any]
# Fixed timestamp for files inside XLSX archives, so the same seed gives the same bytes.
ZIP_TIMESTAMP = (2026, 1, 1, 0, 0, 0)


def text(value: Any) -> str:
    """The textual form a department system exports: ISO dates, empty for missing."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


class DeliveryWriter:
    """Writes one delivered file; counts data records (header excluded, 1-based)."""

    def __init__(self, path: Path, columns: list[str]):
        self.path = path
        self.columns = columns
        self.records = 0
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, row: Row) -> int:
        raise NotImplementedError

    def write_raw(self, values: list[str]) -> int:
        """A malformed record (wrong column count); only CSV can carry one."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class CsvWriter(DeliveryWriter):
    def __init__(self, path: Path, columns: list[str], encoding: str):
        super().__init__(path, columns)
        self.encoding = encoding
        self.handle = path.open("w", encoding=encoding, newline="")
        self.csv = csv.writer(self.handle, lineterminator="\r\n")
        self.csv.writerow(columns)

    def write(self, row: Row) -> int:
        self.csv.writerow([text(row.get(c)) for c in self.columns])
        self.records += 1
        return self.records

    def write_raw(self, values: list[str]) -> int:
        self.csv.writerow(values)
        self.records += 1
        return self.records

    def close(self) -> None:
        self.handle.close()


class JsonLinesWriter(DeliveryWriter):
    def __init__(self, path: Path, columns: list[str]):
        super().__init__(path, columns)
        self.handle = path.open("w", encoding="utf-8", newline="\n")

    def write(self, row: Row) -> int:
        payload = {c: (None if row.get(c) is None else text(row[c])) for c in self.columns}
        for column in self.columns:
            if isinstance(row.get(column), int | float | Decimal) and not isinstance(
                row.get(column), bool
            ):
                payload[column] = (
                    row[column] if not isinstance(row[column], Decimal) else float(row[column])
                )
        self.handle.write(json.dumps(payload, ensure_ascii=False) + "\n")
        self.records += 1
        return self.records

    def close(self) -> None:
        self.handle.close()


class XlsxWriter(DeliveryWriter):
    """Small resources only: openpyxl write-only mode, dates as text like most exports."""

    def __init__(self, path: Path, columns: list[str]):
        super().__init__(path, columns)
        from openpyxl import Workbook

        self.workbook = Workbook(write_only=True)
        fixed = dt.datetime(2026, 1, 1)
        self.workbook.properties.created = fixed
        self.workbook.properties.modified = fixed
        self.sheet = self.workbook.create_sheet("data")
        self.sheet.append(columns)

    def write(self, row: Row) -> int:
        self.sheet.append(
            [text(row.get(c)) if row.get(c) is not None else None for c in self.columns]
        )
        self.records += 1
        return self.records

    def close(self) -> None:
        buffer = io.BytesIO()
        self.workbook.save(buffer)
        # Rewrite the archive with fixed entry timestamps: openpyxl stamps the current time.
        with (
            zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source,
            zipfile.ZipFile(self.path, "w", zipfile.ZIP_DEFLATED) as target,
        ):
            for entry in source.infolist():
                info = zipfile.ZipInfo(entry.filename, date_time=ZIP_TIMESTAMP)
                info.compress_type = zipfile.ZIP_DEFLATED
                data = source.read(entry.filename)
                if entry.filename == "docProps/core.xml":
                    # openpyxl sets "modified" to the time of saving, whatever we asked.
                    data = re.sub(
                        rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                        rb"\g<1>2026-01-01T00:00:00Z\g<2>",
                        data,
                    )
                target.writestr(info, data)


class PostgresTableWriter(DeliveryWriter):
    """A department's own database table (e.g. 人社's insurance system), loaded with COPY."""

    def __init__(
        self,
        path: Path,
        columns: list[str],
        url: str,
        schema: str,
        table: str,
        types: dict[str, str],
        replace: bool,
    ):
        self.path = path
        self.columns = columns
        self.records = 0
        import psycopg

        self.connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        self.table = f'"{schema}"."{table}"'
        sql_types = {
            "string": "text",
            "integer": "bigint",
            "decimal": "numeric",
            "date": "date",
            "timestamp": "timestamp",
            "boolean": "boolean",
            "geometry_wkt": "text",
        }
        with self.connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            definition = ", ".join(f'"{c}" {sql_types[types[c]]}' for c in columns)
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.table} ({definition})")
            if replace:
                cursor.execute(f"TRUNCATE {self.table}")
        names = ", ".join(f'"{c}"' for c in columns)
        self.cursor = self.connection.cursor()
        self.copy_context = self.cursor.copy(f"COPY {self.table} ({names}) FROM STDIN")
        self.copy = self.copy_context.__enter__()

    def write(self, row: Row) -> int:
        self.copy.write_row([row.get(c) for c in self.columns])
        self.records += 1
        return self.records

    def close(self) -> None:
        self.copy_context.__exit__(None, None, None)
        self.connection.commit()
        self.connection.close()
