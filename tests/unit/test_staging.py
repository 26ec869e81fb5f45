"""Staging: the pyarrow fast path and the exact record-by-record path agree on every file."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs import staging
from jobs.staging import FIELD_COUNT, RAW, ROW_NUMBER, UnreadableFile, stage

COLUMNS = ["id", "name", "address"]


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _exact(monkeypatch: pytest.MonkeyPatch, text: str, tmp_path: Path) -> list[dict]:
    source = tmp_path / "in.csv"
    source.write_bytes(text.encode("gb18030"))
    monkeypatch.setattr(staging, "_csv_table_fast", lambda text, columns: None)
    stage(source, "csv", "gb18030", COLUMNS, tmp_path / "exact.parquet")
    monkeypatch.undo()
    return _rows(tmp_path / "exact.parquet")


def _fast(text: str, tmp_path: Path) -> list[dict]:
    source = tmp_path / "in.csv"
    source.write_bytes(text.encode("gb18030"))
    assert staging._csv_table_fast(text, COLUMNS) is not None, "fast path declined"
    stage(source, "csv", "gb18030", COLUMNS, tmp_path / "fast.parquet")
    return _rows(tmp_path / "fast.parquet")


MESSY = (
    "id,name,address\r\n"
    "1,张三,武汉市江岸区\r\n"
    "2,李四\r\n"  # a field short
    "\r\n"  # a blank line
    '3,"王,五","黄石市""下陆区"""\r\n'  # quoted delimiter and doubled quotes
    "4,赵六,宜昌市,多余\r\n"  # a field too many
    "5,,\r\n"  # empty values
    "\n"
    "6,孙七,十堰市\n"
)


def test_fast_path_matches_exact_path_on_messy_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = _exact(monkeypatch, MESSY, tmp_path)
    assert _fast(MESSY, tmp_path) == exact
    # Expected values written out by hand, not produced by either path.
    by_number = {row[ROW_NUMBER]: row for row in exact}
    assert sorted(by_number) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert by_number[1]["name"] == "张三" and by_number[1][FIELD_COUNT] == 3
    assert by_number[2][FIELD_COUNT] == 2 and by_number[2]["id"] is None
    assert by_number[2][RAW] == "2,李四"
    assert by_number[3][FIELD_COUNT] == 0 and by_number[3][RAW] == ""
    assert by_number[4]["name"] == "王,五" and by_number[4]["address"] == '黄石市"下陆区"'
    assert by_number[5][FIELD_COUNT] == 4 and by_number[5][RAW] == "4,赵六,宜昌市,多余"
    assert by_number[6]["name"] == "" and by_number[6][FIELD_COUNT] == 3
    assert by_number[8]["address"] == "十堰市"


def test_quoted_newline_takes_the_exact_path(tmp_path: Path) -> None:
    text = 'id,name,address\n1,"多行\n地址",x\n2,b,c\n'
    assert staging._csv_table_fast(text, COLUMNS) is None
    source = tmp_path / "in.csv"
    source.write_bytes(text.encode("utf-8"))
    stage(source, "csv", "utf-8", COLUMNS, tmp_path / "out.parquet")
    rows = _rows(tmp_path / "out.parquet")
    assert [(r[ROW_NUMBER], r["name"], r[RAW]) for r in rows] == [
        (1, "多行\n地址", '1,"多行\n地址",x'),
        (2, "b", "2,b,c"),
    ]


def test_header_mismatch_fails_the_file(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,nom,address\n1,a,b\n")
    with pytest.raises(UnreadableFile, match="header"):
        stage(source, "csv", "utf-8", COLUMNS, tmp_path / "out.parquet")


def test_wrong_encoding_and_truncation_fail_the_file(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes("id,name,address\n1,张三,武汉\n".encode("gb18030"))
    with pytest.raises(UnreadableFile, match="UTF-8"):
        stage(source, "csv", "utf-8", COLUMNS, tmp_path / "out.parquet")
    source.write_bytes("id,name,address\n1,张三,武".encode())
    with pytest.raises(UnreadableFile, match="truncated"):
        stage(source, "csv", "utf-8", COLUMNS, tmp_path / "out.parquet")


def test_a_file_read_in_small_blocks_stages_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks shorter than a line (carried over) and a line end on a block's last byte."""
    exact = _exact(monkeypatch, MESSY, tmp_path)
    for size in (7, 16, 23, 64):
        monkeypatch.setattr(staging, "BLOCK_BYTES", size)
        assert _fast(MESSY, tmp_path) == exact, size


def test_an_undecodable_byte_in_a_later_block_is_named_by_its_offset_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.csv"
    good = b"id,name,address\n1,a,b\n2,c,d\n"
    source.write_bytes(good + b"3,\xff,e\n4,f,g\n")
    monkeypatch.setattr(staging, "BLOCK_BYTES", 8)
    # The 0xff follows 16 + 6 + 6 bytes of three lines and "3,": byte 30 from 0, on line 4.
    with pytest.raises(UnreadableFile, match=r"at byte 30 \(line 4\)"):
        stage(source, "csv", "utf-8", COLUMNS, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    source.write_bytes(good + b"3,e")
    with pytest.raises(UnreadableFile, match="truncated"):
        stage(source, "csv", "utf-8", COLUMNS, tmp_path / "out.parquet")
    source.write_bytes(b"")
    with pytest.raises(UnreadableFile, match="empty"):
        stage(source, "csv", "utf-8", COLUMNS, tmp_path / "out.parquet")


def test_a_byte_order_mark_is_not_part_of_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Excel's "CSV UTF-8" export starts with U+FEFF; both CSV paths and JSON Lines drop it."""
    source = tmp_path / "in.csv"
    source.write_bytes("\ufeffid,name,address\n1,张三,武汉\n".encode())
    stage(source, "csv", "utf-8", COLUMNS, tmp_path / "fast.parquet")
    monkeypatch.setattr(staging, "_stage_csv_blocks", lambda *args: None)
    monkeypatch.setattr(staging, "_csv_table_fast", lambda text, columns: None)
    stage(source, "csv", "utf-8", COLUMNS, tmp_path / "exact.parquet")
    for staged in ("fast.parquet", "exact.parquet"):
        [row] = _rows(tmp_path / staged)
        assert (row["id"], row["name"], row["address"]) == ("1", "张三", "武汉"), staged
    lines = tmp_path / "in.jsonl"
    lines.write_bytes('\ufeff{"id": "1", "name": "张三", "address": "武汉"}\n'.encode())
    [row] = _rows(stage(lines, "jsonl", None, COLUMNS, tmp_path / "lines.parquet").path)
    assert (row[ROW_NUMBER], row["id"], row[FIELD_COUNT]) == (1, "1", 3)


def test_json_lines_end_at_a_newline_only(tmp_path: Path) -> None:
    """U+2028 inside a JSON string is data; a CRLF line end and a declared encoding count."""
    source = tmp_path / "in.jsonl"
    text = (
        '{"id": "1", "name": "张\u2028三", "address": "武汉"}\r\n'
        "not json\n"
        '{"id": "3", "name": "李\u0085四", "address": "黄石"}\n'
    )
    source.write_bytes(text.encode("gb18030"))
    rows = _rows(stage(source, "jsonl", "gb18030", COLUMNS, tmp_path / "out.parquet").path)
    assert [(r[ROW_NUMBER], r["name"], r[FIELD_COUNT]) for r in rows] == [
        (1, "张\u2028三", 3), (2, None, 0), (3, "李\u0085四", 3)
    ]  # fmt: skip
    assert rows[1][RAW] == "not json"


def test_excel_dates_and_stray_cells_read_as_a_csv_delivery_would(tmp_path: Path) -> None:
    """Date cells become ISO text by the column's type; empty cells right of the data go."""
    import datetime as dt

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["id", "born", "seen"])
    sheet.append(["1", dt.datetime(2020, 1, 5), dt.datetime(2020, 1, 5, 9, 30)])
    sheet.append(["2", dt.date(2021, 3, 4), dt.datetime(2021, 3, 4)])
    sheet.cell(row=3, column=8, value=None).value = ""  # a stray (empty) cell widens every row
    sheet.cell(row=1, column=9).value = None
    sheet.cell(row=4, column=7).value = " "
    book.save(tmp_path / "in.xlsx")
    types = {"id": "string", "born": "date", "seen": "timestamp"}
    staged = stage(tmp_path / "in.xlsx", "xlsx", None, ["id", "born", "seen"],
                   tmp_path / "out.parquet", types)  # fmt: skip
    rows = [(r["id"], r["born"], r["seen"], r[FIELD_COUNT]) for r in _rows(staged.path)]
    assert rows[:2] == [
        ("1", "2020-01-05", "2020-01-05 09:30:00", 3),
        ("2", "2021-03-04", "2021-03-04 00:00:00", 3),
    ]
    # A row with a value outside the declared columns keeps it: a malformed record.
    assert rows[2][3] == 7 and rows[2][0] is None


def test_an_unreadable_sheet_part_way_fails_the_file(tmp_path: Path) -> None:
    import zipfile

    from openpyxl import Workbook

    book = Workbook()
    book.active.append(COLUMNS)
    for number in range(50):
        book.active.append([str(number), "名", "址"])
    book.save(tmp_path / "good.xlsx")
    # The sheet's XML cut in the middle of its rows, the archive otherwise intact.
    with (
        zipfile.ZipFile(tmp_path / "good.xlsx") as good,
        zipfile.ZipFile(tmp_path / "bad.xlsx", "w") as bad,
    ):
        for item in good.infolist():
            data = good.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]
            bad.writestr(item, data)
    with pytest.raises(UnreadableFile, match="XLSX"):
        stage(tmp_path / "bad.xlsx", "xlsx", None, COLUMNS, tmp_path / "out.parquet")


def test_a_staged_records_raw_text_splits_back_into_its_values(tmp_path: Path) -> None:
    """What a quarantined row still says: its raw text, split as its format was."""
    import json

    from openpyxl import Workbook

    from jobs.staging import delivered_values

    (tmp_path / "in.csv").write_text('id,name,address\n1,"王,五",武汉\n2,李四\n', "utf-8")
    (tmp_path / "in.jsonl").write_text(
        json.dumps({"id": 1, "name": "张三", "address": None}, ensure_ascii=False) + "\n", "utf-8"
    )
    book = Workbook()
    book.active.append(COLUMNS)
    book.active.append(["7", "赵六", "宜昌"])
    book.save(tmp_path / "in.xlsx")
    staged = {
        fmt: _rows(stage(tmp_path / f"in.{fmt}", fmt, "utf-8" if fmt != "xlsx" else None,
                         COLUMNS, tmp_path / f"{fmt}.parquet").path)
        for fmt in ("csv", "jsonl", "xlsx")
    }  # fmt: skip
    split = {fmt: [delivered_values(r[RAW], fmt, COLUMNS) for r in rows]
             for fmt, rows in staged.items()}  # fmt: skip
    assert split == {
        "csv": [{"id": "1", "name": "王,五", "address": "武汉"}, None],  # the short row
        "jsonl": [{"id": "1", "name": "张三", "address": None}],
        "xlsx": [{"id": "7", "name": "赵六", "address": "宜昌"}],
    }
    # A database table's row pulled over JDBC is staged as JSON; exported, as CSV.
    assert delivered_values('{"id": "9", "name": "钱", "address": ""}', "db_table", COLUMNS) == {
        "id": "9", "name": "钱", "address": ""
    }  # fmt: skip
    exported = delivered_values("9,钱,", "db_table", COLUMNS)
    assert exported == {"id": "9", "name": "钱", "address": ""}
