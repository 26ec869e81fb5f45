"""A small synthetic province, generated once per test session, and readers for its files."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest

from synthetic.errors import ErrorRates
from synthetic.generate import Manifest, Options, generate

SMALL = 1500


@pytest.fixture(scope="session")
def province(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("province")
    manifest = generate(Options(persons=SMALL, seed=7, out=out, households_per_chunk=200))
    return out, manifest


@pytest.fixture(scope="session")
def province_batch2(province: tuple[Path, Manifest]) -> tuple[Path, Manifest]:
    out, _ = province
    manifest = generate(Options(persons=SMALL, seed=7, out=out, batch=2, households_per_chunk=200))
    return out, manifest


@pytest.fixture(scope="session")
def noisy_province(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """Error rates ×5 so rate checks have enough events to be meaningful."""
    out = tmp_path_factory.mktemp("noisy")
    # Dangling references apply to few resources: raise them so the run has a handful.
    rates = dataclasses.replace(ErrorRates.load(scale=5.0), dangling_reference=0.2)
    manifest = generate(Options(persons=4000, seed=11, out=out, rates=rates))
    return out, manifest


def read_records(path: Path, fmt: str, encoding: str | None) -> list[list[str] | dict]:
    """Data records of a delivered file as the department wrote them (header dropped)."""
    if fmt == "csv":
        text = path.read_bytes().decode(encoding or "utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        return rows[1:]
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt == "xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(path, read_only=True).active
        rows = [
            ["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)
        ]
        width = len(rows[0])
        # Excel stores no trailing empty cells: pad each row to the header's width.
        return [row + [""] * (width - len(row)) for row in rows[1:]]
    raise ValueError(fmt)


def header(path: Path, fmt: str, encoding: str | None) -> list[str]:
    if fmt == "csv":
        return next(csv.reader(io.StringIO(path.read_bytes().decode(encoding or "utf-8"))))
    if fmt == "xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(path, read_only=True).active
        return [str(v) for v in next(sheet.iter_rows(values_only=True))]
    raise ValueError(fmt)


def truth(out: Path, batch: int, name: str) -> list[dict]:
    path = out / "_truth" / f"batch-{batch:04d}" / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
