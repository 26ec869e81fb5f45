"""The golden-record transforms on frames of a few rows (shared Spark session, no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest

from jobs import golden
from jobs.golden import Attribute, LibraryRules, SourceDecl
from tests.trino_support import UNGRANTED_PASSWORD

pytestmark = pytest.mark.integration

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)
PERSON = "population.person"

RULES = LibraryRules(
    library="people",
    title_zh="测试库",
    table="people.person",
    key="pid",
    subjects_from="registry",
    sources={
        "registry": SourceDecl("registry", "silver.r", "police", "户籍"),
        "civil": SourceDecl("civil", "silver.c", "civil_affairs", "民政"),
        "tax": SourceDecl("tax", "silver.t", "tax", "税务"),
    },
    attributes={
        "name": Attribute("name", "string", ("registry",), ("tax",)),
        "married": Attribute("married", "boolean", ("civil", "registry")),
        "born": Attribute("born", "date", ("registry",)),
    },
)


@pytest.fixture()
def views(spark):
    registry = spark.createDataFrame(
        [
            ("p1", "张三", False, D1, D1),
            ("p2", "李四", True, D2, D2),
            ("p2", "李四旧", True, D2, D1),
        ],
        "pid string, name string, married boolean, born date, confirmed_at date",
    )
    civil = spark.createDataFrame(
        [("p1", True, D3)], "pid string, married boolean, confirmed_at date"
    )
    tax = spark.createDataFrame(
        [("p1", "张叁", D2), ("p2", "李四", D3), ("p9", "王五", D3)],
        "pid string, name string, confirmed_at date",
    )
    return {"registry": registry, "civil": civil, "tax": tax}


def test_the_most_authoritative_value_wins_with_its_provenance(views):
    facts = golden.facts(views, RULES)
    chosen = golden.choose(facts, RULES)
    gold_rows = golden.golden(chosen, golden.subjects(views, RULES), RULES).collect()
    gold = {r["pid"]: r for r in gold_rows}
    assert set(gold) == {"p1", "p2"}  # p9 is only known to 税务
    # 民政 outranks the register for marriage; the register is the fallback for p2.
    assert gold["p1"]["married"] is True
    assert gold["p1"][golden.PROVENANCE]["married"]["source"] == "civil"
    assert gold["p2"]["married"] is True
    assert gold["p2"][golden.PROVENANCE]["married"]["source"] == "registry"
    # The latest row of a source wins: 李四 (confirmed D2), not 李四旧 (D1).
    assert gold["p2"]["name"] == "李四"
    assert gold["p1"]["born"] == D1
    assert gold["p2"][golden.PROVENANCE]["name"]["confirmed_at"] == D2


def test_checking_sources_that_disagree_are_conflicts(views):
    facts = golden.facts(views, RULES)
    chosen = golden.choose(facts, RULES)
    rows = golden.conflicts(facts, chosen, RULES).collect()
    found = [
        (r["subject"], r["attribute"], r["source"], r["value"], r["chosen_value"], r["department"])
        for r in rows
    ]
    assert found == [("p1", "name", "tax", "张叁", "张三", "tax")]
    assert rows[0]["first_seen"] == D1 and rows[0]["last_seen"] == D2
    work = golden.worklist(golden.conflicts(facts, chosen, RULES), RULES).collect()
    assert work[0]["your_value"] == "张叁" and work[0]["authoritative_source"] == "registry"


def test_rows_about_unknown_subjects_are_listed_not_lost(views):
    subjects = golden.subjects(views, RULES)
    rows = golden.unmatched(views, subjects, RULES).collect()
    assert [(r["subject"], r["source"], r["department"]) for r in rows] == [("p9", "tax", "tax")]


def test_every_view_row_is_held_or_listed_and_a_lost_row_shows(views):
    subjects = golden.subjects(views, RULES)
    unmatched = golden.unmatched(views, subjects, RULES)
    accounts = golden.account(views, subjects, unmatched, RULES)
    # registry: p1, p2, p2; civil: p1; tax: p1, p2 held and p9 listed.
    assert accounts == {
        "registry": golden.Account(rows=3, held=3, listed=0),
        "civil": golden.Account(rows=1, held=1, listed=0),
        "tax": golden.Account(rows=3, held=2, listed=1),
    }
    assert all(a.balanced for a in accounts.values())
    # An exclusion list that dropped p9's row: tax no longer adds up.
    lost = golden.account(views, subjects, unmatched.where("subject <> 'p9'"), RULES)
    assert lost["tax"] == golden.Account(rows=3, held=2, listed=0)
    assert not lost["tax"].balanced
    # A view with no rows at all is counted as zero, not left out.
    views["civil"] = views["civil"].where("false")
    assert golden.account(views, subjects, unmatched, RULES)["civil"] == golden.Account(0, 0, 0)
    # A row without a key is never held; the exclusion list carries it.
    views["tax"] = views["tax"].unionByName(
        views["tax"].sparkSession.createDataFrame(
            [(None, "无名", D3)], "pid string, name string, confirmed_at date"
        )
    )
    unmatched = golden.unmatched(views, subjects, RULES)
    assert golden.account(views, subjects, unmatched, RULES)["tax"] == golden.Account(4, 2, 2)


def test_a_follower_takes_its_leaders_source_even_without_a_value(spark):
    """After a divorce 民政 has no spouse: 户籍's stale spouse must not fill the gap."""
    rules = LibraryRules(
        library="people", title_zh="测试库", table="people.person", key="pid",
        subjects_from="registry",
        sources={"registry": RULES.sources["registry"], "civil": RULES.sources["civil"]},
        attributes={
            "status": Attribute("status", "string", ("civil", "registry")),
            "spouse": Attribute("spouse", "string", ("civil", "registry"), follows="status"),
        },
    )  # fmt: skip
    schema = "pid string, status string, spouse string, confirmed_at date"
    views = {
        # p1 and p2 married; p1 divorced later (民政); 户籍 still has p1 married to p2.
        "civil": spark.createDataFrame(
            [("p1", "20", "p2", D1), ("p1", "40", None, D3), ("p3", "20", "p4", D2)], schema
        ),
        "registry": spark.createDataFrame(
            [("p1", "20", "p2", D1), ("p3", "20", None, D1), ("p5", "10", "p6", D1)], schema
        ),
    }
    chosen = golden.choose(golden.facts(views, rules), rules)
    subjects = spark.createDataFrame([("p1",), ("p3",), ("p5",)], "pid string")
    rows = golden.golden(chosen, subjects, rules).collect()
    got = {
        r["pid"]: (r["status"], r["spouse"], r[golden.PROVENANCE]["spouse"]["source"]) for r in rows
    }
    assert got == {
        "p1": ("40", None, "civil"),  # divorced: no spouse, and 民政 says so
        "p3": ("20", "p4", "civil"),
        "p5": ("10", "p6", "registry"),  # no 民政 record: 户籍 gives both
    }


def test_version_hash_changes_with_any_attribute(views, spark):
    facts = golden.facts(views, RULES)
    gold = golden.golden(golden.choose(facts, RULES), golden.subjects(views, RULES), RULES)
    first = {r["pid"]: r for r in golden.version_hash(gold, RULES).collect()}
    views["civil"] = spark.createDataFrame(
        [("p1", False, D3)], "pid string, married boolean, confirmed_at date"
    )
    facts = golden.facts(views, RULES)
    gold = golden.golden(golden.choose(facts, RULES), golden.subjects(views, RULES), RULES)
    second = {r["pid"]: r for r in golden.version_hash(gold, RULES).collect()}
    assert first["p1"][golden.VERSION_HASH] != second["p1"][golden.VERSION_HASH]
    assert first["p2"][golden.VERSION_HASH] == second["p2"][golden.VERSION_HASH]
    assert second["p1"][golden.VALID_FROM] == D3  # the newest fact behind the version


def test_golden_rows_merge_into_the_lake_and_read_through_trino(views, spark, platform_settings):
    """Written by the build's MERGE, registered, queried by Trino with provenance and history."""
    from delta.tables import DeltaTable

    from datong import query, tables
    from datong.storage import spark_location
    from jobs.ingest import register_in_trino

    settings = platform_settings
    facts = golden.facts(views, RULES)
    chosen = golden.choose(facts, RULES)
    subjects = golden.subjects(views, RULES)
    gold = golden.version_hash(golden.golden(chosen, subjects, RULES), RULES)
    name, history = "population.tiny_person", "population.tiny_person_history"
    golden.merge_subjects(spark, settings, name, "pid", subjects, gold.drop(golden.VERSION_HASH))
    golden.merge_history(spark, settings, history, "pid", gold)
    # p1 divorces (民政, a later date): one subject changes, the other must not be touched.
    views["civil"] = spark.createDataFrame(
        [("p1", False, dt.date(2026, 4, 1))], "pid string, married boolean, confirmed_at date"
    )
    facts = golden.facts(views, RULES)
    changed = golden.version_hash(
        golden.golden(golden.choose(facts, RULES), golden.subjects(views, RULES), RULES), RULES
    ).where("pid = 'p1'")
    affected = spark.createDataFrame([("p1",)], "pid string")
    golden.merge_subjects(spark, settings, name, "pid", affected, changed.drop(golden.VERSION_HASH))
    golden.merge_history(spark, settings, history, "pid", changed)
    # Both MERGEs replaced p1's row by marking it in a deletion vector, not by rewriting the
    # file: Trino below must apply the vectors or it would see p1 twice.
    for table in (name, history):
        log = DeltaTable.forPath(spark, spark_location(settings, table)).history(1).collect()
        assert int(log[0]["operationMetrics"]["numTargetDeletionVectorsAdded"]) >= 1, table
    assert register_in_trino(settings, [name, history])

    rows = query.run(
        settings,
        f"SELECT pid, married, _provenance['married'].source FROM lake.{name} ORDER BY pid",
    ).rows
    assert [tuple(r) for r in rows] == [("p1", False, "civil"), ("p2", True, "registry")]
    versions = query.run(
        settings,
        f"SELECT pid, married, valid_from, valid_to FROM lake.{history} ORDER BY pid, valid_from",
    ).rows
    assert [tuple(r) for r in versions] == [
        ("p1", True, D3, dt.date(2026, 4, 1)),
        ("p1", False, dt.date(2026, 4, 1), None),
        ("p2", True, D2, None),
    ]
    # As of 2026-03-15, p1 was married.
    as_of = query.run(
        settings,
        f"SELECT married FROM lake.{history} WHERE pid = 'p1' AND valid_from <= DATE '2026-03-15' "
        "AND (valid_to IS NULL OR valid_to > DATE '2026-03-15')",
    ).rows
    assert [tuple(r) for r in as_of] == [(True,)]
    with pytest.raises(query.QueryError, match="Access Denied: Cannot access catalog lake"):
        query.run(
            settings,
            f"SELECT * FROM lake.{name}",
            user="analyst_without_grant",
            password=UNGRANTED_PASSWORD,
        )
    assert tables.read(spark, settings, name).count() == 2


# ---- an incremental batch reads only the affected subjects' silver rows ---------------------

T1 = dt.datetime(2026, 1, 1, 9)
T2, T3 = dt.datetime(2026, 2, 1, 9), dt.datetime(2026, 3, 1, 9)


def _silver(spark, table: str, rows: list[dict]):
    """A silver table of ``table``'s contract with ``rows`` (unnamed columns null)."""
    from datong.contracts import load_resources
    from jobs import silver

    schema = silver.empty(spark, load_resources()["bronze." + table.split(".", 1)[1]]).schema
    return spark.createDataFrame([tuple(r.get(f.name) for f in schema) for r in rows], schema)


def _affected(spark, keys: list[str], key: str):
    from jobs.affected import Affected

    return Affected(spark.createDataFrame([(k,) for k in keys], f"{key} string"), key, len(keys))


def _same_views(module, silver: dict, affected, *args) -> set[str]:
    """Views of the restricted silver equal the views of all of it, for the affected keys.

    Returns the names of the views that have rows for them.
    """
    full = module.views(silver, *args)
    restricted = module.views(module.rows_for(silver, affected), *args)
    assert set(full) == set(restricted)
    seen = set()
    for name in full:

        def rows(view):
            picked = view.join(affected.named(affected.key), affected.key, "left_semi")
            return sorted((tuple(r) for r in picked.collect()), key=repr)

        expected = rows(full[name])
        assert rows(restricted[name]) == expected, name
        seen |= {name} if expected else set()
    return seen


@pytest.fixture()
def population_silver(spark):
    def person(pid, household, relation, marital="20", **extra):
        return {"person_id": pid, "name": "人" + pid, "household_id": household,
                "relation_to_head": relation, "marital_status": marital, "update_time": T1,
                **extra}  # fmt: skip

    register = [
        person("A", "H1", "02"), person("B", "H1", "10"), person("C", "H1", "20", "10"),
        person("D", "H2", "02"), person("E", None, "02", "10"),
        person("G", "H3", "02", cancellation_reason="死亡", cancellation_date=D2),
    ]  # fmt: skip
    marriage = [
        {"registration_no": "M1", "registration_type": "结婚", "male_id": "A", "female_id": "B",
         "registration_date": D1},
        {"registration_no": "M2", "registration_type": "结婚", "male_id": "D", "female_id": "F",
         "registration_date": D1},
        {"registration_no": "M3", "registration_type": "离婚", "male_id": "E", "female_id": "B",
         "registration_date": D2},
    ]  # fmt: skip
    one = {"silver.death_registration": [{"registration_no": "X1", "person_id": "C",
                                          "death_date": D2, "registration_date": D2}],
           "silver.social_insurance": [{"person_id": p, "insurance_type": "110",
                                        "status": "1", "update_time": T1} for p in "BDE"],
           "silver.student_enrollment": [{"person_id": "C", "stage": "小学",
                                          "enrollment_date": D1}],
           "silver.natural_person_taxpayer": [{"person_id": p, "tax_status": "正常",
                                               "update_time": T1} for p in "AEG"]}  # fmt: skip
    rows = {"silver.household_register": register, "silver.marriage_registration": marriage}
    return {t: _silver(spark, t, r) for t, r in {**rows, **one}.items()}


@pytest.mark.parametrize(
    ("keys", "closed"),
    [
        # B's household H1 brings its head A and child C; F and E have no household row.
        (["B", "F", "E"], "ABCEF"),
        (["A", "C", "D"], "ABCD"),
        (["G", "B", "D", "F"], "ABCDFG"),
    ],
)
def test_population_views_need_only_the_affected_persons_rows(
    spark, population_silver, keys, closed
):
    """A spouse comes from the household's other rows, a partner from either side of 民政."""
    from jobs import population

    frame = spark.createDataFrame([(k,) for k in keys], "person_id string")
    members = population.closure(population_silver, {}, frame).collect()
    assert sorted(r["person_id"] for r in members) == list(closed)
    affected = _affected(spark, list(closed), "person_id")
    restricted = population.rows_for(population_silver, affected)
    register = restricted["silver.household_register"].collect()
    # Only the affected persons' households are read, each row once.
    assert len(register) == len({r["person_id"] for r in register})
    seen = _same_views(population, population_silver, affected)
    assert {"household", "marriage"} <= seen, "the test would prove nothing"


def test_legal_person_views_need_only_the_affected_entities_rows(spark):
    from jobs import golden, legal_person

    def entity(code, **extra):
        return {"credit_code": code, "name": "单位" + code, "status": "存续",
                "establish_date": D1, "update_time": T1, **extra}  # fmt: skip

    silver = {
        "silver.enterprise_registration": [entity("91A"), entity("91B"), entity("12X")],
        "silver.public_institution": [entity("12C"), entity("12D")],
        "silver.social_organization": [entity("51E"), entity("91A")],
        "silver.enterprise_taxpayer": [entity("91A", tax_status="正常"), entity("51E")],
    }
    frames = {t: _silver(spark, t, rows) for t, rows in silver.items()}
    affected = _affected(spark, ["91A", "12C", "51E"], "credit_code")
    registries = golden.load_rules("legal_person").registries
    assert _same_views(legal_person, frames, affected, registries) == {"registry", "tax"}


def test_rows_naming_two_affected_subjects_keeps_the_row_once(spark):
    from jobs.affected import rows_naming

    marriage = _silver(spark, "silver.marriage_registration", [
        {"registration_no": "M1", "male_id": "A", "female_id": "B"},
        {"registration_no": "M2", "male_id": "C", "female_id": None},
        {"registration_no": "M3", "male_id": None, "female_id": "A"},
    ])  # fmt: skip
    rows = rows_naming(marriage, ["male_id", "female_id"], _affected(spark, ["A", "B"], "x"))
    assert sorted(r["registration_no"] for r in rows.collect()) == ["M1", "M3"]


def test_history_periods_never_empty_or_overlapping(spark, tmp_path, s3_test_settings):
    """A change its facts date before the open version starts when it was recorded; a second
    change on the day a version started replaces that version."""
    from datong import tables
    from tests.conftest import make_settings

    settings, name = make_settings(tmp_path, "file", s3_test_settings), "population.tiny_history"
    schema = "pid string, married boolean, valid_from date, _version_hash string"
    april = dt.date(2026, 4, 1)

    def write(rows, recorded_on):
        current = spark.createDataFrame(rows, schema)
        golden.merge_history(spark, settings, name, "pid", current, recorded_on=recorded_on)

    write([("p1", True, D2, "a"), ("p2", True, D2, "b")], D2)
    # p1's new fact is dated D1, before its open version (D2): it counts from D3, the day the
    # platform recorded it. p2's is dated after its open version: it counts from that date.
    write([("p1", False, D1, "c"), ("p2", False, april, "d")], D3)
    # p1 changes again on D3, the day its open version started: that version is replaced.
    write([("p1", True, D1, "e")], D3)
    rows = sorted(
        ((r["pid"], r["married"], r["valid_from"], r["valid_to"], r["_version_hash"])
         for r in tables.read(spark, settings, name).collect()),
        key=lambda row: (row[0], row[2]),
    )  # fmt: skip
    assert rows == [
        ("p1", True, D2, D3, "a"),
        ("p1", True, D3, None, "e"),
        ("p2", True, D2, april, "b"),
        ("p2", False, april, None, "d"),
    ]


# ---- a batch rebuilds every member of a household it touches ---------------------------------


def _bronze(spark, table: str, rows: list[dict], batch: str):
    """Bronze rows of ``table``'s contract, delivered in ``batch`` (unnamed columns null)."""
    from pyspark.sql import functions as F

    frame = _silver(spark, table, rows).drop("_content_hash")
    return frame.withColumns({"_batch_id": F.lit(batch), "_source_file": F.lit(batch + ".csv")})


def _deliver(
    spark, settings, batch: str, deliveries: dict[str, list[dict]], library="population",
    persons=None, relink_all=False, full=(), after_snapshot=(), merged=None,
):  # fmt: skip
    """What ``jobs.build.build`` does with one batch: MERGE into silver, rebuild the subjects.

    ``full``: the tables whose delivery is a complete snapshot (its rows' keys all it
    holds); ``after_snapshot``: those a newer complete snapshot was built of already.
    ``merged`` (a list) receives each table's ``SilverResult``.
    """
    from datong.contracts import load_resources
    from jobs import build, silver
    from jobs.snapshot import Snapshot

    resources = load_resources()
    changed = {}
    for table, rows in deliveries.items():
        resource = resources["bronze." + table[7:]]
        bronze = _bronze(spark, table, rows, batch)
        snapshot = Snapshot(batch, bronze.select(*resource.primary_key)) if table in full else None
        result = silver.merge_batch(
            spark, settings, resource, bronze, snapshot=snapshot,
            after_snapshot=table in after_snapshot,
        )  # fmt: skip
        changed[result.table] = result.changed
        if merged is not None:
            merged.append(result)
    return build.build_library(spark, settings, library, batch, changed, persons, relink_all)


def _member(pid, household, relation, **extra):
    return {"person_id": pid, "name": "人" + pid, "gender": "1", "birth_date": D1,
            "household_id": household, "relation_to_head": relation, "marital_status": "20",
            "division_code": "420102", "update_time": T1, **extra}  # fmt: skip


@pytest.fixture()
def household_lake(tmp_path, s3_test_settings):
    from tests.conftest import make_settings

    return make_settings(tmp_path, "file", s3_test_settings)


def test_a_subjects_rows_are_replaced_in_one_commit(spark, household_lake):
    """Conflicts, worklists, exclusions, relationships: the affected subjects' rows only."""
    from delta.tables import DeltaTable

    from datong import tables
    from datong.storage import spark_location

    settings, name = household_lake, "population.tiny_conflict"
    schema = "subject string, attribute string, value string"
    first = [("p1", "name", "a"), ("p1", "born", "b"), ("p2", "name", "c"), ("p3", "name", "d")]
    golden.replace_for_subjects(
        spark, settings, name, "subject",
        spark.createDataFrame([("p1",), ("p2",), ("p3",)], "subject string"),
        spark.createDataFrame(first, schema),
    )  # fmt: skip
    # p1 keeps one of its two rows and gains one, p2 has none left, p4 is new, p3 untouched;
    # a null key is no subject and adds no row.
    golden.replace_for_subjects(
        spark, settings, name, "subject",
        spark.createDataFrame([("p1",), ("p2",), ("p4",), ("p4",), (None,)], "subject string"),
        spark.createDataFrame(
            [("p1", "name", "a"), ("p1", "gender", "e"), ("p4", "name", "f")], schema
        ),
    )  # fmt: skip
    rows = sorted(tuple(r) for r in tables.read(spark, settings, name).collect())
    assert rows == [
        ("p1", "gender", "e"), ("p1", "name", "a"), ("p3", "name", "d"), ("p4", "name", "f")
    ]  # fmt: skip
    log = DeltaTable.forPath(spark, spark_location(settings, name)).history().collect()
    assert [r["operation"] for r in sorted(log, key=lambda r: r["version"])] == ["WRITE", "MERGE"]


def test_a_batch_rebuilds_the_households_it_touches(spark, household_lake):
    """The spouse's spouse and a member's head come from other members' rows."""
    from datong import tables

    settings = household_lake
    register = "silver.household_register"
    # Batch 1: the spouse S and the child C of household H1 are registered; its head is not.
    _deliver(spark, settings, "b1", {register: [
        _member("S", "H1", "10"), _member("C", "H1", "20", marital_status="10"),
    ]})  # fmt: skip
    # Batch 2: the head H is registered; nothing else about S or C is delivered.
    _deliver(spark, settings, "b2", {register: [_member("H", "H1", "02", update_time=T2)]})

    def state():
        person = {
            r["person_id"]: r["spouse_id"]
            for r in tables.read(spark, settings, "population.person").collect()
        }
        related = {
            (r["person_id"], r["related_id"], r["relation"])
            for r in tables.read(spark, settings, "population.relationship").collect()
        }
        return person, related

    person, related = state()
    assert person == {"H": "S", "S": "H", "C": None}
    assert related == {("S", "H", "10"), ("C", "H", "20"), ("H", "S", "10")}
    # Batch 3: only 税务 says something about C; C's relationship to the head H stays.
    _deliver(spark, settings, "b3", {"silver.natural_person_taxpayer": [
        {"person_id": "C", "name": "人C", "tax_status": "正常", "update_time": T2},
    ]})  # fmt: skip
    assert state()[1] == related
    # Batch 4: the head moves to a household of his own; H1 is left without a head.
    _deliver(spark, settings, "b4", {register: [_member("H", "H9", "02", update_time=T3)]})
    person, related = state()
    assert person == {"H": None, "S": None, "C": None}
    assert related == set()


def test_a_late_batch_changes_no_newer_row_and_ends_as_a_full_build(
    spark, tmp_path, s3_test_settings
):
    """A batch-1 file built after batch 2 (a redelivery): as if built in batch order."""
    from datong import tables
    from tests.conftest import make_settings

    register = "silver.household_register"
    # Batch 1 as first delivered, batch 2, and the batch-1 file the department sent again
    # later: P moved in batch 2 (H2); the late file still has P in H1 and adds Q.
    first = [_member("P", "H1", "02")]
    second = [_member("P", "H2", "02", update_time=T2)]
    late = [_member("P", "H1", "02", name="人P旧"), _member("Q", "H3", "02")]

    def persons(settings):
        rows = tables.read(spark, settings, "population.person").collect()
        return {r["person_id"]: (r["name"], r["household_id"]) for r in rows}

    incremental = make_settings(tmp_path / "incremental", "file", s3_test_settings)
    _deliver(spark, incremental, "batch-0001", {register: first})
    _deliver(spark, incremental, "batch-0002", {register: second})
    _deliver(spark, incremental, "batch-0001", {register: late})
    ordered = make_settings(tmp_path / "ordered", "file", s3_test_settings)
    _deliver(spark, ordered, "batch-0001", {register: first + late})
    _deliver(spark, ordered, "batch-0002", {register: second})
    # Expected from the batches' order, not from either build: P as batch 2 has him, Q added.
    assert persons(incremental) == {"P": ("人P", "H2"), "Q": ("人Q", "H3")}
    assert persons(ordered) == persons(incremental)
    silver_rows = {
        r["person_id"]: r["_batch_id"] for r in tables.read(spark, incremental, register).collect()
    }
    assert silver_rows == {"P": "batch-0002", "Q": "batch-0001"}


def test_a_derived_library_is_rebuilt_when_a_library_it_reads_changed(
    spark, household_lake, monkeypatch
):
    """As the build DAG runs it: the population in one task, a derived library in the next."""
    from types import SimpleNamespace

    from jobs import build

    settings, register = household_lake, "silver.household_register"
    rebuilt = []
    derived = SimpleNamespace(
        UPSTREAM=["population"], SOURCES=[], TABLES=[],
        build=lambda spark, settings, as_of: rebuilt.append(as_of) or {},
    )  # fmt: skip
    monkeypatch.setitem(build.DERIVED, "derived", derived)
    monkeypatch.setattr(build, "ORDER", (*build.ORDER, "derived"))
    _deliver(spark, settings, "b1", {register: [_member("P", "H1", "02")]})
    build.build(["derived"], settings, spark, register=False, as_of=D1)
    build.build(["derived"], settings, spark, register=False, as_of=D2)  # nothing changed
    assert rebuilt == [D1]
    _deliver(spark, settings, "b2", {register: [_member("P", "H2", "02", update_time=T2)]})
    build.build(["derived"], settings, spark, register=False, as_of=D3)
    assert rebuilt == [D1, D3]


def test_a_build_takes_the_files_the_ingest_ledger_says_landed(spark, household_lake):
    """Accepted rows of a succeeded ingest only: not a failed, skipped or all-rejected file."""
    from jobs import build
    from jobs.ingest import FileResult, write_ledger

    assert build._ingested_files(spark, household_lake) is None  # no ledger: bronze is scanned

    def result(resource, file, status, accepted):
        return FileResult(
            "police.household", resource, "batch-0001", file, "sum-" + file, status,
            rows_read=accepted + 1, accepted=accepted, quarantined=1,
        )  # fmt: skip

    write_ledger(spark, household_lake, [
        result("bronze.household_register", "police/a.csv", "succeeded", 5),
        result("bronze.household_register", "police/b.csv", "failed", 0),
        result("bronze.household_register", "police/c.csv", "succeeded", 0),
        result("bronze.household_register", "police/a.csv", "skipped", 0),
        result("bronze.marriage_registration", "civil/m.csv", "succeeded", 2),
    ])  # fmt: skip
    assert build._ingested_files(spark, household_lake) == {
        "bronze.household_register": {"police/a.csv"},
        "bronze.marriage_registration": {"civil/m.csv"},
    }


def _entity(code, representative):
    return {"credit_code": code, "name": "单位" + code, "status": "存续",
            "legal_representative_id": representative, "establish_date": D1,
            "update_time": T1}  # fmt: skip


def _linked(spark, settings, table="legal_person.entity"):
    from datong import tables

    rows = tables.read(spark, settings, table).collect()
    return sorted((r["credit_code"], r["legal_representative_linked"]) for r in rows)


def test_a_representative_registered_later_links_the_legal_person(spark, household_lake):
    """The person record arrives in batches that say nothing about the legal person."""
    from datong import tables

    settings = household_lake
    register = "silver.household_register"
    # Batch 1: two enterprises, before the population library exists.
    _deliver(spark, settings, "b1", {"silver.enterprise_registration": [
        _entity("91A", "R"), _entity("91B", "P"),
    ]}, "legal_person")  # fmt: skip
    assert _linked(spark, settings) == [("91A", False), ("91B", False)]
    # Batch 2: P is registered (confirmed D2); the legal-person build has nothing of its own.
    people = _deliver(spark, settings, "b2", {register: [_member("P", "H1", "02", update_time=T2)]})
    relinked = _deliver(spark, settings, "b2", {}, "legal_person", people.keys)
    assert relinked.affected == 1  # 91B only: 91A's representative is still unknown
    assert _linked(spark, settings) == [("91A", False), ("91B", True)]
    # Batch 3: R is registered (confirmed D3); every entity is compared, as a build's first.
    _deliver(spark, settings, "b3", {register: [_member("R", "H2", "02", update_time=T3)]})
    assert _deliver(spark, settings, "b3", {}, "legal_person", relink_all=True).affected == 1
    assert _linked(spark, settings) == [("91A", True), ("91B", True)]
    # Nothing changed since: nothing to relink.
    assert _deliver(spark, settings, "b4", {}, "legal_person", relink_all=True).affected == 0
    # The unlinked versions end where the representative's person record starts.
    history = tables.read(spark, settings, "legal_person.entity_history").collect()
    versions = sorted(
        (r["credit_code"], r["legal_representative_linked"], r["valid_from"], r["valid_to"])
        for r in history
    )
    assert versions == [("91A", False, D1, D3), ("91A", True, D3, None),
                        ("91B", False, D1, D2), ("91B", True, D2, None)]  # fmt: skip
    provenance = {
        r["credit_code"]: r["_provenance"]["legal_representative_linked"]
        for r in tables.read(spark, settings, "legal_person.entity").collect()
    }
    assert provenance == {"91A": ("population", D3), "91B": ("population", D2)}


def test_an_entity_table_from_before_the_flag_gains_it(spark, household_lake):
    """Tables written before ``legal_representative_linked`` existed: added, then filled."""
    from datong import tables
    from datong.storage import spark_location

    settings = household_lake
    _deliver(spark, settings, "b1", {"silver.enterprise_registration": [
        _entity("91A", "R"), _entity("91B", "P"),
    ]}, "legal_person")  # fmt: skip
    for name in ("legal_person.entity", "legal_person.entity_history"):
        old = tables.read(spark, settings, name).drop("legal_representative_linked")
        old.localCheckpoint().write.format("delta").mode("overwrite").option(
            "overwriteSchema", "true"
        ).save(spark_location(settings, name))
    _deliver(spark, settings, "b2", {"silver.household_register": [_member("P", "H1", "02")]})
    assert _deliver(spark, settings, "b2", {}, "legal_person", relink_all=True).affected == 2
    assert _linked(spark, settings) == [("91A", False), ("91B", True)]


# ---- full snapshots retire what they no longer hold -------------------------------------------


def _student(number, pid, stage="小学"):
    return {"student_no": number, "person_id": pid, "name": "人" + pid, "gender": "1",
            "birth_date": D1, "school_name": "一小", "stage": stage, "status": "在读",
            "enrollment_date": D1}  # fmt: skip


def test_a_complete_snapshot_retires_what_it_no_longer_holds(spark, household_lake):
    """A student no longer enrolled loses the schooling; a person gone from the register
    leaves the library and their history closes."""
    from datong import tables
    from jobs import golden

    settings = household_lake
    register, school = "silver.household_register", "silver.student_enrollment"
    people = [_member("P", "H1", "02"), _member("Q", "H2", "02")]
    _deliver(spark, settings, "b1", {register: people,
                                     school: [_student("S1", "P"), _student("S2", "Q")]},
             full={register, school})  # fmt: skip

    def state():
        person = tables.read(spark, settings, "population.person").collect()
        return {r["person_id"]: r["schooling"] for r in person}

    assert state() == {"P": "小学:一小:在读", "Q": "小学:一小:在读"}
    # Batch 2: Q's enrollment is gone from 教育's whole list; the register is unchanged.
    merged = []
    _deliver(spark, settings, "b2", {register: people, school: [_student("S1", "P")]},
             full={register, school}, merged=merged)  # fmt: skip
    assert {m.table: m.retired for m in merged} == {register: 0, school: 1}
    assert [r["student_no"] for r in tables.read(spark, settings, school).collect()] == ["S1"]
    assert state() == {"P": "小学:一小:在读", "Q": None}
    # Batch 3: Q has left the register too.
    _deliver(spark, settings, "b3", {register: people[:1]}, full={register})
    assert state() == {"P": "小学:一小:在读"}
    history = {
        (r["person_id"], r[golden.VALID_TO])
        for r in tables.read(spark, settings, "population.person_history").collect()
    }
    # Q's one version (from b1; b2 changed only the schooling) closed on the build's date.
    assert ("Q", dt.date.today()) in history and ("Q", None) not in history
    assert ("P", None) in history


def test_an_incomplete_snapshot_retires_nothing_and_a_late_batch_brings_nothing_back(
    spark, household_lake
):
    from datong import tables

    settings, school = household_lake, "silver.student_enrollment"
    register = "silver.household_register"
    _deliver(spark, settings, "b1", {register: [_member("P", "H1", "02"),
                                                _member("Q", "H2", "02")],
                                     school: [_student("S1", "P"), _student("S2", "Q")]},
             full={school})  # fmt: skip
    # Batch 2 without S2, but not a complete snapshot (a file of it failed): S2 stays.
    merged = []
    _deliver(spark, settings, "b2", {school: [_student("S1", "P", "初中")]}, merged=merged)
    assert merged[0].retired is None

    def students():
        return {r["student_no"]: r["stage"] for r in tables.read(spark, settings, school).collect()}

    assert students() == {"S1": "初中", "S2": "小学"}
    # Batch 3, complete, without S2: retired (S1 has moved on to 高中).
    _deliver(spark, settings, "b3", {school: [_student("S1", "P", "高中")]}, full={school})
    assert students() == {"S1": "高中"}
    # A file of batch 2 sent again late, naming S2 and S3 and an older S1: built after the
    # complete batch 3, it brings back no key batch 3 lacked and changes no newer row.
    merged = []
    _deliver(spark, settings, "b2", {school: [_student("S2", "Q"), _student("S3", "Q"),
                                              _student("S1", "P", "小学")]},
             after_snapshot={school}, merged=merged)  # fmt: skip
    assert students() == {"S1": "高中"}
    assert (merged[0].upserted, merged[0].superseded) == (1, 2)


def test_a_build_retires_keys_only_a_complete_batch_lacks(spark, household_lake):
    """Through ``build``: the ingest ledger says which batches are whole, the quarantine
    which keys a batch still named."""
    from datong import tables
    from jobs import build
    from jobs.ingest import LEDGER as INGEST_LEDGER
    from jobs.ingest import QUARANTINE, FileResult, write_ledger

    settings = household_lake
    school = "bronze.student_enrollment"

    def land(table, batch, file, rows, status="succeeded"):
        if rows:
            frame = _bronze(spark, "silver." + table[7:], rows, batch)
            tables.append(frame.withColumn("_source_file", F.lit(file)), settings, table)
        write_ledger(spark, settings, [FileResult(
            "src", table, batch, file, "sum-" + file, status, rows_read=len(rows),
            accepted=len(rows), quarantined=0, finished_at=dt.datetime.now(),
        )])  # fmt: skip

    from pyspark.sql import functions as F

    land("bronze.household_register", "batch-0001", "police/1.csv",
         [_member(p, "H" + p, "02") for p in "PQR"])  # fmt: skip
    land(school, "batch-0001", "edu/1.csv",
         [_student("S1", "P"), _student("S2", "Q"), _student("S4", "R")])  # fmt: skip
    # Batch 2 lacks S2 and S4; S2's row was quarantined for its stage, so it still says S2.
    land(school, "batch-0002", "edu/2.csv", [_student("S1", "P")])
    quarantined = spark.createDataFrame(
        [("src", school, "edu/2.csv", "batch-0002", 2,
          "S2,Q,人Q,1,2026-01-01,一小,,大学,2026-01-01,,在读",
          [("INGEST-010", "stage", "取值不在允许范围内", "not allowed")], dt.datetime(2026, 1, 2))],
        "_source_id string, _resource string, _source_file string, _batch_id string, "
        "_row_number long, _raw string, "
        "problems array<struct<rule_id:string,field:string,reason_zh:string,reason_en:string>>, "
        "_ingested_at timestamp",
    )  # fmt: skip
    tables.append(quarantined, settings, QUARANTINE)
    build.build(["population"], settings, spark, register=False, as_of=D3)

    def silver_keys():
        rows = tables.read(spark, settings, "silver.student_enrollment").collect()
        return {r["student_no"] for r in rows}

    def schooling():
        rows = tables.read(spark, settings, "population.person").collect()
        return {r["person_id"]: r["schooling"] is not None for r in rows}

    def retired():
        rows = tables.read(spark, settings, build.LEDGER).where(F.col("bronze") == school)
        return {r["batch_id"]: r["retired"] for r in rows.collect()}

    assert silver_keys() == {"S1", "S2"}
    assert schooling() == {"P": True, "Q": True, "R": False}
    assert retired() == {"batch-0001": 0, "batch-0002": 1}
    # Batch 3 lacks S2 too, but one of its files failed: it is not the whole list.
    land(school, "batch-0003", "edu/3a.csv", [_student("S1", "P", "初中")])
    land(school, "batch-0003", "edu/3b.txt", [], status="failed")
    build.build(["population"], settings, spark, register=False, as_of=D3)
    assert silver_keys() == {"S1", "S2"}
    assert retired()["batch-0003"] is None
    assert tables.exists(spark, settings, INGEST_LEDGER)


def test_a_linked_row_reaches_gold_and_is_decided_once_whatever_its_batch_rebuilt(
    spark, household_lake
):
    """A death registration whose every row was rejected rebuilds no person; its row with
    a wrong check character is still linked at the next build, decided only once, and the
    death it registers reaches the person: dead, with the disagreement with the still active
    household record among the conflicts."""
    from datong import tables
    from jobs import build
    from jobs.ingest import QUARANTINE

    settings = household_lake
    pid = "420102195001011238"
    _deliver(spark, settings, "b1", {"silver.household_register": [
        _member(pid, "H1", "02", name="王建国", birth_date=dt.date(1950, 1, 1)),
        _member("420102198002021116", "H2", "02", name="李梅", gender="2",
                birth_date=dt.date(1980, 2, 2)),
    ]})  # fmt: skip
    wrong = pid[:-1] + "X"
    bad = (
        "D2,420102198002021110,李梅,2,2026-13-40,420102,2026-01-05",
        [("INGEST-007", "person_id", "身份证号校验位错误", "bad check"),
         ("INGEST-003", "death_date", "日期无法解析", "bad date")],
    )  # fmt: skip
    quarantined = spark.createDataFrame(
        [("src", "bronze.death_registration", "civil/d2.csv", "b2", row, raw, problems,
          dt.datetime(2026, 1, 6))
         for row, (raw, problems) in enumerate([
             (f"D1,{wrong},王建国,1,2026-01-03,420102,2026-01-05",
              [("INGEST-007", "person_id", "身份证号校验位错误", "bad check")]),
             bad,
         ], start=1)],
        "_source_id string, _resource string, _source_file string, _batch_id string, "
        "_row_number long, _raw string, "
        "problems array<struct<rule_id:string,field:string,reason_zh:string,reason_en:string>>, "
        "_ingested_at timestamp",
    )  # fmt: skip
    tables.append(quarantined, settings, QUARANTINE)
    result = build.build(["population"], settings, spark, register=False, as_of=D3)
    assert result.batches == ["b2"]  # no bronze: visited for its quarantined rows
    assert result.linkage["candidates"] == 2
    rows = tables.read(spark, settings, "population.linkage").collect()
    decisions = {r["row_number"]: (r["batch_id"], r["delivered_id"], r["decision"]) for r in rows}
    assert decisions[1] == ("b2", wrong, "linked")
    assert decisions[2][2] == "linked"  # 李梅, 1980-02-02: plainly her, but the date is bad
    # Only the row that breaks no other rule enters silver, as the linked person's row.
    assert result.linkage["applied"] == 1
    [death] = tables.read(spark, settings, "silver.death_registration").collect()
    assert (death["registration_no"], death["person_id"], death["_source_file"],
            death["_row_number"]) == ("D1", pid, "civil/d2.csv", 1)  # fmt: skip
    person = {r["person_id"]: r for r in tables.read(spark, settings, PERSON).collect()}
    assert person[pid]["deceased"] is True
    assert person[pid]["death_date"] == dt.date(2026, 1, 3)
    assert person[pid]["_provenance"]["deceased"]["source"] == "death"
    assert person["420102198002021116"]["deceased"] is False
    conflicts = tables.read(spark, settings, "population.conflict").collect()
    assert {(c["subject"], c["attribute"]) for c in conflicts} == {(pid, "deceased")}
    # Decided once: the next build offers nothing.
    again = build.build(["population"], settings, spark, register=False, as_of=D3)
    assert again.linkage == {}
    assert tables.read(spark, settings, "population.linkage").count() == 2


def _quarantine_deaths(spark, settings, file: str, raws: list[str], rule: str) -> None:
    from datong import tables
    from jobs.ingest import QUARANTINE

    frame = spark.createDataFrame(
        [("src", "bronze.death_registration", file, "b2", number, raw,
          [(rule, "person_id", "身份证号有误", "bad ID")], dt.datetime(2026, 1, 6))
         for number, raw in enumerate(raws, start=1)],
        "_source_id string, _resource string, _source_file string, _batch_id string, "
        "_row_number long, _raw string, "
        "problems array<struct<rule_id:string,field:string,reason_zh:string,reason_en:string>>, "
        "_ingested_at timestamp",
    )  # fmt: skip
    tables.append(frame, settings, QUARANTINE)


def test_a_reviewers_verdict_decides_a_row_at_the_next_build(spark, household_lake):
    """Rows without an ID that fit two persons each are left unmatched; a data engineer's
    verdict links one (its death reaches the person) and rejects another, and a linked row
    cannot be taken back."""
    from datong import tables
    from jobs import build, keyless

    settings = household_lake
    pid, her = "420102195001011238", "420102198002021116"
    # Two of each name in the same district, of the same gender.
    _deliver(spark, settings, "b1", {"silver.household_register": [
        _member(pid, "H1", "02", name="王建国", birth_date=dt.date(1950, 1, 1)),
        _member("420102196203151233", "H3", "02", name="王建国", birth_date=dt.date(1962, 3, 15)),
        _member(her, "H2", "02", name="李梅", gender="2", birth_date=dt.date(1980, 2, 2)),
        _member("420102198507071127", "H4", "02", name="李梅", gender="2",
                birth_date=dt.date(1985, 7, 7)),
    ]})  # fmt: skip
    _quarantine_deaths(spark, settings, "civil/d3.csv", [
        "D3,,王建国,1,2026-01-03,420102,2026-01-05",
        "D4,,李梅,2,2026-01-04,420102,2026-01-06",
    ], "INGEST-002")  # fmt: skip
    first = build.build(["population"], settings, spark, register=False, as_of=D3)
    # No ID, so no birth date: name, gender and division fit two persons each, and neither
    # is likely enough.
    assert first.linkage == {"candidates": 2, "linked": 0, "review": 0, "unmatched": 2}
    # The reviewer is shown whom Splink scored best: one of the two of that name.
    best = {r["row_number"]: r["candidate_id"]
            for r in keyless.linkage_decisions(spark, settings).collect()}  # fmt: skip
    assert best[1] in {pid, "420102196203151233"} and best[2] in {her, "420102198507071127"}

    def decision(number: int) -> tuple:
        rows = keyless.linkage_decisions(spark, settings).collect()
        [row] = [r for r in rows if r["row_number"] == number]
        return row["decision"], row["person_id"], row["decided_by"]

    with pytest.raises(keyless.LinkageError, match="no row of that name"):
        keyless.record_verdict(spark, settings, "civil/d3.csv#9", pid, "alice")
    with pytest.raises(keyless.LinkageError, match="no such person"):
        keyless.record_verdict(spark, settings, "civil/d3.csv#1", "110105194912310021", "alice")
    was = keyless.record_verdict(spark, settings, "civil/d3.csv#1", pid, "alice", "殡仪馆核实")
    assert was["decision"] == "unmatched"
    keyless.record_verdict(spark, settings, "civil/d3.csv#2", None, "alice", "not her")
    second = build.build(["population"], settings, spark, register=False, as_of=D3)
    assert second.linkage == {"candidates": 2, "linked": 1, "review": 0, "unmatched": 0,
                              "rejected": 1, "applied": 1}  # fmt: skip
    assert decision(1) == ("linked", pid, "alice")
    assert decision(2) == ("rejected", None, "alice")
    person = {r["person_id"]: r for r in tables.read(spark, settings, PERSON).collect()}
    assert (person[pid]["deceased"], person[pid]["death_date"]) == (True, dt.date(2026, 1, 3))
    assert person[her]["deceased"] is False
    # Decided: nothing is offered again, and a linked row stays linked.
    assert build.build(["population"], settings, spark, register=False, as_of=D3).linkage == {}
    with pytest.raises(keyless.LinkageError, match="linked to 420102195001011238 already"):
        keyless.record_verdict(spark, settings, "civil/d3.csv#1", her, "alice")
    # Every decision is kept: Splink's, then the reviewer's.
    assert tables.read(spark, settings, "population.linkage").count() == 4


def test_an_unmatched_row_is_offered_again_once_the_register_changed(spark, household_lake):
    """A death whose person is not in the register yet is unmatched; once the register
    holds the person (a household record corrected later), the row is linked and used."""
    from datong import tables
    from jobs import build, keyless

    settings = household_lake
    pid, her = "420102195001011238", "420102198002021116"
    register = [_member(her, "H2", "02", name="李梅", gender="2", birth_date=dt.date(1980, 2, 2))]
    _deliver(spark, settings, "b1", {"silver.household_register": register})
    wrong = pid[:-1] + "X"
    raw = f"D5,{wrong},王建国,1,2026-01-03,420102,2026-01-05"
    _quarantine_deaths(spark, settings, "civil/d5.csv", [raw], "INGEST-007")
    first = build.build(["population"], settings, spark, register=False, as_of=D3)
    assert first.linkage == {"candidates": 1, "linked": 0, "review": 0, "unmatched": 1}
    # The register unchanged: the row stays decided.
    assert build.build(["population"], settings, spark, register=False, as_of=D3).linkage == {}
    # Changed, but not by him: offered again, unmatched again, and no second decision row.
    _deliver(spark, settings, "b2", {"silver.household_register": [
        _member("420102196203151233", "H3", "02", name="张伟", birth_date=dt.date(1962, 3, 15)),
    ]})  # fmt: skip
    again = build.build(["population"], settings, spark, register=False, as_of=D3)
    assert again.linkage == {"candidates": 1, "linked": 0, "review": 0, "unmatched": 1}
    assert tables.read(spark, settings, "population.linkage").count() == 1
    assert build.build(["population"], settings, spark, register=False, as_of=D3).linkage == {}
    _deliver(spark, settings, "b3", {"silver.household_register": [
        _member(pid, "H1", "02", name="王建国", birth_date=dt.date(1950, 1, 1)),
    ]})  # fmt: skip
    second = build.build(["population"], settings, spark, register=False, as_of=D3)
    assert second.linkage == {"candidates": 1, "linked": 1, "review": 0, "unmatched": 0,
                              "applied": 1}  # fmt: skip
    [row] = keyless.linkage_decisions(spark, settings).collect()
    assert (row["decision"], row["person_id"], row["decided_by"]) == ("linked", pid, "splink")
    person = {r["person_id"]: r for r in tables.read(spark, settings, PERSON).collect()}
    assert person[pid]["deceased"] is True and person[her]["deceased"] is False
