"""The checks of one table: each quality rule, applied to its columns, as one GX expectation.

Pure Python (no Great Expectations import, which takes seconds): a :class:`Check` names the
rule, the table, the severity, the GX expectation class and its arguments, and the derived
columns the expectation reads (a business rule compares a column with a fact derived from
another, such as the birth date inside a citizen ID; see ``quality.facts``). Bronze tables
get the checks their contract implies plus the declared ones; gold tables the declared ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from datong.contracts import load_code_table, load_resources
from datong.reference import load_divisions
from quality.rules import CONTRACT_KINDS, Application, Rule, load_rules

#: GX's names for the Spark types bronze columns have (jobs.rules.SPARK_TYPES).
GX_TYPES = {
    "string": "StringType", "integer": "LongType", "decimal": "DecimalType",
    "date": "DateType", "timestamp": "TimestampType", "boolean": "BooleanType",
    "geometry_wkt": "StringType",
}  # fmt: skip
#: Lineage that names a bronze row: where GX reports failing rows and quarantine keys them.
BRONZE_KEY = ["_source_file", "_row_number"]
#: Gold tables checked after a build, with the key that names a row.
GOLD_KEYS: dict[str, list[str]] = {
    "population.person": ["person_id"],
    "legal_person.entity": ["credit_code"],
    "license.license": ["license_no"],
}


@dataclass(frozen=True)
class Derived:
    """A column computed before validation: ``kind`` with its source columns."""

    name: str
    kind: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Check:
    """One rule on one table's column(s), as the GX expectation that checks it."""

    rule: str
    resource: str
    kind: str
    family: str
    severity: str
    expectation_type: str
    kwargs: dict[str, Any]
    column: str
    #: True when GX lists the failing rows (a map expectation): they can be quarantined.
    row_level: bool = True
    derived: tuple[Derived, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """``QUALITY-006:person_id``: the expectation's id within its suite."""
        return f"{self.rule}:{self.column}"


def _check(rule: Rule, resource: str, severity: str, gx_type: str, target: str,
           row_level: bool = True, derived: tuple[Derived, ...] = (),
           **kwargs: Any) -> Check:  # fmt: skip
    """``target``: the column(s) the result is reported under; ``kwargs``: the GX arguments."""
    return Check(rule.id, resource, rule.kind, rule.family, severity, gx_type, kwargs, target,
                 row_level, derived)  # fmt: skip


def _date(value: float | str | None, as_of: dt.date) -> Any:
    if value == "today":
        return as_of.isoformat()
    return value


def _division_codes() -> list[str]:
    return sorted({division.code for division in load_divisions()})


def from_application(
    rule: Rule, app: Application, as_of: dt.date, severity: str | None = None
) -> list[Check]:
    """The checks of one rule where one ``apply`` entry (or a contract) puts it."""
    severity = severity or rule.severity_for(app)
    name = app.resource
    kind = rule.kind
    if kind == "not_null":
        return [_check(rule, name, severity, "ExpectColumnValuesToNotBeNull", c, column=c)
                for c in app.columns or []]  # fmt: skip
    if kind == "key_unique":
        columns = list(app.columns or [])
        if len(columns) == 1:
            return [_check(rule, name, severity, "ExpectColumnValuesToBeUnique", columns[0],
                           column=columns[0])]  # fmt: skip
        return [_check(rule, name, severity, "ExpectCompoundColumnsToBeUnique", ",".join(columns),
                       column_list=columns)]  # fmt: skip
    column = str(app.column or "")
    if kind == "code_table":
        codes = sorted(load_code_table(str(app.code_table)))
        return [_check(rule, name, severity, "ExpectColumnValuesToBeInSet", column,
                       column=column, value_set=codes)]  # fmt: skip
    if kind in ("type", "allowed_values", "max_length"):
        raise ValueError(f"{rule.id}: {kind} comes from the contracts, not from apply entries")
    if kind == "citizen_id":
        return [_check(rule, name, severity, "ExpectColumnValuesToBeValidCitizenId", column,
                       column=column)]  # fmt: skip
    if kind == "credit_code":
        return [_check(rule, name, severity, "ExpectColumnValuesToBeValidCreditCode", column,
                       column=column)]  # fmt: skip
    if kind == "division_code":
        return [_check(rule, name, severity, "ExpectColumnValuesToBeInSet", column,
                       column=column, value_set=_division_codes())]  # fmt: skip
    if kind == "range":
        bounds = {"min_value": _date(app.min, as_of), "max_value": _date(app.max, as_of)}
        return [
            _check(
                rule,
                name,
                severity,
                "ExpectColumnValuesToBeBetween",
                column,
                column=column,
                **{k: v for k, v in bounds.items() if v is not None},
            )
        ]
    return _business(rule, app, severity)


def _business(rule: Rule, app: Application, severity: str) -> list[Check]:
    name, kind = app.resource, rule.kind
    pair = "ExpectColumnPairValuesToBeEqual"
    greater = "ExpectColumnPairValuesAToBeGreaterThanB"
    missing = "either_value_is_missing"
    if kind == "id_birth_date":
        fact = Derived(f"_id_birth_date__{app.id}", "id_birth_date", (str(app.id),))
        return [
            _check(
                rule,
                name,
                severity,
                pair,
                str(app.date),
                derived=(fact,),
                column_A=app.date,
                column_B=fact.name,
                ignore_row_if=missing,
            )
        ]
    if kind == "id_gender":
        sources = (str(app.id), str(app.gender))
        fact = Derived(f"_id_gender__{app.id}", "id_gender", sources)
        return [
            _check(
                rule,
                name,
                severity,
                pair,
                str(app.gender),
                derived=(fact,),
                column_A=app.gender,
                column_B=fact.name,
                ignore_row_if=missing,
            )
        ]
    if kind == "date_order":
        return [
            _check(
                rule,
                name,
                severity,
                greater,
                str(app.later),
                column_A=app.later,
                column_B=app.earlier,
                or_equal=False,
                ignore_row_if=missing,
            )
        ]
    if kind == "publicity_window":
        fact = Derived(f"_publicity_days__{app.end}", "days_between",
                       (str(app.decision), str(app.end)))  # fmt: skip
        return [
            _check(
                rule,
                name,
                severity,
                "ExpectColumnValuesToBeBetween",
                str(app.end),
                derived=(fact,),
                column=fact.name,
                min_value=1,
                max_value=app.max_days,
            )
        ]
    if kind == "division_on_date":
        fact = Derived(f"_retired_on__{app.column}", "retired_on", (str(app.column), str(app.date)))
        return [_check(rule, name, severity, greater, str(app.column), derived=(fact,),
                       column_A=fact.name, column_B=app.date, or_equal=False,
                       ignore_row_if=missing)]  # fmt: skip
    raise ValueError(f"{rule.id}: no check for kind {kind}")


def _contract_checks(rule: Rule, resource: Any, as_of: dt.date) -> list[Check]:
    """The checks a contract kind implies for a bronze resource, as its elements say."""
    name, kind = resource.name, rule.kind
    if kind == "not_null":
        required = [e.name for e in resource.elements if not e.nullable]
        return from_application(rule, Application(resource=name, columns=required), as_of)
    if kind == "key_unique":
        keys = list(resource.primary_key)
        return from_application(rule, Application(resource=name, columns=keys), as_of)
    out: list[Check] = []
    for element in resource.elements:
        column, severity = element.name, rule.severity
        if kind == "type":
            out.append(
                _check(
                    rule,
                    name,
                    severity,
                    "ExpectColumnValuesToBeOfType",
                    column,
                    row_level=False,
                    column=column,
                    type_=GX_TYPES[element.type],
                )
            )
        elif kind == "code_table" and element.code_table:
            app = Application(resource=name, column=column, code_table=element.code_table)
            out += from_application(rule, app, as_of)
        elif kind == "allowed_values" and element.allowed_values:
            out.append(
                _check(
                    rule,
                    name,
                    severity,
                    "ExpectColumnValuesToBeInSet",
                    column,
                    column=column,
                    value_set=list(element.allowed_values),
                )
            )
        elif kind == "max_length" and element.max_length:
            out.append(
                _check(
                    rule,
                    name,
                    severity,
                    "ExpectColumnValueLengthsToBeBetween",
                    column,
                    column=column,
                    max_value=element.max_length,
                )
            )
        elif (kind, element.standard) in (("citizen_id", "GB 11643"), ("credit_code", "GB 32100"),
                                          ("division_code", "GB/T 2260")):  # fmt: skip
            out += from_application(rule, Application(resource=name, column=column), as_of)
    return out


def checks_for(name: str, as_of: dt.date | None = None) -> list[Check]:
    """Every check of table ``name`` (``bronze.<table>`` or a gold table), in rule order."""
    as_of = as_of or dt.date.today()
    resource = load_resources().get(name)
    out: list[Check] = []
    for rule in load_rules().values():
        if resource is not None and rule.kind in CONTRACT_KINDS:
            out += _contract_checks(rule, resource, as_of)
        for app in rule.apply:
            if app.resource == name:
                out += from_application(rule, app, as_of)
    return out


def tables_checked() -> list[str]:
    """Every table with checks: the bronze resources, then the gold tables."""
    return sorted(load_resources()) + sorted(GOLD_KEYS)
