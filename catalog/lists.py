"""The data bureau's lists and figures: 共享清单 (share list), 责任清单 (responsibility list),
负面清单 (negative list), exported as CSV or XLSX, and the catalogue's figures (挂接率 …)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Resource
from catalog.resources import OPEN_TITLES, SHARE_TITLES, providers_of
from datong.contracts import GRADES, grade_rank

LISTS = ("share", "responsibility", "negative")
TITLES = {"share": "共享清单", "responsibility": "责任清单", "negative": "负面清单"}
METHOD_TITLES = {"table": "库表", "api": "接口", "file": "文件"}
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "share": [
        ("code", "资源代码"),
        ("title_zh", "资源名称"),
        ("name", "数据集"),
        ("provider", "提供部门"),
        ("provider_org_code", "提供部门代码"),
        ("share_type", "共享类型"),
        ("share_condition", "共享条件"),
        ("legal_basis", "共享依据"),
        ("share_method", "共享方式"),
        ("open_type", "开放属性"),
        ("update_cycle", "更新周期"),
        ("release_date", "发布日期"),
        ("items", "信息项"),
    ],
    "responsibility": [
        ("code", "资源代码"),
        ("title_zh", "资源名称"),
        ("name", "数据集"),
        ("provider", "责任部门"),
        ("sources", "来源部门"),
        ("update_cycle", "更新周期"),
        ("max_grade", "最高分级"),
        ("personal", "含个人信息"),
        ("linked_table", "挂接表"),
        ("linked", "已挂接"),
        ("freshness", "最近更新"),
        ("quality_score", "质量评分"),
    ],
    "negative": [
        ("code", "资源代码"),
        ("title_zh", "资源名称"),
        ("name", "数据集"),
        ("provider", "提供部门"),
        ("legal_basis", "不予共享依据"),
    ],
}


def max_grade(resource: Resource) -> str:
    return max((item.grade for item in resource.items), key=grade_rank)


def _row(resource: Resource) -> dict[str, Any]:
    return {
        "code": resource.code,
        "title_zh": resource.title_zh,
        "name": resource.name,
        "provider": resource.provider.name_zh,
        "provider_org_code": resource.provider.org_code,
        "share_type": SHARE_TITLES[resource.share_type],
        "share_condition": resource.share_condition or "",
        "legal_basis": resource.legal_basis or "",
        "share_method": "、".join(METHOD_TITLES[m] for m in resource.share_method),
        "open_type": OPEN_TITLES[resource.open_type],
        "update_cycle": resource.update_cycle,
        "release_date": resource.release_date.isoformat(),
        "items": "、".join(item.title_zh for item in resource.items),
        "sources": "、".join(d.name_zh for d in providers_of(resource)),
        "max_grade": max_grade(resource),
        "personal": "是" if any(i.personal for i in resource.items) else "否",
        "linked_table": resource.linked_table or "",
        "linked": {True: "是", False: "否", None: "未知"}[resource.linked],
        "freshness": resource.freshness.isoformat() if resource.freshness else "",
        "quality_score": "" if resource.quality_score is None else resource.quality_score,
    }


def rows(session: Session, kind: str) -> list[dict[str, Any]]:
    """The rows of one list, in resource-code order, with the list's columns only."""
    if kind not in LISTS:
        raise ValueError(f"unknown list {kind!r}: one of {', '.join(LISTS)}")
    resources = list(session.scalars(select(Resource).order_by(Resource.code)))
    if kind == "share":
        resources = [r for r in resources if r.share_type != "NOT_SHARED"]
    elif kind == "negative":
        resources = [r for r in resources if r.share_type == "NOT_SHARED"]
    keys = [key for key, _ in COLUMNS[kind]]
    return [{key: row[key] for key in keys} for row in map(_row, resources)]


def header(kind: str) -> list[str]:
    return [f"{title} {key}" for key, title in COLUMNS[kind]]


def to_csv(session: Session, kind: str) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header(kind))
    for row in rows(session, kind):
        writer.writerow(row.values())
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(session: Session, kind: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(TITLES[kind])
    sheet.append(header(kind))
    for row in rows(session, kind):
        sheet.append(list(row.values()))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def figures(session: Session) -> dict[str, Any]:
    """挂接率 and counts by department, share type and grade."""
    resources = list(session.scalars(select(Resource)))
    total = len(resources)
    linked = sum(1 for r in resources if r.linked)
    items = Counter(item.grade for r in resources for item in r.items)
    return {
        "resources": total,
        "linked": linked,
        "linked_rate": round(linked / total, 4) if total else 0.0,
        "unknown_link": sum(1 for r in resources if r.linked is None),
        "by_department": dict(sorted(Counter(r.provider.code for r in resources).items())),
        "by_share_type": dict(sorted(Counter(r.share_type for r in resources).items())),
        "by_open_type": dict(sorted(Counter(r.open_type for r in resources).items())),
        "by_grade": {g: n for g in GRADES if (n := sum(1 for r in resources if max_grade(r) == g))},
        "items_by_grade": {g: items[g] for g in GRADES if items[g]},
    }
