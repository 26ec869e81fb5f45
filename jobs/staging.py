"""Reading a delivered file exactly as the department sent it.

Each file is decoded strictly with its declared encoding (a file that does not decode, or
that ends in the middle of a record, fails as a whole with a clear reason) and split into
records with their 1-based record number, the raw text and the field count. The result is
an Arrow table of strings that Spark reads for validation: the parse is exact (quoting,
row numbers, raw text) and the heavy work stays in Spark.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROW_NUMBER = "_row_number"
RAW = "_raw"
FIELD_COUNT = "_field_count"


class UnreadableFile(Exception):
    """The whole file cannot be read as declared; the message says why."""


@dataclass(frozen=True)
class StagedFile:
    path: Path  # the Parquet staging file
    records: int
    sha256: str


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decoded_text(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        text = decoder.decode(data, final=True)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UnreadableFile(
            f"not valid {encoding.upper()} at byte {error.start} (line {line}): the file is "
            f"in another encoding than declared / 文件编码与声明的 {encoding.upper()} 不符"
        ) from None
    if text and not text.endswith("\n"):
        raise UnreadableFile(
            "the last record has no line terminator: the file is truncated / "
            "文件不完整（最后一行缺少换行符），疑似传输中断"
        )
    return text


def _csv_records(path: Path, encoding: str, columns: list[str]):
    text = _decoded_text(path, encoding)
    lines = text.split("\n")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UnreadableFile("the file is empty / 文件为空") from None
    if header != columns:
        raise UnreadableFile(
            f"header {header[:5]}… does not match the contract's columns {columns[:5]}… / "
            "表头与资源目录声明的数据项不一致"
        )
    consumed = reader.line_num
    for number, fields in enumerate(reader, start=1):
        # The raw text is every physical line this record spans (quoted newlines included).
        raw = "\n".join(line.rstrip("\r") for line in lines[consumed : reader.line_num])
        consumed = reader.line_num
        yield number, raw, fields


def _jsonl_records(path: Path, columns: list[str]):
    text = _decoded_text(path, "utf-8")
    expected = set(columns)
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            payload = json.loads(line)
        except json.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict) or set(payload) != expected:
            # Not an object with exactly the declared keys: recorded as a malformed record.
            yield number, line, []
            continue
        yield number, line, [None if payload[c] is None else str(payload[c]) for c in columns]


def _xlsx_records(path: Path, columns: list[str]):
    from openpyxl import load_workbook

    try:
        sheet = load_workbook(path, read_only=True).active
    except Exception as error:  # openpyxl raises zipfile/XML errors of many kinds
        raise UnreadableFile(
            f"not a readable XLSX workbook ({error}) / 无法读取的 Excel 文件"
        ) from None
    rows = sheet.iter_rows(values_only=True)
    header = [str(v) for v in next(rows, ()) if v is not None]
    if header != columns:
        raise UnreadableFile(f"header {header[:5]}… does not match the contract / 表头与声明不一致")
    for number, row in enumerate(rows, start=1):
        values = ["" if v is None else str(v) for v in row]
        values += [""] * (len(columns) - len(values))  # Excel drops trailing empty cells
        yield number, "\t".join(values), values


def stage(
    path: Path, fmt: str, encoding: str | None, columns: list[str], target: Path
) -> StagedFile:
    """Parse ``path`` into a Parquet file of strings under ``target``; raise UnreadableFile."""
    if fmt == "csv":
        records = _csv_records(path, encoding or "utf-8", columns)
    elif fmt == "jsonl":
        records = _jsonl_records(path, columns)
    elif fmt == "xlsx":
        records = _xlsx_records(path, columns)
    else:
        raise UnreadableFile(f"unsupported delivery format {fmt!r}")
    numbers: list[int] = []
    raws: list[str] = []
    counts: list[int] = []
    values: list[list[str | None]] = [[] for _ in columns]
    for number, raw, fields in records:
        numbers.append(number)
        raws.append(raw)
        counts.append(len(fields))
        for index in range(len(columns)):
            values[index].append(
                fields[index] if index < len(fields) and len(fields) == len(columns) else None
            )
    arrays = {
        ROW_NUMBER: pa.array(numbers, pa.int64()),
        RAW: pa.array(raws, pa.string()),
        FIELD_COUNT: pa.array(counts, pa.int32()),
    }
    for column, column_values in zip(columns, values, strict=True):
        arrays[column] = pa.array(column_values, pa.string())
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), target)
    return StagedFile(target, len(numbers), file_checksum(path))
