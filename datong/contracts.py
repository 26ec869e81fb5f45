"""Department data contracts: what each department delivers, declared as YAML in ``schemas/``.

A resource (政务信息资源) is one dataset a department supplies, named by its bronze table
(``bronze.<table>``); its data elements (数据元) are the columns it delivers, each with a
type, the national standard or code table its values follow, a security grade (GB/T
43697-2024 数据分类分级) and whether it is personal information (个人信息). Departments
(部门) and code tables (代码表) are declared beside the resources; every cross-reference
between the files is checked at load time.

A file that breaks its contract is refused with a :class:`ContractError` naming the file,
the line and the field, so the department or engineer who wrote it can fix it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from datong.settings import REPO_ROOT

SCHEMAS_DIR: Path = REPO_ROOT / "schemas"
ModelT = TypeVar("ModelT", bound=BaseModel)

SNAKE_CASE = r"^[a-z][a-z0-9_]*$"
BRONZE_NAME = r"^bronze\.[a-z][a-z0-9_]*$"

ElementType = Literal[
    "string", "integer", "decimal", "date", "timestamp", "boolean", "geometry_wkt"
]
UpdateCycle = Literal["realtime", "daily", "weekly", "monthly", "quarterly", "yearly"]
DeliveryFormat = Literal["csv", "jsonl", "xlsx", "db_table"]
Encoding = Literal["utf-8", "gb18030"]
DeliveryMode = Literal["full", "append", "incremental"]

#: 共享类型 (政务信息资源共享管理暂行办法 art. 9): 无条件共享, 有条件共享, 不予共享.
ShareType = Literal["UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED"]
#: 开放属性: 无条件开放, 有条件开放, 不予开放.
OpenType = Literal["OPEN", "CONDITIONAL_OPEN", "NOT_OPEN"]
#: 共享方式: 库表 (a lake table through Trino), 接口 (a data service API), 文件 (a file extract).
ShareMethod = Literal["table", "api", "file"]

#: GB/T 43697-2024 grades, lowest first. The standard has three levels, 一般数据 (general),
#: 重要数据 (important) and 核心数据 (core); general data is split into four levels as the
#: standard allows sectors and regions to do. See schemas/README.md for the policy.
Grade = Literal["general-1", "general-2", "general-3", "general-4", "important", "core"]
GRADES: tuple[str, ...] = get_args(Grade)
GRADE_TITLES_ZH: dict[str, str] = {
    "general-1": "一般数据1级",
    "general-2": "一般数据2级",
    "general-3": "一般数据3级",
    "general-4": "一般数据4级",
    "important": "重要数据",
    "core": "核心数据",
}

#: National standards a data element may cite, with what they define. Code tables in
#: ``schemas/codes`` may add the standard they come from.
STANDARDS: dict[str, str] = {
    "GB 11643": "公民身份号码 citizen identity number",
    "GB 32100": "法人和其他组织统一社会信用代码编码规则 unified social credit code",
    "GB/T 2260": "中华人民共和国行政区划代码 administrative division code",
    "GB/T 2261.1": "人的性别代码 gender",
    "GB/T 2261.2": "婚姻状况代码 marital status",
    "GB/T 3304": "中国各民族名称的罗马字母拼写法和代码 ethnicity",
    "GB/T 4754": "国民经济行业分类 industrial classification for national economic activities",
    "GB/T 4761": "家庭关系代码 family relationship",
    "GB/T 7408": "日期和时间表示法 representation of dates and times",
}
#: Standards about how a date or time is written; every other standard defines codes or
#: identifiers, which are strings.
DATE_STANDARDS = frozenset({"GB/T 7408"})


def grade_rank(grade: str) -> int:
    """Position of a grade from 0 (general-1, least sensitive) to 5 (core)."""
    return GRADES.index(grade)


# -- errors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One broken rule in one contract file: where it is and what is wrong."""

    file: Path
    line: int | None
    location: str
    message: str

    def __str__(self) -> str:
        where = _display(self.file) + (f":{self.line}" if self.line else "")
        field = f" {self.location}:" if self.location else ""
        return f"{where}:{field} {self.message}"


class ContractError(ValueError):
    """A contract file in ``schemas/`` is invalid; the message lists every problem found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{count} problem{'s' if count != 1 else ''} in the contracts:"]
        lines += [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


# -- models ---------------------------------------------------------------------------


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataElement(_Contract):
    """One column a department delivers (数据元): its meaning, form, standard and grade."""

    name: str = Field(pattern=SNAKE_CASE, description="English code name of the column.")
    title_zh: str = Field(min_length=1, description="The Chinese name departments use.")
    type: ElementType
    nullable: bool
    standard: str | None = Field(default=None, description="A key of STANDARDS or of a table.")
    code_table: str | None = Field(default=None, pattern=SNAKE_CASE)
    allowed_values: list[str] | None = Field(
        default=None, min_length=1, description="The closed set of values, when not a table."
    )
    grade: Grade
    personal: bool = Field(description="Personal information of a natural person (个人信息).")
    max_length: int | None = Field(default=None, ge=1)
    registering_authority: str | None = Field(
        default=None,
        pattern="^[1-9A-HJ-NPQRTUWXY]$",
        description="GB 32100 codes only: the registering authority (position 1) a register "
        "holds, e.g. 9 for 市场监管's; a code of another authority is refused at ingest.",
    )
    description: str | None = None

    @model_validator(mode="after")
    def _form_fits_type(self) -> DataElement:
        if self.registering_authority and self.standard != "GB 32100":
            raise ValueError("registering_authority applies to GB 32100 credit codes only")
        if self.type != "string":
            for field in ("max_length", "code_table", "allowed_values"):
                if getattr(self, field) is not None:
                    raise ValueError(f"{field} applies to string elements only, not {self.type}")
        if self.standard in DATE_STANDARDS and self.type not in ("date", "timestamp"):
            raise ValueError(f"{self.standard} describes dates, but the type is {self.type}")
        if self.standard and self.standard not in DATE_STANDARDS and self.type != "string":
            raise ValueError(f"{self.standard} values are codes, so the type must be string")
        if self.standard == "GB 11643" and not (self.personal and self.grade == "general-4"):
            raise ValueError("a citizen ID number (GB 11643) is personal and graded general-4")
        return self


class Delivery(_Contract):
    """How the department hands the resource over, and what each delivery contains."""

    format: DeliveryFormat
    encoding: Encoding | None = None
    mode: DeliveryMode
    watermark: str | None = Field(
        default=None, description="Element whose value says when a record last changed."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Delivery:
        if self.format == "csv" and self.encoding is None:
            raise ValueError("a csv delivery must declare its encoding (utf-8 or gb18030)")
        if self.format == "jsonl" and self.encoding not in (None, "utf-8"):
            raise ValueError("JSON Lines are UTF-8 by definition (RFC 8259)")
        if self.format in ("xlsx", "db_table") and self.encoding is not None:
            raise ValueError(f"a {self.format} delivery has no text encoding")
        if self.mode == "incremental" and self.watermark is None:
            raise ValueError("an incremental delivery must name its watermark element")
        if self.mode == "full" and self.watermark is not None:
            raise ValueError("a full delivery replaces everything and takes no watermark")
        return self


class Classification(_Contract):
    """资源分类 (政务信息资源目录编制指南): 类, 项, 目, 细目 — the 前段码 of the resource code.

    类 is 1 基础信息资源, 2 主题信息资源 or 3 部门信息资源; 项 (2 digits), 目 and 细目
    (3 digits each) narrow it down.
    """

    category: Literal["1", "2", "3"]
    item: str = Field(pattern=r"^[0-9]{2}$")
    subject: str = Field(pattern=r"^[0-9]{3}$")
    detail: str = Field(pattern=r"^[0-9]{3}$")

    @property
    def code(self) -> str:
        return f"{self.category}{self.item}{self.subject}{self.detail}"


class CatalogEntry(_Contract):
    """How a resource is catalogued and shared: classification, share type and its basis."""

    classification: Classification
    sequence: int = Field(ge=1, le=9999, description="顺序码 within the provider.")
    share_type: ShareType
    share_condition: str | None = Field(default=None, description="共享条件 when CONDITIONAL.")
    legal_basis: str | None = Field(default=None, description="共享依据: the law behind it.")
    share_method: list[ShareMethod] = Field(min_length=1)
    open_type: OpenType
    open_condition: str | None = None
    release_date: dt.date
    division_column: str | None = Field(
        default=None, description="The element a row scope of division-code prefixes reads."
    )
    related: list[str] = Field(default_factory=list, description="关联资源: dataset names.")

    @model_validator(mode="after")
    def _policy_is_explained(self) -> CatalogEntry:
        if self.share_type == "CONDITIONAL" and not (self.share_condition and self.legal_basis):
            raise ValueError("a CONDITIONAL resource states its share_condition and legal_basis")
        if self.share_type == "NOT_SHARED" and not self.legal_basis:
            raise ValueError("a NOT_SHARED resource states the legal_basis for refusing")
        if self.share_type == "UNCONDITIONAL" and self.share_condition:
            raise ValueError("an UNCONDITIONAL resource has no share_condition")
        if self.share_type == "NOT_SHARED" and self.open_type != "NOT_OPEN":
            raise ValueError("a resource that is not shared is not open either")
        if self.open_type == "CONDITIONAL_OPEN" and not self.open_condition:
            raise ValueError("a CONDITIONAL_OPEN resource states its open_condition")
        return self


class Resource(_Contract):
    """One department resource as delivered, loaded into its bronze table."""

    name: str = Field(pattern=BRONZE_NAME, description="The dataset name, bronze.<table>.")
    title_zh: str = Field(min_length=1)
    version: int = Field(ge=1)
    department: str = Field(pattern=SNAKE_CASE)
    update_cycle: UpdateCycle
    delivery: Delivery
    primary_key: list[str] = Field(min_length=1)
    elements: list[DataElement] = Field(min_length=1)
    description: str = Field(min_length=1)
    catalog: CatalogEntry | None = Field(
        default=None, description="The catalogue entry; the catalogue refuses a resource without."
    )

    @property
    def table(self) -> str:
        """The table name without its schema: ``household_register``."""
        return self.name.split(".", 1)[1]

    @property
    def element_names(self) -> list[str]:
        return [element.name for element in self.elements]

    def element(self, name: str) -> DataElement:
        """The element called ``name``; KeyError when the resource has none."""
        for element in self.elements:
            if element.name == name:
                return element
        raise KeyError(f"{self.name} has no element {name!r}")


class Department(_Contract):
    """A department that supplies data and answers for it (谁提供、谁负责)."""

    code: str = Field(pattern=SNAKE_CASE, description="English code name: public_security.")
    name_zh: str = Field(min_length=1)
    org_code: str = Field(pattern=r"^[A-Z]{2,8}$", description="Short code, e.g. HBGA.")
    description: str = Field(min_length=1)


class _DepartmentsFile(_Contract):
    departments: list[Department] = Field(min_length=1)


class CodeEntry(_Contract):
    """A code with more to say than its label: the department responsible for it."""

    label: str = Field(min_length=1)
    department: str | None = Field(default=None, pattern=SNAKE_CASE)


class CodeTable(_Contract):
    """A code table (代码表): the codes a data element may take and what they mean."""

    title_zh: str = Field(min_length=1)
    source: str = Field(min_length=1, description="The standard or design the codes follow.")
    standard: str | None = Field(
        default=None, description="Standard that elements using this table must cite."
    )
    description: str | None = None
    codes: dict[str, str | CodeEntry] = Field(min_length=1)

    @property
    def labels(self) -> dict[str, str]:
        """Code → label."""
        return {
            code: entry if isinstance(entry, str) else entry.label
            for code, entry in self.codes.items()
        }

    def department_of(self, code: str) -> str | None:
        entry = self.codes[code]
        return None if isinstance(entry, str) else entry.department


# -- YAML with line numbers -------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    path: Path
    data: Any
    node: yaml.Node

    def problem(self, location: tuple[str | int, ...], message: str) -> Problem:
        return Problem(self.path, _line_of(self.node, location), _dotted(location), message)


def _read_yaml(path: Path) -> _Document:
    """Parse one YAML file, keeping the node tree so errors can name their line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ContractError([Problem(path, None, "", f"not UTF-8: {error}")]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ContractError([Problem(path, None, "", "the file is empty")])
        key_problems = list(_key_problems(path, node))
        if key_problems:
            raise ContractError(key_problems)
        return _Document(path, loader.construct_document(node), node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(error, "problem", None) or getattr(error, "context", None) or error
        raise ContractError([Problem(path, line, "", f"not valid YAML: {reason}")]) from error
    finally:
        loader.dispose()


def _key_problems(path: Path, node: yaml.Node) -> Iterator[Problem]:
    """Duplicate and non-string mapping keys, which YAML itself would silently accept."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            line = key.start_mark.line + 1
            if not (isinstance(key, yaml.ScalarNode) and key.tag == "tag:yaml.org,2002:str"):
                text = getattr(key, "value", "?")
                yield Problem(path, line, "", f"key {text!r} must be a string: quote it")
            elif key.value in seen:
                yield Problem(path, line, "", f"key {key.value!r} appears twice")
            seen.add(str(key.value))
            yield from _key_problems(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _key_problems(path, item)


def _line_of(node: yaml.Node, location: tuple[str | int, ...]) -> int:
    """The line of the deepest part of ``location`` present in the file (1-based)."""
    line = node.start_mark.line + 1
    current = node
    for part in location:
        if isinstance(current, yaml.MappingNode):
            match = next((pair for pair in current.value if pair[0].value == str(part)), None)
            if match is None:
                break
            line, current = match[0].start_mark.line + 1, match[1]
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(current.value):
                break
            current = current.value[part]
            line = current.start_mark.line + 1
        else:
            break
    return line


def _dotted(location: tuple[str | int, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _validate(document: _Document, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate(document.data)
    except ValidationError as error:
        raise ContractError(
            document.problem(tuple(detail["loc"]), _message(detail)) for detail in error.errors()
        ) from None


def _message(detail: Any) -> str:
    message = str(detail["msg"]).removeprefix("Value error, ")
    value = detail.get("input")
    if detail["type"] not in ("missing", "extra_forbidden") and isinstance(
        value, str | int | float | bool
    ):
        message += f" (got {value!r})"
    return message


# -- loaders --------------------------------------------------------------------------


@cache
def load_departments(root: Path = SCHEMAS_DIR) -> dict[str, Department]:
    """Every department that supplies data, by code, from ``departments.yaml``."""
    document = _read_yaml(root / "departments.yaml")
    declared = _validate(document, _DepartmentsFile).departments
    problems: list[Problem] = []
    codes: set[str] = set()
    org_codes: set[str] = set()
    for index, department in enumerate(declared):
        if department.code in codes:
            location = ("departments", index, "code")
            problems.append(document.problem(location, f"{department.code} is declared twice"))
        if department.org_code in org_codes:
            location = ("departments", index, "org_code")
            problems.append(document.problem(location, f"{department.org_code} is used twice"))
        codes.add(department.code)
        org_codes.add(department.org_code)
    if problems:
        raise ContractError(problems)
    return {department.code: department for department in declared}


@cache
def load_code_tables(root: Path = SCHEMAS_DIR) -> dict[str, CodeTable]:
    """Every code table in ``codes/``, by file name without ``.yaml``."""
    departments = load_departments(root)
    tables: dict[str, CodeTable] = {}
    problems: list[Problem] = []
    for path in _yaml_files(root / "codes", problems):
        try:
            document = _read_yaml(path)
            table = _validate(document, CodeTable)
        except ContractError as error:
            problems += error.problems
            continue
        if not _is_snake_case(path.stem):
            problems.append(document.problem((), f"file name {path.stem!r} is not snake_case"))
        for code in table.codes:
            department = table.department_of(code)
            if department is not None and department not in departments:
                location = ("codes", code, "department")
                problems.append(document.problem(location, _unknown("department", department)))
        tables[path.stem] = table
    if problems:
        raise ContractError(problems)
    return tables


@cache
def load_code_table(name: str, root: Path = SCHEMAS_DIR) -> dict[str, str]:
    """The code table ``schemas/codes/<name>.yaml`` as code → label."""
    tables = load_code_tables(root)
    if name not in tables:
        raise KeyError(f"no code table {name!r} in {_display(root / 'codes')}")
    return tables[name].labels


@cache
def load_resources(root: Path = SCHEMAS_DIR) -> dict[str, Resource]:
    """Every declared resource, by dataset name, from ``resources/<department>/<table>.yaml``."""
    departments = load_departments(root)
    tables = load_code_tables(root)
    resources: dict[str, Resource] = {}
    problems: list[Problem] = []
    for path in _yaml_files(root / "resources", problems):
        try:
            document = _read_yaml(path)
            resource = _validate(document, Resource)
        except ContractError as error:
            problems += error.problems
            continue
        problems += _resource_problems(document, resource, departments, tables)
        if resource.name in resources:
            problems.append(document.problem(("name",), f"{resource.name} is declared twice"))
        resources[resource.name] = resource
    for resource in resources.values():
        for related in resource.catalog.related if resource.catalog else ():
            if related not in resources:
                path = root / "resources" / resource.department / f"{resource.table}.yaml"
                problems.append(Problem(path, None, "catalog.related", _unknown(
                    "resource", related)))  # fmt: skip
    if problems:
        raise ContractError(problems)
    return resources


def _yaml_files(folder: Path, problems: list[Problem]) -> list[Path]:
    files = sorted(path for path in folder.rglob("*.y*ml") if path.is_file())
    for path in files:
        if path.suffix != ".yaml":
            problems.append(Problem(path, None, "", "contract files end in .yaml"))
    return [path for path in files if path.suffix == ".yaml"]


def _is_snake_case(text: str) -> bool:
    return re.fullmatch(SNAKE_CASE, text) is not None


def _unknown(kind: str, name: str) -> str:
    return f"unknown {kind} {name!r}"


def _resource_problems(
    document: _Document,
    resource: Resource,
    departments: dict[str, Department],
    tables: dict[str, CodeTable],
) -> Iterator[Problem]:
    """Rules that span the resource, its file's place, the departments and the code tables."""
    path = document.path
    if resource.name != f"bronze.{path.stem}":
        message = f"the name must be bronze.{path.stem}, after the file name"
        yield document.problem(("name",), message)
    if path.parent.parent.name != "resources" or path.parent.name != resource.department:
        message = f"the file must be resources/{resource.department}/{path.name}"
        yield document.problem(("department",), message)
    if resource.department not in departments:
        yield document.problem(("department",), _unknown("department", resource.department))

    known_standards = set(STANDARDS) | {t.standard for t in tables.values() if t.standard}
    types: dict[str, DataElement] = {}
    for index, element in enumerate(resource.elements):
        where = ("elements", index)
        if element.name in types:
            yield document.problem((*where, "name"), f"element {element.name} appears twice")
        types[element.name] = element
        if element.standard is not None and element.standard not in known_standards:
            yield document.problem((*where, "standard"), _unknown("standard", element.standard))
        if element.code_table is None:
            continue
        table = tables.get(element.code_table)
        if table is None:
            yield document.problem(
                (*where, "code_table"), _unknown("code table", element.code_table)
            )
            continue
        if table.standard and element.standard != table.standard:
            message = f"code table {element.code_table} follows {table.standard}: cite it"
            yield document.problem((*where, "standard"), message)
        for position, value in enumerate(element.allowed_values or []):
            if value not in table.codes:
                message = f"{value!r} is not a code of {element.code_table}"
                yield document.problem((*where, "allowed_values", position), message)

    for position, key in enumerate(resource.primary_key):
        if key not in types:
            yield document.problem(("primary_key", position), _unknown("element", key))
        elif types[key].nullable:
            yield document.problem(("primary_key", position), f"key element {key} is nullable")
    if resource.catalog is not None and resource.catalog.division_column is not None:
        column = resource.catalog.division_column
        if column not in types:
            yield document.problem(("catalog", "division_column"), _unknown("element", column))
    watermark = resource.delivery.watermark
    if watermark is not None:
        if watermark not in types:
            yield document.problem(("delivery", "watermark"), _unknown("element", watermark))
        elif types[watermark].type not in ("date", "timestamp") or types[watermark].nullable:
            message = f"watermark {watermark} must be a non-null date or timestamp"
            yield document.problem(("delivery", "watermark"), message)


# -- the base libraries' catalogue entries ----------------------------------------------


class CatalogItem(_Contract):
    """One column of a base-library table as the catalogue lists it (数据项)."""

    name: str = Field(pattern=SNAKE_CASE)
    title_zh: str = Field(min_length=1)
    type: ElementType
    grade: Grade
    personal: bool
    standard: str | None = None


class LibraryEntry(CatalogEntry):
    """A base-library table catalogued as a resource of the base catalogue (基础信息资源).

    Its providers are the departments of the library's sources (联合授权: every one of them
    approves a conditional request); ``custodian`` builds and answers for the table.
    """

    table: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    title_zh: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    custodian: str = Field(pattern=SNAKE_CASE)
    update_cycle: UpdateCycle
    items: list[CatalogItem] = Field(min_length=1)


class _LibrarySource(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    department: str = Field(pattern=SNAKE_CASE)


class _LibraryFile(BaseModel):
    """A ``libraries/<library>.yaml``: only the parts the catalogue reads (jobs read the rest)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    library: str = Field(pattern=SNAKE_CASE)
    sources: dict[str, _LibrarySource] = Field(min_length=1)
    catalog: list[LibraryEntry] = Field(min_length=1)


@dataclass(frozen=True)
class BaseResource:
    """A catalogued base-library table with the departments its sources come from."""

    library: str
    entry: LibraryEntry
    providers: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.entry.table


@cache
def load_base_resources(root: Path = SCHEMAS_DIR) -> dict[str, BaseResource]:
    """The catalogue entries of every base library, by table, from ``libraries/*.yaml``."""
    departments = load_departments(root)
    resources = load_resources(root)
    found: dict[str, BaseResource] = {}
    problems: list[Problem] = []
    for path in _yaml_files(root / "libraries", problems):
        try:
            document = _read_yaml(path)
            library = _validate(document, _LibraryFile)
        except ContractError as error:
            problems += error.problems
            continue
        providers = tuple(sorted({source.department for source in library.sources.values()}))
        for index, entry in enumerate(library.catalog):
            where = ("catalog", index)
            names = [item.name for item in entry.items]
            for department in (entry.custodian, *providers):
                if department not in departments:
                    message = _unknown("department", department)
                    problems.append(document.problem((*where, "custodian"), message))
            if entry.division_column is not None and entry.division_column not in names:
                message = _unknown("item", entry.division_column)
                problems.append(document.problem((*where, "division_column"), message))
            if entry.table in found:
                problems.append(document.problem((*where, "table"), f"{entry.table} twice"))
            found[entry.table] = BaseResource(library.library, entry, providers)
    for base in found.values():
        for related in base.entry.related:
            if related not in resources and related not in found:
                problems.append(Problem(root / "libraries", None, base.name, _unknown(
                    "related resource", related)))  # fmt: skip
    if problems:
        raise ContractError(problems)
    return found
