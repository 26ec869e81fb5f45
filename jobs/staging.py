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
import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROW_NUMBER = "_row_number"
RAW = "_raw"
FIELD_COUNT = "_field_count"
# Row groups small enough that Spark reads one staged file with every core.
ROW_GROUP = 100_000
#: A CSV file is read this many bytes at a time, cut after a line end, so staging needs
#: memory for a block, not for the file.
BLOCK_BYTES = 4 << 20  # 1M persons' register: 300 MiB peak instead of 2.2 GiB, and faster
#: Encodings in which a newline byte is always a newline, never part of another character.
#: A byte-order mark, decoded: dropped at the start of a file, never data.
BOM = "\ufeff"
LINE_SAFE = frozenset({"utf-8", "gb18030", "gbk", "gb2312", "ascii"})
TRUNCATED = (
    "the last record has no line terminator: the file is truncated / "
    "文件不完整（最后一行缺少换行符），疑似传输中断"
)


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


def _decode(data: bytes, encoding: str, offset: int, line: int) -> str:
    """``data`` (the file's bytes from ``offset``, line ``line`` + 1 on) decoded strictly."""
    try:
        return data.decode(encoding, errors="strict")
    except UnicodeDecodeError as error:
        at = line + data[: error.start].count(b"\n") + 1
        raise UnreadableFile(
            f"not valid {encoding.upper()} at byte {offset + error.start} (line {at}): the file "
            f"is in another encoding than declared / 文件编码与声明的 {encoding.upper()} 不符"
        ) from None


def _blocks(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """The file's text in blocks of whole lines, each with the index of its first line.

    Only for encodings in ``LINE_SAFE``, where a newline byte never sits inside a character,
    so a block cut after one decodes on its own. Raises UnreadableFile as ``_decoded_text``.
    """
    offset, line, carry = 0, 0, b""
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(BLOCK_BYTES)
            data = carry + chunk
            if not chunk:
                if data:  # the last record has no line end: decode errors come first
                    _decode(data, encoding, offset, line)
                    raise UnreadableFile(TRUNCATED)
                return
            cut = data.rfind(b"\n") + 1
            block, carry = data[:cut], data[cut:]
            if block:
                text = _decode(block, encoding, offset, line)
                # Excel's "CSV UTF-8" starts with a byte-order mark: not part of the header.
                yield line, text.removeprefix(BOM) if offset == 0 else text
                offset += len(block)
                line += block.count(b"\n")


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
        raise UnreadableFile(TRUNCATED)
    return text.removeprefix(BOM)


def _csv_records(text: str, columns: list[str]):
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


def _jsonl_records(path: Path, columns: list[str], encoding: str):
    text = _decoded_text(path, encoding)
    expected = set(columns)
    # Records end at "\n" only: JSON strings may hold U+2028 and other line separators
    # unescaped, which ``str.splitlines`` would cut a record at.
    lines = text.split("\n")[:-1] if text else []
    for number, line in enumerate((line.removesuffix("\r") for line in lines), start=1):
        try:
            payload = json.loads(line)
        except json.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict) or set(payload) != expected:
            # Not an object with exactly the declared keys: recorded as a malformed record.
            yield number, line, []
            continue
        yield number, line, [None if payload[c] is None else str(payload[c]) for c in columns]


def _cell_text(value: Any, date_column: bool) -> str:
    """A cell as the text a CSV delivery would hold: ISO dates, no float noise on integers."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if date_column and value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _xlsx_records(path: Path, columns: list[str], types: dict[str, str]):
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
    dates = [types.get(c) == "date" for c in columns]
    for number, row in enumerate(rows, start=1):
        values = [_cell_text(v, i < len(dates) and dates[i]) for i, v in enumerate(row)]
        # Rows are as wide as the sheet's widest: a stray cell far right pads every row.
        while len(values) > len(columns) and values[-1] == "":
            values.pop()
        values += [""] * (len(columns) - len(values))  # Excel drops trailing empty cells
        yield number, "\t".join(values), values


def delivered_values(raw: str, fmt: str, columns: list[str]) -> dict[str, str | None] | None:
    """A staged record's values by column, split again from its raw text as delivered.

    ``fmt`` is the delivery format: CSV, JSON Lines, XLSX (cells joined by tabs), or a
    database table (a row pulled over JDBC is staged as a JSON object, ``jobs.jdbc``; a
    table exported to a landing folder is a CSV file). None when the text does not split
    into the declared columns (the malformed record it was quarantined as).
    """
    try:
        if fmt == "jsonl" or (fmt == "db_table" and raw.startswith("{")):
            payload = json.loads(raw)
            if not isinstance(payload, dict) or set(payload) != set(columns):
                return None
            return {c: None if payload[c] is None else str(payload[c]) for c in columns}
        cells = raw.split("\t") if fmt == "xlsx" else next(csv.reader([raw]))
    except (ValueError, StopIteration):
        return None
    if len(cells) != len(columns):
        return None
    return dict(zip(columns, cells, strict=True))


def _header(text: str, columns: list[str]) -> None:
    first = text.split("\n", 1)[0]
    header = next(csv.reader([first.rstrip("\r")]), None)
    if header is None:
        raise UnreadableFile("the file is empty / 文件为空")
    if header != columns:
        raise UnreadableFile(
            f"header {header[:5]}… does not match the contract's columns {columns[:5]}… / "
            "表头与资源目录声明的数据项不一致"
        )


def _csv_table_fast(text: str, columns: list[str]) -> pa.Table | None:
    """Parse with pyarrow when every record is one physical line; None when one is not.

    A line with an odd number of quote characters may continue a quoted value on the next
    line; those files take the exact record-by-record path. Otherwise record N is physical
    line N + 1, and pyarrow (serial, so it reports the line of each malformed row) parses
    the well-formed records in C++ while malformed ones keep their raw text and field count.
    """
    import pyarrow.compute as pc
    import pyarrow.csv as pv

    lines = text.split("\n")
    lines.pop()  # the text ends with a line terminator (checked on decode)
    if any(line.count('"') % 2 for line in lines if '"' in line):
        return None
    _header(text, columns)
    raw = pc.utf8_rtrim(pa.array(lines, pa.string()), characters="\r")
    # pyarrow numbers the non-empty lines it reads, from 1 (the header).
    nonempty = [index for index, line in enumerate(lines) if line.strip("\r")]
    malformed: dict[int, int] = {}  # physical line → field count

    def on_invalid(row: Any) -> str:
        malformed[nonempty[row.number - 1]] = row.actual_columns
        return "skip"

    try:
        parsed = pv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pv.ReadOptions(use_threads=False, block_size=1 << 24),
            parse_options=pv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pv.ConvertOptions(
                column_types={c: pa.string() for c in columns},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None  # something pyarrow will not parse: the exact path decides
    present = set(nonempty)
    empty = [index for index in range(1, len(lines)) if index not in present]
    good = [index for index in nonempty[1:] if index not in malformed]
    if parsed.num_rows != len(good):
        return None
    good_numbers = pa.array(good, pa.int64())
    well_formed = pa.table(
        {
            ROW_NUMBER: good_numbers,
            RAW: raw.take(good_numbers),
            FIELD_COUNT: pa.repeat(pa.scalar(len(columns), pa.int32()), len(good)),
            **{c: parsed.column(c).combine_chunks() for c in columns},
        }
    )
    # Blank lines have no fields; malformed lines keep their raw text and field count.
    others = sorted([(n, 0) for n in empty] + list(malformed.items()))
    other_numbers = pa.array([n for n, _ in others], pa.int64())
    bad = pa.table(
        {
            ROW_NUMBER: other_numbers,
            RAW: raw.take(other_numbers),
            FIELD_COUNT: pa.array([count for _, count in others], pa.int32()),
            **{c: pa.nulls(len(others), pa.string()) for c in columns},
        }
    )
    return pa.concat_tables([well_formed, bad]).sort_by(ROW_NUMBER)


def _stage_csv_blocks(
    path: Path, encoding: str, columns: list[str], target: Path
) -> StagedFile | None:
    """The fast path, block by block (``BLOCK_BYTES``); None when a block declines it.

    Each block after the first is parsed after the header line, and its record numbers are
    shifted to the file's. A decline (a quoted newline, say) leaves no staged file behind.
    """
    import pyarrow.compute as pc

    writer, header, records, done = None, None, 0, False
    pending: list[pa.Table] = []  # rows not written yet: row groups of ROW_GROUP rows

    def flush(last: bool) -> None:
        rows = pa.concat_tables(pending)
        pending.clear()
        while rows.num_rows >= ROW_GROUP or (last and rows.num_rows):
            writer.write_table(rows.slice(0, ROW_GROUP))  # type: ignore[union-attr]
            rows = rows.slice(ROW_GROUP)
        pending.append(rows)

    try:
        for first, text in _blocks(path, encoding):
            if header is None:
                header = text.split("\n", 1)[0]
                table, shift = _csv_table_fast(text, columns), 0
            else:
                table, shift = _csv_table_fast(header + "\n" + text, columns), first - 1
            if table is None:
                return None
            if shift:
                index = table.schema.get_field_index(ROW_NUMBER)
                table = table.set_column(index, ROW_NUMBER, pc.add(table[ROW_NUMBER], shift))
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            pending.append(table)
            flush(last=False)
            records += table.num_rows
        if writer is None:
            raise UnreadableFile("the file is empty / 文件为空")
        flush(last=True)
        done = True
    finally:
        if writer is not None:
            writer.close()
        if not done:
            target.unlink(missing_ok=True)
    return StagedFile(target, records, file_checksum(path))


def _readable(records: Iterator[tuple[int, str, list[str]]], fmt: str):
    """``records``, with a reader's failure part-way (a corrupt XLSX sheet) as UnreadableFile."""
    number = 0
    try:
        for number, raw, fields in records:
            yield number, raw, fields
    except UnreadableFile:
        raise
    except Exception as error:  # openpyxl reads sheets lazily and raises XML errors of any kind
        raise UnreadableFile(
            f"unreadable {fmt.upper()} content after record {number} ({error}) / 文件内容无法读取"
        ) from None


def stage(
    path: Path,
    fmt: str,
    encoding: str | None,
    columns: list[str],
    target: Path,
    types: dict[str, str] | None = None,
) -> StagedFile:
    """Parse ``path`` into a Parquet file of strings under ``target``; raise UnreadableFile.

    ``types``: each column's contract type, for cells that carry one (XLSX dates).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        encoding = encoding or "utf-8"
        line_safe = codecs.lookup(encoding).name in LINE_SAFE
        if line_safe:
            staged = _stage_csv_blocks(path, encoding, columns, target)
            if staged is not None:
                return staged
        text = _decoded_text(path, encoding)
        fast = None if line_safe else _csv_table_fast(text, columns)  # declined already
        if fast is not None:
            pq.write_table(fast, target, row_group_size=ROW_GROUP)
            return StagedFile(target, fast.num_rows, file_checksum(path))
        records = _csv_records(text, columns)
    elif fmt == "jsonl":
        records = _jsonl_records(path, columns, encoding or "utf-8")
    elif fmt == "xlsx":
        records = _xlsx_records(path, columns, types or {})
    else:
        raise UnreadableFile(f"unsupported delivery format {fmt!r}")
    numbers: list[int] = []
    raws: list[str] = []
    counts: list[int] = []
    values: list[list[str | None]] = [[] for _ in columns]
    for number, raw, fields in _readable(records, fmt):
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
    pq.write_table(pa.table(arrays), target, row_group_size=ROW_GROUP)
    return StagedFile(target, len(numbers), file_checksum(path))
