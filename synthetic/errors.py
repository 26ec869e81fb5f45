"""Realistic delivery errors, injected at configured rates and recorded as ground truth.

Each injected error is one line of ``_truth/errors.jsonl``: which file, which record
(1-based data record, header excluded), which field, what kind, the true value, the
delivered value, and what the platform is expected to do with it:

- ``quarantine``: the row must be rejected with this reason;
- ``normalise``: the row must be accepted with the true value restored;
- ``deduplicate``: an exact duplicate row; one copy must survive;
- ``conflict``: valid on its own, but disagrees with the authoritative source;
- ``unlinked``: valid on its own, but names a subject no base library knows;
- ``failed_batch``: the whole file cannot be read;
- ``quality_quarantine``: valid for bronze, but breaks a quality rule (a business rule):
  the quality suite must quarantine the row.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

import yaml

from synthetic.identifiers import to_legacy_15, wrong_check_character

RATES_FILE = Path(__file__).with_name("error_rates.yaml")

# Hand-typed data mixes in full-width digits and Latin letters (０-９, Ａ-Ｚ, ａ-ｚ).
_FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F) if chr(c).isalnum()}


@dataclass(frozen=True)
class ErrorRates:
    """Probability per delivered row (or per file, for the file-level kinds)."""

    invalid_check_character: float = 0.002
    legacy_15_digit_id: float = 0.01
    full_width: float = 0.005
    stray_whitespace: float = 0.01
    date_format: float = 0.01
    duplicate_row: float = 0.002
    column_count: float = 0.001
    name_variant: float = 0.003
    birth_date_off_by_one: float = 0.002
    stale_address: float = 0.01
    point_outside_division: float = 0.002
    deceased_still_active: float = 0.2
    deregistered_still_licensed: float = 0.2
    dangling_reference: float = 0.003
    expired_license_still_valid: float = 0.02
    # Business-rule errors (synthetic/business_errors.py): caught by the quality suite.
    birth_date_mismatch: float = 0.002
    gender_mismatch: float = 0.002
    expiry_before_issue: float = 0.003
    publicity_outside_window: float = 0.003
    retired_division_code: float = 0.002
    truncated_files: int = 1
    wrong_encoding_files: int = 1

    @classmethod
    def load(cls, path: Path | None = None, scale: float = 1.0) -> ErrorRates:
        """Rates from a YAML file (default: the documented defaults), times ``scale``."""
        data = yaml.safe_load((path or RATES_FILE).read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path or RATES_FILE}: unknown error kinds {sorted(unknown)}")
        values: dict[str, Any] = {}
        for item in fields(cls):
            value = data.get(item.name, getattr(cls(), item.name))
            if item.name.endswith("_files"):
                values[item.name] = int(value if scale else 0)
            else:
                values[item.name] = min(1.0, float(value) * scale)
        return cls(**values)

    @classmethod
    def none(cls) -> ErrorRates:
        return cls.load(scale=0.0)


@dataclass
class Injected:
    file: str
    record: int
    resource: str
    field: str
    kind: str
    expected: str
    true_value: Any
    delivered: Any
    subject: str | None = None


class GroundTruth:
    """Appends injected errors to ``_truth/errors.jsonl`` as they happen."""

    def __init__(self, handle: IO[str]):
        self.handle = handle
        self.counts: dict[str, int] = {}

    def record_file(self, file: str, resource: str, kind: str, detail: str) -> None:
        """A file-level error: the whole delivery must be recorded as a failed batch."""
        self.record(Injected(file, 0, resource, "", kind, "failed_batch", None, detail))

    def record(self, error: Injected) -> None:
        self.counts[error.kind] = self.counts.get(error.kind, 0) + 1
        self.handle.write(json.dumps(asdict(error), ensure_ascii=False, default=str) + "\n")


DATE_VARIANTS = ("%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日", "%Y.%m.%d")


def full_width(text: str) -> str:
    """Digits and Latin letters as full-width characters (common in hand-typed data)."""
    return "".join(_FULL_WIDTH.get(c, c) for c in text)


def other_date_format(value: dt.date, rng: random.Random) -> str:
    return value.strftime(rng.choice(DATE_VARIANTS))


# Variant characters (异体字 / 同音误录) seen in name fields across departments.
NAME_VARIANTS = {
    "华": "化",
    "伟": "玮",
    "丽": "莉",
    "敏": "闵",
    "静": "靜",
    "军": "君",
    "明": "铭",
    "红": "宏",
    "英": "瑛",
    "玲": "琳",
    "强": "彊",
    "平": "萍",
    "芳": "方",
    "峰": "锋",
    "杰": "傑",
    "涛": "濤",
    "燕": "艳",
    "霞": "侠",
    "刚": "钢",
    "勇": "永",
}


def name_variant(name: str) -> str | None:
    """The name with one character replaced by a variant, or None if none applies."""
    for index in range(len(name) - 1, 0, -1):
        if name[index] in NAME_VARIANTS:
            return name[:index] + NAME_VARIANTS[name[index]] + name[index + 1 :]
    return None


def corrupt_identifier(value: str, kind: str) -> str:
    if kind == "invalid_check_character":
        return wrong_check_character(value)
    if kind == "legacy_15_digit_id":
        return to_legacy_15(value)
    raise ValueError(kind)
