"""Grants → Trino rules: small inputs, expected rules written out by hand."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import bcrypt
import pytest

from warehouse.access import Principal, TableGrant, compile_rules, publish

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
COLUMNS = {
    "population.person": ["id_number", "name", "division_code", "birth_date"],
    "geo.county": ["code", "name"],
}
ADMIN = {"user": "datong"}
ID_MASK = "concat(substr(id_number, 1, 6), '********', substr(id_number, 15, 4))"
HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(8)).decode()


def rules_for(grants, **extra):
    return compile_rules(grants, admin_user="datong", now=NOW, table_columns=COLUMNS, **extra)


def granted_tables(rules):
    """The table rules after the admin's (which rules.base.json gives first)."""
    assert rules["tables"][0]["user"] == "datong"
    return rules["tables"][1:]


def test_no_grant_leaves_the_base_rules_unchanged():
    base = json.loads(Path("warehouse/trino/etc/rules.base.json").read_text())
    assert rules_for([]) == base


def test_a_grant_allows_its_columns_masks_one_and_filters_rows():
    grant = TableGrant(
        "g1",
        "civil_affairs",
        "population.person",
        ("id_number", "name"),
        masks={"id_number": ID_MASK},
        row_filter="division_code = '420102'",
    )
    rules = rules_for([grant])
    assert granted_tables(rules) == [
        {
            "group": "civil_affairs",
            "catalog": "lake",
            "schema": "population",
            "table": "person",
            "privileges": ["SELECT"],
            "columns": [
                {"name": "id_number", "mask": ID_MASK, "mask_environment": ADMIN},
                {"name": "division_code", "allow": False},
                {"name": "birth_date", "allow": False},
            ],
            "filter": "division_code = '420102'",
            "filter_environment": ADMIN,
        }
    ]
    assert rules["catalogs"][-1] == {
        "group": "civil_affairs",
        "catalog": "lake",
        "allow": "read-only",
    }
    assert rules["schemas"][-1] == {
        "group": "civil_affairs",
        "catalog": "lake",
        "schema": "population",
        "owner": False,
    }
    # The admin and the system catalog keep their base rules.
    assert {"user": "datong", "catalog": ".*", "allow": "all"} in rules["catalogs"]
    assert {"catalog": "system", "allow": "read-only"} in rules["catalogs"]


def test_every_column_granted_unmasked_and_no_filter_gives_a_plain_rule():
    rules = rules_for([TableGrant("g1", "planning", "geo.county", ("code", "name"))])
    assert granted_tables(rules) == [
        {
            "group": "planning",
            "catalog": "lake",
            "schema": "geo",
            "table": "county",
            "privileges": ["SELECT"],
        }
    ]


def test_grants_of_one_group_on_one_table_merge_cell_by_cell():
    # g1: names and (masked) IDs of division A; g2: names only, of division B.
    grants = [
        TableGrant(
            "g1",
            "civil_affairs",
            "population.person",
            ("id_number", "name"),
            masks={"id_number": ID_MASK},
            row_filter="division_code = 'A'",
        ),
        TableGrant(
            "g2", "civil_affairs", "population.person", ("name",), row_filter="division_code = 'B'"
        ),
    ]
    [rule] = granted_tables(rules_for(grants))
    assert rule["filter"] == "(division_code = 'A') OR (division_code = 'B')"
    # Division B's rows show no ID at all: only g1 grants that column, and only for A.
    assert rule["columns"] == [
        {
            "name": "id_number",
            "mask": f"CASE WHEN (division_code = 'A') THEN {ID_MASK} ELSE NULL END",
            "mask_environment": ADMIN,
        },
        {"name": "division_code", "allow": False},
        {"name": "birth_date", "allow": False},
    ]


def test_an_unmasked_grant_wins_over_a_masked_one_on_the_rows_it_covers():
    grants = [
        TableGrant(
            "g1", "police", "population.person", ("id_number",), masks={"id_number": ID_MASK}
        ),
        TableGrant(
            "g2", "police", "population.person", ("id_number",), row_filter="division_code = 'A'"
        ),
    ]
    [rule] = granted_tables(rules_for(grants))
    assert "filter" not in rule  # g1 covers every row
    assert rule["columns"][0] == {
        "name": "id_number",
        "mask": f"CASE WHEN (division_code = 'A') THEN \"id_number\" ELSE {ID_MASK} END",
        "mask_environment": ADMIN,
    }


def test_expired_grants_are_left_out_and_expiring_ones_filter_on_time():
    expired = TableGrant("old", "tax", "geo.county", ("code",), expires_at=NOW)
    later = NOW + dt.timedelta(hours=2)
    expiring = TableGrant(
        "new", "tax", "geo.county", ("code", "name"), row_filter="code LIKE '42%'", expires_at=later
    )
    assert granted_tables(rules_for([expired])) == []
    [rule] = granted_tables(rules_for([expired, expiring]))
    assert rule["filter"] == (
        "(code LIKE '42%') AND (current_timestamp < TIMESTAMP '2026-12-01 11:00:00.000000 UTC')"
    )
    # An expiry in another time zone is written as the same instant in UTC.
    shanghai = dt.timezone(dt.timedelta(hours=8))
    other = TableGrant(
        "tz", "tax", "geo.county", ("code", "name"), expires_at=later.astimezone(shanghai)
    )
    [rule] = granted_tables(rules_for([other]))
    assert rule["filter"] == "current_timestamp < TIMESTAMP '2026-12-01 11:00:00.000000 UTC'"


def test_a_user_in_two_groups_gets_one_merged_rule_before_the_group_rules():
    grants = [
        TableGrant("g1", "civil_affairs", "geo.county", ("code",)),
        TableGrant("g2", "planning", "geo.county", ("name",)),
    ]
    people = [
        Principal("wang", HASH, ("civil_affairs", "planning")),
        Principal("li", HASH, ("planning",)),
    ]
    rules = rules_for(grants, principals=people)
    assert [(r.get("user"), r.get("group")) for r in granted_tables(rules)] == [
        ("wang", None),
        (None, "civil_affairs"),
        (None, "planning"),
    ]
    merged, civil, planning = granted_tables(rules)
    assert "columns" not in merged  # code from one group, name from the other: both
    assert civil["columns"] == [{"name": "name", "allow": False}]
    assert planning["columns"] == [{"name": "code", "allow": False}]


def test_a_user_in_two_groups_granting_different_tables_needs_no_own_rule():
    grants = [
        TableGrant("g1", "civil_affairs", "geo.county", ("code",)),
        TableGrant("g2", "planning", "population.person", ("name",)),
    ]
    rules = rules_for(grants, principals=[Principal("wang", HASH, ("civil_affairs", "planning"))])
    assert all("user" not in rule for rule in granted_tables(rules))


def test_another_admin_user_name_replaces_the_base_one():
    rules = compile_rules([], admin_user="root_admin", now=NOW, table_columns=COLUMNS)
    assert rules["tables"][0]["user"] == "root_admin"
    assert "datong" not in json.dumps(rules)


@pytest.mark.parametrize(
    ("grant", "message"),
    [
        (TableGrant("x", "g", "person", ("name",)), "is not <schema>.<table>"),
        (TableGrant("x", "g", "population.nobody", ("name",)), "is not a known table"),
        (TableGrant("x", "g", "geo.county", ("colour",)), "has no column(s) colour"),
        (TableGrant("x", "g", "geo.county", ()), "grants no column"),
        (
            TableGrant("x", "g", "geo.county", ("code",), masks={"name": "'x'"}),
            "does not grant: name",
        ),
        (
            TableGrant("x", "g", "geo.county", ("code",), row_filter="1=1; DROP TABLE t"),
            "contains ';'",
        ),
        (TableGrant("x", "g", "geo.county", ("code",), row_filter="true -- all"), "contains '--'"),
        (
            TableGrant("x", "g", "geo.county", ("code",), masks={"code": "'x' /* */"}),
            "contains '/*'",
        ),
        (TableGrant("x", "g", "geo.county", ("code",), row_filter="code IN (SELECT 1)"), "SELECT"),
        (TableGrant("x", "g", "geo.county", ("code",), row_filter="  "), "is empty"),
        (TableGrant("x", "a,b", "geo.county", ("code",)), "group 'a,b' must match"),
        (
            TableGrant("x", "g", "geo.county", ("code",), expires_at=dt.datetime(2027, 1, 1)),
            "no time zone",
        ),
    ],
)
def test_invalid_grants_are_refused_with_the_grant_and_rule(grant, message):
    with pytest.raises(ValueError, match=rf"grant 'x'.*{_escaped(message)}"):
        rules_for([grant])


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


# -- publish ---------------------------------------------------------------------------------


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "password.db").write_text("datong:" + HASH + "\n")
    return tmp_path


def test_publish_writes_the_three_files(etc: Path):
    other = bcrypt.hashpw(b"pw2", bcrypt.gensalt(9)).decode()
    people = [
        Principal("wang", HASH, ("civil_affairs", "planning")),
        Principal("li", other, ("planning",)),
        Principal("zhao", other),
    ]
    grant = TableGrant("g1", "planning", "geo.county", ("code", "name"))
    publish(
        etc, grants=[grant], principals=people, admin_user="datong", now=NOW, table_columns=COLUMNS
    )
    assert (etc / "password.db").read_text() == (
        f"datong:{HASH}\nwang:{HASH}\nli:{other}\nzhao:{other}\n"
    )
    assert (etc / "group.txt").read_text() == "civil_affairs:wang\nplanning:li,wang\n"
    rules = json.loads((etc / "rules.json").read_text())
    assert rules == rules_for([grant], principals=people)
    for name in ("password.db", "rules.json"):
        assert stat.S_IMODE((etc / name).stat().st_mode) == 0o600, name
    assert sorted(p.name for p in etc.iterdir()) == ["group.txt", "password.db", "rules.json"]


def test_publish_refuses_bad_principals_and_changes_nothing(etc: Path):
    before = (etc / "password.db").read_text()
    cases = [
        ([Principal("datong", HASH)], "is the admin user"),
        ([Principal("wang", "plain-text-password")], "not a bcrypt hash"),
        (
            [Principal("wang", bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode())],
            "below Trino's minimum 8",
        ),
        ([Principal("wang", HASH), Principal("wang", HASH)], "listed twice: wang"),
        ([Principal("wang:x", HASH)], "principal user 'wang:x' must match"),
        ([Principal("wang", HASH, ("a b",))], "group 'a b' must match"),
    ]
    for principals, message in cases:
        with pytest.raises(ValueError, match=_escaped(message)):
            publish(etc, grants=[], principals=principals, admin_user="datong", now=NOW,
                    table_columns=COLUMNS)  # fmt: skip
    assert (etc / "password.db").read_text() == before
    assert not (etc / "rules.json").exists()


def test_publish_needs_the_admin_hash(tmp_path: Path):
    with pytest.raises(ValueError, match="no password hash for the admin user 'datong'"):
        publish(tmp_path, grants=[], principals=[], admin_user="datong", now=NOW, table_columns={})
    publish(tmp_path, grants=[], principals=[], admin_user="datong", now=NOW, table_columns={},
            admin_password_bcrypt=HASH)  # fmt: skip
    assert (tmp_path / "password.db").read_text() == f"datong:{HASH}\n"


def test_ensure_admin_password_keeps_a_matching_hash_and_replaces_a_stale_one(tmp_path: Path):
    from warehouse.access import ensure_admin_password

    (tmp_path / "password.db").write_text(f"datong:{HASH}\nwang:{HASH}\n")
    ensure_admin_password(tmp_path, "datong", "pw")
    assert (tmp_path / "password.db").read_text() == f"datong:{HASH}\nwang:{HASH}\n"
    ensure_admin_password(tmp_path, "datong", "new-password")
    lines = (tmp_path / "password.db").read_text().splitlines()
    assert lines[1] == f"wang:{HASH}"
    admin_hash = lines[0].removeprefix("datong:")
    assert bcrypt.checkpw(b"new-password", admin_hash.encode())
