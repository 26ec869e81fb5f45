"""Quarantine reports: every rejected row and why, per department, ready to send back.

The providing department answers for its data (谁提供、谁负责) and corrects what the platform
refused. For every department whose deliveries had rows rejected at ingest
(``quarantine.rejected_row``) or files that could not be read at all (``failed`` in
``ops.ingest_ledger``), :func:`write_reports` writes under ``out_dir``::

    <department>/quarantine.csv   one line per (rejected row, rule broken), reasons in
                                  Chinese and English, and the raw record as delivered
    <department>/index.html       a self-contained summary page
    index.html                    the departments, with links

Spark reads, filters and aggregates. The driver receives only the latest ledger attempt
of each file, the counts per rule, at most :data:`SAMPLE_ROWS` rows per resource for the
pages, and the CSV lines, which are streamed (``toLocalIterator``) one partition at a time.
Rendering (:func:`write_csv`, :func:`render_department_page`, :func:`render_index`) is pure:
it takes plain lists and dicts, so it is tested without Spark.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from datong import tables
from datong.contracts import load_departments, load_resources
from datong.settings import Settings
from jobs.ingest import LEDGER, QUARANTINE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Rejected rows shown on a department's page per resource; the CSV has them all.
SAMPLE_ROWS = 50

#: Excel (on a Chinese Windows above all) opens a CSV without a byte order mark in the
#: system's ANSI code page (GBK), which turns UTF-8 Chinese into mojibake; with the BOM it
#: reads the file as UTF-8. Python (utf-8-sig), pandas and LibreOffice accept the BOM too.
BOM = "\ufeff"

#: CSV columns: key in the row dicts, header (Chinese and English).
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("department", "部门代码 department"),
    ("department_zh", "部门名称 department name"),
    ("resource", "资源 resource"),
    ("file", "文件 file"),
    ("batch_id", "批次 batch"),
    ("row_number", "记录序号 record number"),
    ("field", "数据项 field"),
    ("field_zh", "数据项名称 field name"),
    ("rule_id", "规则 rule"),
    ("reason_zh", "原因"),
    ("reason_en", "reason"),
    ("raw", "原始记录 raw record"),
)

#: A cell starting with one of these is a formula to Excel (CSV injection): such cells get a
#: leading apostrophe, so the department's spreadsheet shows the text and runs nothing.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

WHOLE_RECORD = "*"  # the field of a rule about the whole record (INGEST-001)
STATUS_ZH = {"succeeded": "已接收 received", "failed": "读取失败 failed"}


# -- pure rendering ------------------------------------------------------------------------


def excel_safe(value: Any) -> str:
    """The cell text, with a leading apostrophe when Excel would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def write_csv(handle: IO[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """BOM, header and one line per row (keys of :data:`CSV_COLUMNS`); returns the lines.

    ``handle`` must be opened with ``encoding="utf-8", newline=""``.
    """
    handle.write(BOM)
    writer = csv.writer(handle)
    writer.writerow([header for _, header in CSV_COLUMNS])
    count = 0
    for row in rows:
        writer.writerow([excel_safe(row.get(key)) for key, _ in CSV_COLUMNS])
        count += 1
    return count


def field_label(field: str | None, title_zh: str | None = None) -> str:
    """``name（姓名）``, or what a whole-record rule names instead of a field."""
    if not field or field == WHOLE_RECORD:
        return "整条记录 whole record"
    return f"{field}（{title_zh}）" if title_zh else field


def department_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """Totals of one department's report, for the index page."""
    resources = report["resources"]
    files = [f for r in resources for f in r["files"]]
    return {
        "code": report["code"],
        "name_zh": report["name_zh"],
        "files": len(files),
        "failed": sum(1 for f in files if f["status"] == "failed"),
        "rejected": sum(r["rejected"] for r in resources),
        "problems": sum(rule["count"] for r in resources for rule in r["rules"]),
    }


_STYLE = """
body{font-family:"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;margin:2em;
color:#222;line-height:1.5}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0 1em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#555}.failed{color:#a00}.en{color:#555}
pre{margin:0;white-space:pre-wrap;word-break:break-all;font-size:.9em}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _number(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def _counted(file: Mapping[str, Any], key: str) -> str:
    """A ledger count; a file that could not be read has none."""
    return "—" if file["status"] == "failed" else _number(file[key])


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    """A table from already escaped cells; columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>\n"
        for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{body}</body>\n</html>\n"
    )


def _scope(batch_id: str | None, generated_at: dt.datetime) -> str:
    batch = _e(batch_id) if batch_id else "全部批次 all batches"
    when = _e(generated_at.isoformat(sep=" ", timespec="seconds"))
    return f"批次 Batch：{batch} · 生成时间 Generated：{when}"


def _resource_section(resource: Mapping[str, Any]) -> str:
    parts = [f"<h2>{_e(resource['title_zh'])} <code>{_e(resource['resource'])}</code></h2>\n"]
    files = resource["files"]
    parts.append(f"<p>收到文件 Files received：{len(files)}</p>\n")
    if files:
        parts.append(
            _table(
                [
                    "文件 File",
                    "批次 Batch",
                    "状态 Status",
                    "读取 Read",
                    "接收 Accepted",
                    "隔离 Quarantined",
                ],
                (
                    [
                        f"<code>{_e(f['file'])}</code>",
                        _e(f["batch_id"]),
                        _e(STATUS_ZH.get(f["status"], f["status"])),
                        _counted(f, "rows_read"),
                        _counted(f, "accepted"),
                        _counted(f, "quarantined"),
                    ]
                    for f in files
                ),
                numeric={3, 4, 5},
            )
        )
    failed = [f for f in files if f["status"] == "failed"]
    if failed:
        parts.append(
            '<h3 class="failed">无法读取的文件 Files that could not be read</h3>\n'
            "<p>整个文件未入库，请修正后重新报送。The whole file was refused: please correct "
            "it and deliver it again.</p>\n<ul>\n"
        )
        parts += [
            f'<li class="failed"><code>{_e(f["file"])}</code>：{_e(f["error"])}</li>\n'
            for f in failed
        ]
        parts.append("</ul>\n")
    if resource["rules"]:
        parts.append("<h3>问题统计 Problems by rule</h3>\n")
        parts.append(
            _table(
                ["规则 Rule", "数据项 Field", "记录数 Rows", "原因", "Reason"],
                (
                    [
                        _e(r["rule_id"]),
                        _e(field_label(r["field"], r.get("field_zh"))),
                        _number(r["count"]),
                        _e(r["reason_zh"]),
                        f'<span class="en">{_e(r["reason_en"])}</span>',
                    ]
                    for r in resource["rules"]
                ),
                numeric={2},
            )
        )
    sample = resource["sample"]
    if sample:
        shown = f"前 {len(sample)} 条，共 {_number(resource['rejected'])} 条"
        parts.append(
            f"<h3>被拒记录 Rejected rows（{shown} · first {len(sample)} of "
            f"{_number(resource['rejected'])}）</h3>\n"
        )
        parts.append(
            _table(
                ["文件 File", "记录序号 Record", "问题 Problems", "原始记录 Raw record"],
                (
                    [
                        f"<code>{_e(row['file'])}</code>",
                        _number(row["row_number"]),
                        "<br>".join(
                            f"{_e(p['rule_id'])} {_e(field_label(p['field'], p.get('field_zh')))}"
                            for p in row["problems"]
                        ),
                        f"<pre>{_e(row['raw'])}</pre>",
                    ]
                    for row in sample
                ),
                numeric={1},
            )
        )
    return "".join(parts)


def render_department_page(report: Mapping[str, Any], generated_at: dt.datetime) -> str:
    """One department's summary page: self-contained HTML, every value escaped.

    ``report``: ``code``, ``name_zh``, ``org_code``, ``batch_id`` and ``resources``, each a
    dict with ``resource``, ``title_zh``, ``files`` (ledger rows: ``file``, ``batch_id``,
    ``status``, ``rows_read``, ``accepted``, ``quarantined``, ``error``), ``rules``
    (``rule_id``, ``field``, ``field_zh``, ``count``, ``reason_zh``, ``reason_en``),
    ``rejected`` (rows quarantined) and ``sample`` (``file``, ``batch_id``, ``row_number``,
    ``problems``: [{``rule_id``, ``field``, ``field_zh``}], ``raw``).
    """
    name = report["name_zh"]
    totals = department_summary(report)
    org = f"（{_e(report['org_code'])}）" if report.get("org_code") else ""
    body = [
        f"<h1>{_e(name)} 数据质量问题反馈 <small>Quarantine report</small></h1>\n",
        f'<p class="meta">部门 Department：{_e(name)} <code>{_e(report["code"])}</code>{org}'
        f" · {_scope(report.get('batch_id'), generated_at)}</p>\n",
        "<p>以下记录未通过入库校验，已隔离，未进入数据库。请逐条核对更正，并在下一批次重新报送。"
        "记录序号为文件中的第几条数据记录（不含表头，从 1 起）。"
        '完整清单（每条记录的每个问题一行）见 <a href="quarantine.csv">quarantine.csv</a>。</p>\n'
        '<p class="en">The rows below failed the ingest checks and were held back. Please '
        "correct them and deliver them again in the next batch. The record number counts data "
        "records in the file from 1, header excluded. The full list, one line per row and "
        'problem, is in <a href="quarantine.csv">quarantine.csv</a>.</p>\n',
        f"<p>收到文件 Files：{totals['files']} · 读取失败 Failed：{totals['failed']} · "
        f"被拒记录 Rejected rows：{_number(totals['rejected'])}</p>\n",
    ]
    body += [_resource_section(resource) for resource in report["resources"]]
    return _page(f"{name} 数据质量问题反馈 Quarantine report", "".join(body))


def render_index(
    departments: Sequence[Mapping[str, Any]],
    generated_at: dt.datetime,
    batch_id: str | None = None,
    clean: Sequence[Mapping[str, str]] = (),
) -> str:
    """The list of department reports (:func:`department_summary` dicts), with links.

    ``clean``: departments (``code``, ``name_zh``) whose files all passed: nothing to send.
    """
    rows = (
        [
            f'<a href="{_e(d["code"])}/index.html">{_e(d["name_zh"])}</a>',
            f"<code>{_e(d['code'])}</code>",
            _number(d["files"]),
            _number(d["failed"]),
            _number(d["rejected"]),
            _number(d["problems"]),
            f'<a href="{_e(d["code"])}/quarantine.csv">CSV</a>',
        ]
        for d in departments
    )
    body = [
        "<h1>数据质量问题反馈 <small>Quarantine reports by department</small></h1>\n",
        f'<p class="meta">{_scope(batch_id, generated_at)}</p>\n',
    ]
    if departments:
        body.append(
            _table(
                [
                    "部门 Department",
                    "代码 Code",
                    "文件 Files",
                    "读取失败 Failed",
                    "被拒记录 Rows",
                    "问题 Problems",
                    "清单 List",
                ],
                rows,
                numeric={2, 3, 4, 5},
            )
        )
    else:
        body.append("<p>没有需要退回的问题。Nothing to send back.</p>\n")
    if clean:
        names = "、".join(f"{_e(d['name_zh'])} <code>{_e(d['code'])}</code>" for d in clean)
        body.append(f"<p>文件全部通过校验 All files passed：{names}</p>\n")
    return _page("数据质量问题反馈 Quarantine reports", "".join(body))


# -- reading the lake ----------------------------------------------------------------------


def _field_zh(titles: Mapping[tuple[str, str], str], resource: str, field: str) -> str:
    if field == WHOLE_RECORD:
        return field_label(field)
    return titles.get((resource, field), "")


def _department_of(source_id: str) -> str:
    return source_id.split(".", 1)[0]  # source ids are <department>.<table>


def _latest_attempts(
    spark: SparkSession, settings: Settings, batch_id: str | None
) -> list[dict[str, Any]]:
    """The ledger's latest attempt at each file: a file that failed, then passed, passed."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, LEDGER):
        return []
    ledger = tables.read(spark, settings, LEDGER).where(F.col("status") != "skipped")
    if batch_id is not None:
        ledger = ledger.where(F.col("batch_id") == batch_id)
    latest = Window.partitionBy("source_id", "file").orderBy(
        F.col("started_at").desc_nulls_last(), F.col("finished_at").desc_nulls_last()
    )
    rows = (
        ledger.withColumn("_attempt", F.row_number().over(latest))
        .where(F.col("_attempt") == 1)
        .select(
            "source_id",
            "resource",
            "batch_id",
            "file",
            "status",
            "rows_read",
            "accepted",
            "quarantined",
            "error",
        )
        .orderBy("source_id", "batch_id", "file")
        .collect()
    )
    return [row.asDict() for row in rows]


QUARANTINE_COLUMNS = ("_source_id", "_resource", "_source_file", "_batch_id", "_row_number",
                      "_raw", "problems", "_ingested_at")  # fmt: skip


def _rejected(spark: SparkSession, settings: Settings, batch_id: str | None) -> DataFrame | None:
    from pyspark.sql import functions as F

    from jobs.quality import REJECTED

    # Rows ingest rejected and bronze rows the quality suite rejected (a business rule):
    # both are the department's to correct. Gold tables' failures are the platform's.
    parts = [tables.read(spark, settings, name) for name in (QUARANTINE, REJECTED)
             if tables.exists(spark, settings, name)]  # fmt: skip
    if not parts:
        return None
    frame = parts[0].select(*QUARANTINE_COLUMNS)
    for part in parts[1:]:
        frame = frame.unionByName(
            part.where(F.col("_resource").startswith("bronze.")).select(*QUARANTINE_COLUMNS)
        )
    if batch_id is not None:
        frame = frame.where(F.col("_batch_id") == batch_id)
    return frame.withColumn("_department", F.substring_index("_source_id", ".", 1))


def _summarise(
    rejected: DataFrame, titles: Mapping[tuple[str, str], str]
) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, list[dict[str, Any]]]]:
    """Counts per rule, rejected rows per resource and the first rows of each resource."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    problems = rejected.select("_department", "_resource", F.explode("problems").alias("p"))
    rules = [
        row.asDict()
        for row in problems.groupBy(
            "_department", "_resource", "p.rule_id", "p.field", "p.reason_zh", "p.reason_en"
        )
        .agg(F.count(F.lit(1)).alias("count"))
        .orderBy("_department", "_resource", F.desc("count"), "rule_id", "field")
        .collect()
    ]
    counted = rejected.groupBy("_resource").count().collect()
    row_counts = {row["_resource"]: row["count"] for row in counted}
    first = Window.partitionBy("_resource").orderBy("_batch_id", "_source_file", "_row_number")
    samples: dict[str, list[dict[str, Any]]] = {}
    for row in (
        rejected.withColumn("_n", F.row_number().over(first))
        .where(F.col("_n") <= SAMPLE_ROWS)
        .orderBy("_resource", "_n")
        .collect()
    ):
        samples.setdefault(row["_resource"], []).append(
            {
                "file": row["_source_file"],
                "batch_id": row["_batch_id"],
                "row_number": row["_row_number"],
                "problems": [
                    {**p.asDict(), "field_zh": titles.get((row["_resource"], p["field"]))}
                    for p in row["problems"]
                ],
                "raw": row["_raw"],
            }
        )
    return rules, row_counts, samples


def _department_reports(
    files: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    row_counts: Mapping[str, int],
    samples: Mapping[str, list[dict[str, Any]]],
    batch_id: str | None,
    titles: Mapping[tuple[str, str], str],
) -> dict[str, dict[str, Any]]:
    """The report of every department with rejected rows or failed files, by code."""
    departments = load_departments()
    resources = load_resources()
    reported = {rule["_department"] for rule in rules} | {
        _department_of(f["source_id"]) for f in files if f["status"] == "failed"
    }
    reports: dict[str, dict[str, Any]] = {}
    for code in sorted(reported):
        department = departments.get(code)
        names = sorted(
            {f["resource"] for f in files if _department_of(f["source_id"]) == code}
            | {r["_resource"] for r in rules if r["_department"] == code}
        )
        reports[code] = {
            "code": code,
            "name_zh": department.name_zh if department else code,
            "org_code": department.org_code if department else "",
            "batch_id": batch_id,
            "resources": [
                {
                    "resource": name,
                    "title_zh": resources[name].title_zh if name in resources else name,
                    "files": [f for f in files if f["resource"] == name],
                    "rules": [
                        {
                            **{k: v for k, v in r.items() if not k.startswith("_")},
                            "field_zh": titles.get((name, r["field"])),
                        }
                        for r in rules
                        if r["_resource"] == name
                    ],
                    "rejected": row_counts.get(name, 0),
                    "sample": samples.get(name, []),
                }
                for name in names
            ],
        }
    return reports


def write_reports(
    spark: SparkSession,
    settings: Settings,
    out_dir: Path,
    batch_id: str | None = None,
) -> dict[str, Path]:
    """Write the reports of ``batch_id`` (default: every batch) under ``out_dir``.

    Returns department code → its folder (``quarantine.csv`` and ``index.html``), for every
    department with rejected rows or failed files; ``out_dir/index.html`` lists them.
    """
    generated_at = dt.datetime.now().astimezone()
    titles = {(r.name, e.name): e.title_zh for r in load_resources().values() for e in r.elements}
    files = _latest_attempts(spark, settings, batch_id)
    rejected = _rejected(spark, settings, batch_id)
    if rejected is not None:
        rejected = rejected.persist()  # read four times: rules, row counts, sample, CSV
    try:
        rules, row_counts, samples = (
            ([], {}, {}) if rejected is None else _summarise(rejected, titles)
        )
        reports = _department_reports(files, rules, row_counts, samples, batch_id, titles)
        out_dir.mkdir(parents=True, exist_ok=True)
        folders: dict[str, Path] = {}
        for code, report in reports.items():
            folder = out_dir / code
            folder.mkdir(parents=True, exist_ok=True)
            page = render_department_page(report, generated_at)
            (folder / "index.html").write_text(page, encoding="utf-8")
            folders[code] = folder
        _write_csvs(rejected, reports, folders, titles)
    finally:
        if rejected is not None:
            rejected.unpersist()

    departments = load_departments()
    seen = {_department_of(f["source_id"]) for f in files}
    clean = [
        {"code": code, "name_zh": departments[code].name_zh if code in departments else code}
        for code in sorted(seen - set(reports))
    ]
    summaries = [department_summary(report) for report in reports.values()]
    (out_dir / "index.html").write_text(
        render_index(summaries, generated_at, batch_id, clean), encoding="utf-8"
    )
    return folders


def _write_csvs(
    rejected: DataFrame | None,
    reports: Mapping[str, Mapping[str, Any]],
    folders: Mapping[str, Path],
    titles: Mapping[tuple[str, str], str],
) -> None:
    """Stream one line per (rejected row, problem) into its department's quarantine.csv."""
    from pyspark.sql import functions as F

    lines: Iterable[dict[str, Any]] = ()
    if rejected is not None:
        exploded = rejected.select(
            "_department",
            "_resource",
            "_source_file",
            "_batch_id",
            "_row_number",
            "_raw",
            F.posexplode("problems").alias("_position", "p"),
        ).orderBy(
            "_department", "_resource", "_batch_id", "_source_file", "_row_number", "_position"
        )
        lines = (
            {
                "department": row["_department"],
                "department_zh": reports[row["_department"]]["name_zh"],
                "resource": row["_resource"],
                "file": row["_source_file"],
                "batch_id": row["_batch_id"],
                "row_number": row["_row_number"],
                "field": row["p"]["field"],
                "field_zh": _field_zh(titles, row["_resource"], row["p"]["field"]),
                "rule_id": row["p"]["rule_id"],
                "reason_zh": row["p"]["reason_zh"],
                "reason_en": row["p"]["reason_en"],
                "raw": row["_raw"],
            }
            for row in exploded.toLocalIterator()
        )
    written: set[str] = set()
    for code, group in itertools.groupby(lines, key=lambda line: str(line["department"])):
        with (folders[code] / "quarantine.csv").open("w", encoding="utf-8", newline="") as handle:
            write_csv(handle, group)
        written.add(code)
    for code in set(folders) - written:  # failed files only: the header, nothing to correct
        with (folders[code] / "quarantine.csv").open("w", encoding="utf-8", newline="") as handle:
            write_csv(handle, [])
