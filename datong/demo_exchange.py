"""The demo's exchange step: catalogue, a jointly approved request, and Trino enforcing it.

Everything goes through the catalogue's REST API as the running server (`datong up`) serves
it, and through Trino as the users themselves: 卫健 (health) asks for the population
library of Wuhan (4201), every source department approves (联合授权), and the analyst then
sees masked IDs and names of Wuhan's persons only, while 教育 (education), without a grant,
is refused; the provider finally sees who read its data.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from datong.settings import Settings

RESOURCE = "population.person"
FIELDS = ["person_id", "name", "gender", "birth_date"]
SCOPE = ["4201"]


class CatalogueError(RuntimeError):
    """The catalogue refused a call; the message is its own."""


class Client:
    """The catalogue's REST API as one user (bearer token)."""

    def __init__(self, settings: Settings, token: str) -> None:
        import httpx

        self._http = httpx.Client(
            base_url=settings.catalog_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def call(self, method: str, path: str, **kw: Any) -> Any:
        response = self._http.request(method, path, **kw)
        if response.status_code >= 300:
            raise CatalogueError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()


def run_exchange(settings: Settings) -> list[tuple[str, str, float]]:
    """Catalogue, request, joint review, grant, granted and ungranted queries, usage.

    Returns (step, outcome, seconds) per step.
    """
    from catalog import db
    from catalog.security import admin_secret
    from catalog.service import now_utc
    from catalog.sync import sync

    lines: list[tuple[str, str, float]] = []
    started = time.monotonic()

    def done(step: str, outcome: str) -> None:
        nonlocal started
        lines.append((step, outcome, time.monotonic() - started))
        started = time.monotonic()

    with db.session_scope(settings.catalog_database_url) as session:
        sync(session, settings.state_dir, now_utc())
    admin = Client(settings, admin_secret(settings.state_dir)["token"])
    admin.call("POST", "/admin/lake-refresh")
    figures = admin.call("GET", "/figures")
    done(
        "catalogue (政务信息资源目录)",
        f"{figures['resources']} resources, {figures['linked']} linked to lake tables "
        f"(挂接率 {figures['linked_rate']:.0%}); share types "
        + ", ".join(f"{k} {v}" for k, v in figures["by_share_type"].items()),
    )  # fmt: skip

    passwords: dict[str, str] = {}
    clients: dict[str, Client] = {}

    def user(name: str, role: str, department: str) -> Client:
        if name not in clients:
            stored = _demo_password(settings, name)
            passwords[name] = stored
            known = {u["name"] for u in admin.call("GET", "/users")}
            if name not in known:
                admin.call("POST", "/users", json={"name": name, "role": role,
                           "department": department, "password": stored})  # fmt: skip
            token = admin.call("POST", f"/users/{name}/tokens", json={"label": "demo"})["token"]
            clients[name] = Client(settings, token)
        return clients[name]

    analyst = user("health_analyst", "analyst", "health")
    user("education_analyst", "analyst", "education")
    share_type = analyst.call("GET", f"/resources/{RESOURCE}")["share_type"]
    request = analyst.call("POST", "/requests", json={
        "resource": RESOURCE,
        "purpose": "出生医学证明签发前核验新生儿父母身份（武汉市）",
        "fields": FIELDS, "division_prefixes": SCOPE, "duration_days": 90,
    })  # fmt: skip
    approvers = [approval["department"] for approval in request["approvals"]]
    for department in approvers:
        reviewer = user(f"{department}_reviewer", "reviewer", department)
        current = reviewer.call("GET", f"/requests/{request['id']}")
        if current["state"] == "GRANTED":
            break
        reviewer.call("POST", f"/requests/{request['id']}/approve", json={
            "fields": FIELDS[:3] if department == approvers[0] else None,
            "reason": "出生日期非核验所必需" if department == approvers[0] else None,
        })  # fmt: skip
    final = analyst.call("GET", f"/requests/{request['id']}")
    done(
        "request and joint review (供需对接, 联合授权)",
        f"health asks for {RESOURCE} ({share_type}) {FIELDS} in {SCOPE}; "
        f"{len(approvers)} providers ({', '.join(approvers)}) approve, "
        f"narrowed to {FIELDS[:3]}: {final['state']}",
    )  # fmt: skip
    admin.call("POST", "/admin/publish")
    done("queries as a granted and an ungranted user", _queries(settings, passwords))
    time.sleep(3)  # Trino posts query events asynchronously
    provider = user(f"{approvers[0]}_reviewer", "reviewer", approvers[0])
    usage = provider.call("GET", f"/resources/{RESOURCE}/usage")
    done(
        "audit (every query through Trino)",
        f"{approvers[0]} sees {len(usage)} reads of {RESOURCE}: "
        + ", ".join(sorted({f"{u['user']} {u['state']}" for u in usage})),
    )  # fmt: skip
    return lines


def _queries(settings: Settings, passwords: dict[str, str]) -> str:
    from datong.query import AuthenticationError, QueryError, run

    sql = f"SELECT person_id, name, gender FROM lake.{RESOURCE} ORDER BY person_id LIMIT 1"
    [(total,)] = run(settings, f"SELECT count(*) FROM lake.{RESOURCE}").rows
    deadline = time.monotonic() + 30
    while True:
        try:
            sample = run(settings, sql, user="health_analyst", password=passwords["health_analyst"])
            [(mine,)] = run(
                settings,
                f"SELECT count(*) FROM lake.{RESOURCE}",
                user="health_analyst",
                password=passwords["health_analyst"],
            ).rows
            break
        except (QueryError, AuthenticationError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        run(settings, sql, user="education_analyst", password=passwords["education_analyst"])
        refused = "allowed (unexpected)"
    except QueryError as error:
        refused = "refused by Trino (" + str(error).split(":")[0] + ")"
    return (
        f"health_analyst sees {mine:,} of {total:,} persons (Wuhan only), e.g. "
        f"{tuple(sample.rows[0]) if sample.rows else ()}; education_analyst: {refused}"
    )


def _demo_password(settings: Settings, name: str) -> str:
    from datong.secrets import load_or_create

    return load_or_create(
        settings.state_dir, f"demo-{name}", {"password": "demo-" + secrets.token_urlsafe(18)}
    )["password"]
