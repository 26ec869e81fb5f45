"""The synthetic province: parses under its contracts except where the ground truth says
otherwise, is deterministic, coherent, and injects errors at the configured rates."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from stdnum.cn import ric, uscc

from datong.contracts import load_code_table, load_resources
from synthetic.generate import Options, generate

from .conftest import SMALL, read_records, truth

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def citizen_id_ok(value: str) -> bool:
    """stdnum's check; it raises KeyError (not False) for some non-ID strings."""
    try:
        return ric.is_valid(value)
    except KeyError:
        return False


def problems(element, raw) -> list[str]:
    """Why a delivered value does not conform to its data element (independent checks)."""
    value = "" if raw is None else str(raw)
    if value == "":
        return [] if element.nullable else ["missing"]
    if value != value.strip() or "\u3000" in value:
        return ["whitespace"]
    if any(c.isalnum() and 0xFF10 <= ord(c) <= 0xFF5A for c in value):
        return ["full-width"]
    kind = element.type
    try:
        if kind == "date" and not (ISO_DATE.match(value) and dt.date.fromisoformat(value)):
            return ["date"]
        if kind == "timestamp" and not ISO_TIMESTAMP.match(value):
            return ["timestamp"]
        if kind == "integer":
            int(value)
        if kind == "decimal":
            Decimal(value)
    except (ValueError, InvalidOperation):
        return [kind]
    if element.standard == "GB 11643" and not citizen_id_ok(value):
        return ["citizen id"]
    if element.standard == "GB 32100" and not uscc.is_valid(value):
        return ["credit code"]
    if element.code_table and value not in load_code_table(element.code_table):
        return [f"code table {element.code_table}"]
    if element.allowed_values and value not in element.allowed_values:
        return ["not an allowed value"]
    if element.max_length and len(value) > element.max_length:
        return ["too long"]
    return []


def delivered_files(out: Path, manifest):
    resources = load_resources()
    for report in manifest.files:
        if report.path.startswith("postgres:"):
            continue
        yield report, resources[report.resource], out / report.path


def test_every_file_parses_except_the_rows_the_truth_marks(province):
    out, manifest = province
    errors = truth(out, 1, "errors.jsonl")
    failed_files = {e["file"] for e in errors if e["expected"] == "failed_batch"}
    assert len(failed_files) == 2  # one truncated, one in the wrong encoding
    expected_bad = {
        (e["file"], e["record"])
        for e in errors
        if e["expected"] in ("quarantine", "normalise") and e["file"] not in failed_files
    }
    seen_bad = set()
    for report, resource, path in delivered_files(out, manifest):
        if report.path in failed_files:
            continue
        records = read_records(path, report.format, report.encoding)
        assert len(records) == report.records, report.path
        elements = resource.elements
        for number, record in enumerate(records, start=1):
            if isinstance(record, dict):
                assert list(record) == [e.name for e in elements]
                values = list(record.values())
            else:
                values = record
            if len(values) != len(elements):
                seen_bad.add((report.path, number))
                continue
            if any(problems(e, v) for e, v in zip(elements, values, strict=True)):
                seen_bad.add((report.path, number))
    assert seen_bad == expected_bad


def test_failed_files_really_fail(province):
    out, manifest = province
    by_path = {r.path: r for r in manifest.files}
    for error in truth(out, 1, "errors.jsonl"):
        if error["kind"] == "wrong_encoding":
            with pytest.raises(UnicodeDecodeError):
                (out / error["file"]).read_bytes().decode(by_path[error["file"]].encoding)
        if error["kind"] == "truncated_file":
            data = (out / error["file"]).read_bytes()
            assert not data.endswith(b"\r\n")
            encoding = by_path[error["file"]].encoding
            rows = list(csv.reader(data.decode(encoding).splitlines()))
            assert len(rows[-1]) < len(rows[0])


def test_same_seed_gives_byte_identical_output(province, tmp_path):
    out, manifest = province
    again = generate(Options(persons=SMALL, seed=7, out=tmp_path, households_per_chunk=200))
    assert [f.sha256 for f in again.files] == [f.sha256 for f in manifest.files]
    for name in ("errors.jsonl", "conflicts.jsonl", "person.csv", "legal_person.csv"):
        first = (out / "_truth" / "batch-0001" / name).read_bytes()
        second = (tmp_path / "_truth" / "batch-0001" / name).read_bytes()
        assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest(), name


def test_another_seed_gives_another_province(province, tmp_path):
    _, manifest = province
    other = generate(Options(persons=SMALL, seed=8, out=tmp_path, households_per_chunk=200))
    assert [f.sha256 for f in other.files] != [f.sha256 for f in manifest.files]


def _golden(out: Path, batch: int, name: str) -> list[dict]:
    path = out / "_truth" / f"batch-{batch:04d}" / name
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _clean_rows(out: Path, manifest, resource: str) -> list[dict]:
    errors = truth(out, manifest.batch, "errors.jsonl")
    report = next(r for r in manifest.files if r.resource == resource)
    if report.failure:
        return []  # this batch's truncated or mis-encoded file: nothing to check
    touched = {e["record"] for e in errors if e["file"] == report.path}
    names = [e.name for e in load_resources()[resource].elements]
    records = read_records(out / report.path, report.format, report.encoding)
    rows = []
    for number, record in enumerate(records, start=1):
        if number in touched:
            continue
        rows.append(record if isinstance(record, dict) else dict(zip(names, record, strict=True)))
    return rows


def test_population_is_coherent_and_ids_agree_with_attributes(province):
    out, manifest = province
    persons = _golden(out, 1, "person.csv")
    assert SMALL <= len(persons) < SMALL + 10  # whole households: a few over at most
    assert len({p["person_id"] for p in persons}) == len(persons)
    for person in persons:
        number = person["person_id"]
        assert ric.is_valid(number)
        assert ric.get_birth_date(number) == dt.date.fromisoformat(person["birth_date"])
        assert (int(number[16]) % 2 == 1) == (person["gender"] == "1")
        assert number[:2] == "42"
    ids = {p["person_id"] for p in persons}
    legal = _golden(out, 1, "legal_person.csv")
    assert legal and all(uscc.is_valid(lp["credit_code"]) for lp in legal)
    assert {lp["legal_representative_id"] for lp in legal} <= ids
    households = {p["household_id"] for p in persons}
    heads = {p["household_id"] for p in persons if p["relation_to_head"] == "02"}
    assert heads == households  # every household has its head


def test_references_point_at_existing_subjects(province):
    out, manifest = province
    ids = {p["person_id"] for p in _golden(out, 1, "person.csv")}
    codes = {lp["credit_code"] for lp in _golden(out, 1, "legal_person.csv")}
    checked = 0
    for row in _clean_rows(out, manifest, "bronze.enterprise_registration"):
        assert row["legal_representative_id"] in ids
        checked += 1
    for row in _clean_rows(out, manifest, "bronze.social_insurance"):
        assert row["person_id"] in ids and row["employer_credit_code"] in codes
    for row in _clean_rows(out, manifest, "bronze.marriage_registration"):
        assert row["male_id"] in ids and row["female_id"] in ids
    dangling = {
        (e["file"], e["record"])
        for e in truth(out, 1, "errors.jsonl")
        if e["kind"] == "dangling_reference"
    }
    report = next(r for r in manifest.files if r.resource == "bronze.e_license")
    for row in _clean_rows(out, manifest, "bronze.e_license"):
        assert row["holder_id"] in ids | codes, row
        checked += 1
    assert checked > 100
    assert all(f != report.path for f, _ in dangling)


def test_conflicts_in_the_truth_are_visible_in_the_files(province):
    out, manifest = province
    conflicts = truth(out, 1, "conflicts.jsonl")
    assert manifest.conflicts == len(conflicts) > 0
    kinds = {c["kind"] for c in conflicts}
    assert "deceased_still_active" in kinds
    persons = {p["person_id"]: p for p in _golden(out, 1, "person.csv")}
    for conflict in conflicts:
        if conflict["kind"] == "deceased_still_active" and conflict["subject"] in persons:
            assert persons[conflict["subject"]]["death_date"] != ""


def test_injected_error_rates_match_the_configuration(noisy_province):
    out, manifest = noisy_province
    errors = truth(out, 1, "errors.jsonl")
    rows = sum(r.records for r in manifest.files if r.path.startswith("postgres:") is False)
    counts: dict[str, int] = {}
    for error in errors:
        counts[error["kind"]] = counts.get(error["kind"], 0) + 1
    # Whitespace and duplicates apply to (almost) every row: their counts follow the rate.
    for kind, rate in (("stray_whitespace", 0.05), ("duplicate_row", 0.01)):
        expected = rows * rate
        assert abs(counts.get(kind, 0) - expected) < 5 * math.sqrt(expected) + 0.1 * expected, kind
    for kind in (
        "invalid_check_character",
        "legacy_15_digit_id",
        "full_width",
        "date_format",
        "column_count",
        "dangling_reference",
    ):
        assert counts.get(kind, 0) > 0, kind


def test_corrupted_identifiers_fail_and_legacy_ids_upgrade(noisy_province):
    out, _ = noisy_province
    errors = truth(out, 1, "errors.jsonl")
    resources = load_resources()
    for error in errors:
        if error["kind"] == "invalid_check_character":
            delivered, true_value = error["delivered"], error["true_value"]
            element = next(
                e for e in resources[error["resource"]].elements if e.name == error["field"]
            )
            check = citizen_id_ok if element.standard == "GB 11643" else uscc.is_valid
            assert check(true_value) and not check(delivered)
            assert delivered[:-1] == true_value[:-1]
        if error["kind"] == "legacy_15_digit_id":
            delivered = error["delivered"]
            assert len(delivered) == 15 and delivered.isdigit()
            body = delivered[:6] + "19" + delivered[6:]
            assert ric.is_valid(error["true_value"]) and error["true_value"][:17] == body


def test_batch_two_delivers_changes(province, province_batch2):
    out, first = province
    _, second = province_batch2
    first_ids = {p["person_id"]: p for p in _golden(out, 1, "person.csv")}
    second_ids = {p["person_id"]: p for p in _golden(out, 2, "person.csv")}
    # Nobody disappears and nobody is renumbered; babies and deaths happen.
    assert set(first_ids) <= set(second_ids)
    assert len(second_ids) > len(first_ids)
    died = [i for i in first_ids if not first_ids[i]["death_date"] and second_ids[i]["death_date"]]
    assert died
    resources = load_resources()
    by_resource = {r.resource: r for r in second.files}
    for name, resource in resources.items():
        if name not in by_resource:
            continue
        count_one = next(r.records for r in first.files if r.resource == name)
        count_two = by_resource[name].records
        if resource.delivery.mode == "full":
            assert count_two >= count_one * 0.9, name
        else:
            assert count_two < count_one or count_one == 0, name


def test_expired_licences_marked_valid_are_exactly_the_recorded_conflicts(noisy_province):
    out, manifest = noisy_province
    extract = dt.date.fromisoformat(manifest.extract_date)
    recorded = {
        c["subject"]
        for c in truth(out, 1, "conflicts.jsonl")
        if c["kind"] == "expired_license_still_valid"
    }
    stale = {
        row["holder_id"]
        for row in _clean_rows(out, manifest, "bronze.e_license")
        if row["expiry_date"] and row["status"] == "有效"
        and dt.date.fromisoformat(row["expiry_date"]) < extract
    }  # fmt: skip
    assert stale and stale <= recorded


def test_a_chosen_resource_is_delivered_as_in_a_full_run(tmp_path):
    """Only the chosen files are written, byte for byte as a full run writes them."""
    from dataclasses import replace

    from synthetic.errors import ErrorRates

    # File-level errors are drawn among the files written, so they are off here.
    rates = replace(ErrorRates(), truncated_files=0, wrong_encoding_files=0)
    chosen = frozenset({"bronze.household_register", "bronze.marriage_registration"})
    whole = generate(Options(persons=400, seed=5, out=tmp_path / "all", rates=rates))
    part = generate(
        Options(persons=400, seed=5, out=tmp_path / "part", rates=rates, resources=chosen)
    )
    assert {f.resource for f in part.files} == chosen
    assert {(f.path, f.sha256) for f in part.files} == {
        (f.path, f.sha256) for f in whole.files if f.resource in chosen
    }
    written = {p.relative_to(tmp_path / "part").parts[0] for p in (tmp_path / "part").iterdir()}
    assert written == {"_truth", "public_security", "civil_affairs"}

    def errors(out):
        lines = (out / "_truth" / "batch-0001" / "errors.jsonl").read_text().splitlines()
        return [line for line in lines if json.loads(line)["resource"] in chosen]

    assert errors(tmp_path / "part") == errors(tmp_path / "all") != []
    with pytest.raises(ValueError, match="no generated resource"):
        generate(Options(persons=10, seed=5, out=tmp_path / "x", resources=frozenset({"bronze.x"})))


def test_each_file_broken_on_purpose_is_kept_intact_for_its_redelivery(province):
    """The department's corrected file: the declared encoding, every record, complete."""
    from synthetic.generate import redelivery_dir

    out, manifest = province
    broken = [report for report in manifest.files if report.failure]
    assert sorted(report.failure for report in broken) == ["truncated", "wrong_encoding"]
    for report in broken:
        intact = redelivery_dir(out, 1) / report.path
        data = intact.read_bytes()
        assert data.endswith(b"\n") and data != (out / report.path).read_bytes()
        records = read_records(intact, report.format, report.encoding)
        assert len(records) == report.records, report.path


def test_the_written_manifest_reads_back_as_generated(province):
    from synthetic.generate import Manifest

    out, manifest = province
    assert Manifest.load(out / "_truth" / "batch-0001" / "manifest.json") == manifest
