"""Source declarations: how and when each department resource is collected (数据汇聚).

One YAML file per source in ``schemas/sources/<department>/<table>.yaml``, validated at
load: which contract it delivers, from where (landing-zone files or a table in the
department's database over JDBC), on what schedule, in which mode, and who owns it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from datong.contracts import load_resources
from datong.settings import REPO_ROOT

SOURCES_DIR = REPO_ROOT / "schemas" / "sources"
CRON_FIELD = r"[0-9*/,\-]+"
SCHEDULE = rf"^(@(hourly|daily|weekly|monthly|yearly)|{CRON_FIELD}( {CRON_FIELD}){{4}})$"


class SourceError(ValueError):
    """A source declaration is invalid; the message names the file."""


class LandingDelivery(BaseModel):
    """Files dropped into ``<landing>/<path>/batch-<K>/`` by the department."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["landing"]
    path: str = Field(pattern=r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*$")


class JdbcDelivery(BaseModel):
    """A table in the department's own database, pulled over JDBC."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["jdbc"]
    # The URL holds a password: the declaration names the environment variable only.
    url_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    table: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class Source(BaseModel):
    """One collected source."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    resource: str = Field(pattern=r"^bronze\.[a-z][a-z0-9_]*$")
    department: str
    delivery: Annotated[LandingDelivery | JdbcDelivery, Field(discriminator="kind")]
    schedule: str = Field(pattern=SCHEDULE)
    mode: Literal["full", "append", "incremental"]
    watermark: str | None = None
    owner: str = Field(min_length=3)
    retries: int = Field(default=2, ge=2)

    @model_validator(mode="after")
    def _watermark_for_incremental(self) -> Source:
        if self.mode == "incremental" and not self.watermark:
            raise ValueError("incremental sources need a watermark column")
        return self


@cache
def load_sources(root: Path = SOURCES_DIR) -> dict[str, Source]:
    """Every declared source by id, each checked against its resource contract."""
    resources = load_resources()
    sources: dict[str, Source] = {}
    problems: list[str] = []
    for path in sorted(root.rglob("*.yaml")):
        where = path.relative_to(root.parent.parent) if root.is_relative_to(REPO_ROOT) else path
        try:
            source = Source.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except ValidationError as error:
            for item in error.errors():
                field = ".".join(str(part) for part in item["loc"]) or "(file)"
                problems.append(f"{where}: {field}: {item['msg']}")
            continue
        resource = resources.get(source.resource)
        if resource is None:
            problems.append(f"{where}: resource: no contract named {source.resource}")
            continue
        if source.department != resource.department:
            problems.append(f"{where}: department: {source.department} != {resource.department}")
        if source.id != f"{source.department}.{source.resource.split('.', 1)[1]}":
            problems.append(f"{where}: id: must be <department>.<table>, got {source.id}")
        if path.stem != source.resource.split(".", 1)[1] or path.parent.name != source.department:
            problems.append(f"{where}: file must be sources/{source.department}/<table>.yaml")
        names = {e.name for e in resource.elements}
        if source.watermark and source.watermark not in names:
            problems.append(f"{where}: watermark: {source.watermark} is not a data element")
        if source.id in sources:
            problems.append(f"{where}: id: {source.id} declared twice")
        sources[source.id] = source
    if problems:
        raise SourceError("invalid source declarations:\n" + "\n".join(problems))
    return sources
