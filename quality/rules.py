"""Quality rules (数据质量规则) as data: ``schemas/rules/quality.yaml``, validated at load.

A rule has an id, a kind (what it checks), a family (the part of the quality score it counts
in), a severity (``fail`` stops data, ``warn`` only reports) and a sentence in Chinese and
English. Contract kinds apply to every bronze resource as its contract says; every kind
applies where its ``apply`` entries say, with the columns the kind needs. A bad file is
refused with a :class:`datong.contracts.ContractError` naming the file, line and field.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datong.contracts import (
    SCHEMAS_DIR,
    ContractError,
    _read_yaml,
    _validate,
    load_code_tables,
    load_resources,
)

RULES_FILE = SCHEMAS_DIR / "rules" / "quality.yaml"

Severity = Literal["warn", "fail"]
Family = Literal["completeness", "validity", "consistency"]
Kind = Literal[
    "not_null", "type", "code_table", "allowed_values", "max_length", "citizen_id",
    "credit_code", "division_code", "key_unique", "range", "id_birth_date", "id_gender",
    "date_order", "publicity_window", "division_on_date",
]  # fmt: skip
#: Kinds the bronze contracts imply; the rest apply only where declared.
CONTRACT_KINDS = frozenset(
    {"not_null", "type", "code_table", "allowed_values", "max_length", "citizen_id",
     "credit_code", "division_code", "key_unique"}
)  # fmt: skip
#: The parameters each kind's ``apply`` entries must give.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "not_null": ("columns",),
    "type": ("column",),  # contract kinds below: from the contracts only
    "code_table": ("column", "code_table"),
    "allowed_values": ("column",),
    "max_length": ("column",),
    "citizen_id": ("column",),
    "credit_code": ("column",),
    "division_code": ("column",),
    "key_unique": ("columns",),
    "range": ("column",),
    "id_birth_date": ("id", "date"),
    "id_gender": ("id", "gender"),
    "date_order": ("earlier", "later"),
    "publicity_window": ("decision", "end", "max_days"),
    "division_on_date": ("column", "date"),
}
RESOURCE_NAME = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Application(_Model):
    """Where a rule applies: one table, the columns the rule's kind reads."""

    resource: str = Field(pattern=RESOURCE_NAME, description="<schema>.<table>")
    severity: Severity | None = None
    column: str | None = None
    columns: list[str] | None = Field(default=None, min_length=1)
    code_table: str | None = None
    id: str | None = None
    date: str | None = None
    gender: str | None = None
    earlier: str | None = None
    later: str | None = None
    decision: str | None = None
    end: str | None = None
    max_days: int | None = Field(default=None, ge=1)
    min: float | str | None = None
    max: float | str | None = None

    def columns_read(self) -> list[str]:
        """Every column this application reads, so a misspelt one is refused at load."""
        names = [self.column, self.id, self.date, self.gender, self.earlier, self.later,
                 self.decision, self.end]  # fmt: skip
        return [n for n in names if n] + list(self.columns or [])


class Rule(_Model):
    """One quality rule: what it checks, how bad a failure is and what to tell the provider."""

    id: str = Field(pattern=r"^QUALITY-[0-9]{3}$")
    kind: Kind
    family: Family
    severity: Severity
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)
    apply: list[Application] = Field(default_factory=list)

    @model_validator(mode="after")
    def _applications_complete(self) -> Rule:
        if self.kind not in CONTRACT_KINDS and not self.apply:
            raise ValueError(f"a {self.kind} rule applies only where declared: add apply entries")
        for number, application in enumerate(self.apply):
            missing = [p for p in PARAMETERS[self.kind] if getattr(application, p) is None]
            if missing:
                raise ValueError(
                    f"apply[{number}] ({application.resource}): a {self.kind} rule needs "
                    f"{', '.join(missing)}"
                )
            if self.kind == "range" and application.min is None and application.max is None:
                raise ValueError(f"apply[{number}]: a range needs min, max or both")
        return self

    def severity_for(self, application: Application | None) -> Severity:
        return (application.severity if application else None) or self.severity


class _RulesFile(_Model):
    rules: list[Rule] = Field(min_length=1)


@cache
def load_rules(path: Path = RULES_FILE) -> dict[str, Rule]:
    """Every quality rule by id; cross-references to tables, columns and code tables checked."""
    document = _read_yaml(path)
    declared = _validate(document, _RulesFile).rules
    resources = load_resources()
    code_tables = load_code_tables()
    problems = []
    seen: dict[str, Rule] = {}
    for index, rule in enumerate(declared):
        if rule.id in seen:
            problems.append(document.problem(("rules", index, "id"), f"{rule.id} appears twice"))
        seen[rule.id] = rule
        for number, application in enumerate(rule.apply):
            where = ("rules", index, "apply", number)
            for message in _application_problems(application, resources, code_tables):
                problems.append(document.problem(where, message))
    if problems:
        raise ContractError(problems)
    return seen


def _application_problems(
    application: Application, resources: dict[str, Any], code_tables: dict[str, Any]
) -> list[str]:
    if application.code_table and application.code_table not in code_tables:
        return [f"unknown code table {application.code_table!r}"]
    resource = resources.get(application.resource)
    if application.resource.startswith("bronze."):
        if resource is None:
            return [f"unknown resource {application.resource!r}"]
        declared = set(resource.element_names)
        return [
            f"{application.resource} has no element {column!r}"
            for column in application.columns_read()
            if column not in declared
        ]
    return []


def rule_texts() -> dict[str, dict[str, str]]:
    """Rule id → {"zh": …, "en": …}, as the quarantine tables carry them."""
    return {rule.id: {"zh": rule.zh, "en": rule.en} for rule in load_rules().values()}
