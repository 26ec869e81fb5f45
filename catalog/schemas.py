"""What the catalogue accepts: every write is validated by one of these models first."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from datong.contracts import ElementType, Grade, OpenType, ShareMethod, ShareType, UpdateCycle

SNAKE = r"^[a-z][a-z0-9_]*$"
TABLE = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
#: The longest grant one request may ask for: three years.
MAX_DAYS = 1095


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


def _digit_prefixes(values: list[str] | None) -> list[str] | None:
    for value in values or []:
        if not value.isascii() or not value.isdigit() or not 2 <= len(value) <= 12:
            raise ValueError(f"division prefix {value!r} is not 2 to 12 digits")
    return values


class RequestCreate(_In):
    """A department asks for these fields of a resource, for this purpose, for so long."""

    resource: str = Field(min_length=3, max_length=128, description="Dataset name.")
    purpose: str = Field(min_length=4, max_length=2000, description="申请用途 and its basis.")
    fields: list[str] = Field(min_length=1, max_length=200)
    division_prefixes: list[str] | None = Field(
        default=None, max_length=200, description="Row scope: division-code prefixes."
    )
    duration_days: int = Field(ge=1, le=MAX_DAYS)

    _unique = field_validator("fields", "division_prefixes")(_unique)
    _digits = field_validator("division_prefixes")(_digit_prefixes)


class Approve(_In):
    """A reviewer approves, possibly narrowing fields, rows or duration."""

    fields: list[str] | None = Field(default=None, min_length=1, max_length=200)
    division_prefixes: list[str] | None = Field(default=None, max_length=200)
    duration_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    reason: str | None = Field(default=None, max_length=2000)

    _unique = field_validator("fields", "division_prefixes")(_unique)
    _digits = field_validator("division_prefixes")(_digit_prefixes)


class Reason(_In):
    reason: str = Field(min_length=2, max_length=2000)


class DemandCreate(_In):
    """A demand for data nobody has catalogued (需求清单), sent to a chosen provider."""

    provider: str = Field(pattern=SNAKE, max_length=64)
    title: str = Field(min_length=2, max_length=200)
    description: str = Field(min_length=4, max_length=4000)


class ItemDraft(_In):
    name: str = Field(pattern=SNAKE, max_length=64)
    title_zh: str = Field(min_length=1, max_length=200)
    type: ElementType
    grade: Grade
    personal: bool
    standard: str | None = Field(default=None, max_length=32)


class Policy(_In):
    """The share and open attributes of a resource, checked together."""

    share_type: ShareType
    share_condition: str | None = Field(default=None, max_length=2000)
    legal_basis: str | None = Field(default=None, max_length=2000)
    share_method: list[ShareMethod] = Field(min_length=1, max_length=3)
    open_type: OpenType
    open_condition: str | None = Field(default=None, max_length=2000)


class ResourceDraft(Policy):
    """A resource a provider catalogues by hand (answering a demand)."""

    name: str = Field(pattern=TABLE, max_length=128)
    title_zh: str = Field(min_length=1, max_length=200)
    summary: str = Field(min_length=4, max_length=4000)
    update_cycle: UpdateCycle
    items: list[ItemDraft] = Field(min_length=1, max_length=500)
    division_column: str | None = Field(default=None, pattern=SNAKE, max_length=64)


class DemandAnswer(_In):
    """The provider answers a demand: catalogues a resource, or refuses with a reason."""

    decision: Literal["catalogue", "refuse"]
    resource: ResourceDraft | None = None
    reason: str | None = Field(default=None, max_length=2000)


class ResourceEdit(_In):
    """What a provider may change of its resource; absent fields stay as they are."""

    title_zh: str | None = Field(default=None, min_length=1, max_length=200)
    summary: str | None = Field(default=None, min_length=4, max_length=4000)
    share_type: ShareType | None = None
    share_condition: str | None = Field(default=None, max_length=2000)
    legal_basis: str | None = Field(default=None, max_length=2000)
    share_method: list[ShareMethod] | None = Field(default=None, min_length=1, max_length=3)
    open_type: OpenType | None = None
    open_condition: str | None = Field(default=None, max_length=2000)
    update_cycle: UpdateCycle | None = None
    related: list[str] | None = Field(default=None, max_length=50)
    linked_table: str | None = Field(default=None, pattern=TABLE, max_length=128)


class UserCreate(_In):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    role: Literal["platform_admin", "department_admin", "data_engineer", "reviewer", "analyst"]
    department: str | None = Field(default=None, pattern=SNAKE, max_length=64)
    password: str = Field(min_length=12, max_length=72)


class TokenCreate(_In):
    label: str = Field(default="api", min_length=1, max_length=100)


class Login(_In):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)
