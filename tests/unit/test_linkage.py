"""Linkage of ID-less records to golden persons: hand-written answers on a synthetic reference."""

from __future__ import annotations

import datetime as dt
import random

import pandas as pd
import pytest
from faker import Faker

from jobs import linkage
from jobs.linkage import LinkageResult, link_records

COLUMNS = ["name", "gender", "birth_date", "division_code", "address"]
DIVISIONS = {
    "420102": "湖北省武汉市江岸区",
    "420106": "湖北省武汉市武昌区",
    "420111": "湖北省武汉市洪山区",
    "422801": "湖北省恩施土家族苗族自治州恩施市",
}
ENSHI = "湖北省恩施土家族苗族自治州恩施市"

# The golden persons the cases are about, written out by hand.
ZHANG = "420102197504120011"
WANG = "420106196809300028"
LI = "422801199001150033"
LIU = "420102198806060046"
TWIN_A = "420106199511110020"
TWIN_B = "420106199511110047"
KNOWN = [
    (ZHANG, "张建国", "1", "1975-04-12", "420102", "湖北省武汉市江岸区解放大道1001号"),
    (WANG, "王桂花", "2", "1968-09-30", "420106", "湖北省武汉市武昌区中南路88号"),
    (LI, "李志强", "1", "1990-01-15", "422801", f"{ENSHI}舞阳大道12号"),
    (LIU, "刘洋", "2", "1988-06-06", "420102", "湖北省武汉市江岸区沿江大道77号"),
    # Namesakes identical in name, gender, birth date and division; only the address differs.
    (TWIN_A, "陈静", "2", "1995-11-11", "420106", "湖北省武汉市武昌区珞珈山路5号"),
    (TWIN_B, "陈静", "2", "1995-11-11", "420106", "湖北省武汉市武昌区徐东大街301号"),
]
STRANGER = ("欧阳明月", "2", "2001-02-03", "429004", "湖北省仙桃市沔阳大道66号")

# Candidates (ID missing or failed its check digit) and the expected answers.
CANDIDATES = [
    ("R-0107", "张建国", "1", "1975-04-12", "420102", "湖北省武汉市江岸区解放大道1001号"),
    ("R-0042", "王贵花", "2", "1968-09-30", "420106", "湖北省武汉市武昌区中南路88号"),
    ("R-0311", "李志强", "1", "1990-01-16", "422801", f"{ENSHI}舞阳大道12号"),
    ("R-0005", "刘洋", "1", "1988-06-06", "422801", f"{ENSHI}航空大道9号"),
    ("R-0220", "陈静", "2", "1995-11-11", "420106", None),
    ("R-0999", *STRANGER),
]
EXACT, VARIANT, DAY_OFF, NAMESAKE, TWINS, STRANGER_ID = (c[0] for c in CANDIDATES)


def _reference(size: int, seed: int = 20240601) -> pd.DataFrame:
    """The known persons plus Faker fillers with distinct names, birth dates and addresses."""
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    rows = [dict(zip(["person_id", *COLUMNS], known, strict=True)) for known in KNOWN]
    names = {r["name"] for r in rows} | {STRANGER[0]}
    dates = {r["birth_date"] for r in rows} | {STRANGER[2]}
    addresses = {r["address"] for r in rows} | {STRANGER[4]}
    while len(rows) < size:
        name = fake.name()
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20_000))
        division = rng.choice(sorted(DIVISIONS))
        address = f"{DIVISIONS[division]}{fake.street_name()}{rng.randrange(1, 999)}号"
        if name in names or birth.isoformat() in dates or address in addresses:
            continue
        names.add(name)
        dates.add(birth.isoformat())
        addresses.add(address)
        gender = rng.choice("12")
        rows.append(
            {
                "person_id": f"{division}{birth:%Y%m%d}{len(rows):03d}{gender}",
                "name": name,
                "gender": gender,
                "birth_date": birth.isoformat(),
                "division_code": division,
                "address": address,
            }
        )
    return pd.DataFrame(rows)


def _candidates() -> pd.DataFrame:
    return pd.DataFrame(CANDIDATES, columns=["record_id", *COLUMNS])


@pytest.fixture(scope="module", params=[200, 50, 500], ids=lambda n: f"reference{n}")
def result(request: pytest.FixtureRequest) -> LinkageResult:
    reference = _reference(request.param)
    assert reference["person_id"].is_unique and len(reference) == request.param
    return link_records(_candidates(), reference)


def _row(result: LinkageResult, record_id: str) -> dict[str, object]:
    rows = result.links[result.links["record_id"] == record_id].to_dict("records")
    assert len(rows) == 1, f"{record_id} appears {len(rows)} times"
    return rows[0]


def test_exact_copy_is_linked(result: LinkageResult) -> None:
    row = _row(result, EXACT)
    assert (row["decision"], row["person_id"]) == ("linked", ZHANG)
    assert isinstance(row["match_probability"], float) and row["match_probability"] >= 0.99


def test_one_character_name_variant_is_linked(result: LinkageResult) -> None:
    row = _row(result, VARIANT)  # 王贵花 for 王桂花
    assert (row["decision"], row["person_id"]) == ("linked", WANG)


def test_birth_date_one_day_off_is_never_someone_else(result: LinkageResult) -> None:
    row = _row(result, DAY_OFF)
    assert row["decision"] in {"linked", "review"}
    assert row["person_id"] in {LI, None}
    if row["decision"] == "linked":
        assert row["person_id"] == LI


def test_same_name_and_birth_date_but_nothing_else_is_not_linked(result: LinkageResult) -> None:
    row = _row(result, NAMESAKE)
    assert row["decision"] != "linked"
    assert row["person_id"] is None


def test_twin_namesakes_are_never_auto_linked(result: LinkageResult) -> None:
    row = _row(result, TWINS)
    assert row["decision"] in {"review", "unmatched"}
    assert row["person_id"] is None
    # A reviewer is shown whom Splink scored best: one of the twins.
    assert row["candidate_id"] in {TWIN_A, TWIN_B}


def test_a_linked_row_names_its_person_as_the_candidate_too(result: LinkageResult) -> None:
    linked = result.links[result.links["decision"] == "linked"]
    assert (linked["candidate_id"] == linked["person_id"]).all()


def test_stranger_is_unmatched(result: LinkageResult) -> None:
    row = _row(result, STRANGER_ID)
    assert row == {
        "record_id": STRANGER_ID,
        "person_id": None,
        "match_probability": None,  # no pair survived blocking
        "decision": "unmatched",
        "candidate_id": None,
    }


def test_every_record_once_and_counts_add_up(result: LinkageResult) -> None:
    assert list(result.links.columns) == linkage.LINK_COLUMNS
    assert result.links["record_id"].tolist() == [c[0] for c in CANDIDATES]
    assert set(result.links["decision"]) <= {"linked", "review", "unmatched"}
    counts = result.counts
    assert counts["candidates"] == len(CANDIDATES)
    assert counts["linked"] + counts["review"] + counts["unmatched"] == counts["candidates"]
    assert counts["linked"] == (result.links["decision"] == "linked").sum()
    assert counts["linked"] >= 2  # the exact copy and the name variant, at least


def test_empty_candidates_do_not_call_splink(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("Splink was called")

    monkeypatch.setattr(linkage, "_pairs", fail)
    empty = pd.DataFrame(columns=["record_id", *COLUMNS])
    result = link_records(empty, _reference(20))
    assert result.links.empty
    assert list(result.links.columns) == linkage.LINK_COLUMNS
    assert result.counts == {"candidates": 0, "linked": 0, "review": 0, "unmatched": 0}


def test_bad_input_is_refused() -> None:
    reference = _reference(20)
    twice = pd.concat([_candidates(), _candidates()])
    with pytest.raises(ValueError, match="unique"):
        link_records(twice, reference)
    with pytest.raises(ValueError, match="lacks columns"):
        link_records(_candidates().drop(columns=["address"]), reference)
    with pytest.raises(ValueError, match="review <= accept"):
        link_records(_candidates(), reference, accept=0.5, review=0.9)


def test_an_arrow_reference_links_as_the_same_persons_in_pandas() -> None:
    """The build hands Spark's Arrow batches straight over; blanks and spaces read the same."""
    import pyarrow as pa

    frame = _reference(200)
    # A filler typed with stray spaces and a blank address: both forms must clean it alike.
    filler = frame.index[-1]
    frame.loc[filler, "name"] = "  " + str(frame.loc[filler, "name"]) + " "
    frame.loc[filler, "address"] = "   "
    expected = link_records(_candidates(), frame)
    got = link_records(_candidates(), pa.Table.from_pandas(frame, preserve_index=False))
    assert got.counts == expected.counts
    pd.testing.assert_frame_equal(got.links, expected.links)
    assert linkage._table(pa.Table.from_pandas(frame, preserve_index=False), "person_id").equals(
        linkage._table(frame, "person_id")
    )
    with pytest.raises(ValueError, match="unique"):
        link_records(_candidates(), pa.Table.from_pandas(pd.concat([frame, frame.head(1)])))


def test_only_the_two_best_pairs_of_a_candidate_are_kept() -> None:
    """Three namesakes share a birth date with the candidate: the weakest cannot matter."""
    third = (
        "420106199511110063",
        "陈静",
        "2",
        "1995-11-11",
        "420111",
        "湖北省武汉市洪山区珞喻路1号",
    )
    reference = pd.DataFrame(
        [(TWIN_A, *KNOWN[4][1:]), (TWIN_B, *KNOWN[5][1:]), third], columns=["person_id", *COLUMNS]
    )
    candidate = pd.DataFrame([CANDIDATES[4]], columns=["record_id", *COLUMNS])
    pairs = linkage._pairs(
        linkage._table(candidate, "record_id"), linkage._table(reference, "person_id")
    )
    assert len(pairs) == 2
    # Same division as the candidate beats the other division; the twins tie, by person ID.
    assert sorted(pairs["person_id"]) == [TWIN_A, TWIN_B]


def test_the_persons_blocking_can_pair_link_as_the_whole_population() -> None:
    """The build hands over only the persons sharing a blocking value with a candidate, with
    the whole population as the sample for u and its size for the prior: same links."""
    frame = _reference(500)
    values = linkage.blocking_values(_candidates())
    assert values["name"] == sorted({c[1] for c in CANDIDATES})
    assert "1990-01-16" in values["birth_date"] and None not in values["address"]
    mask = pd.Series(False, index=frame.index)
    for column, wanted in values.items():
        mask |= frame[column].isin(wanted)
    narrowed = frame[mask]
    # Fillers share no name, birth date or address with anyone: the known persons remain.
    assert sorted(narrowed["person_id"]) == sorted(k[0] for k in KNOWN)
    expected = link_records(_candidates(), frame)
    got = link_records(_candidates(), narrowed, sample=frame, population=len(frame))
    assert got.counts == expected.counts
    pd.testing.assert_frame_equal(got.links, expected.links)
    # Without the population's size the prior is one in 7, not one in 501: more links.
    alone = link_records(_candidates(), narrowed)
    assert alone.links["match_probability"].tolist() != expected.links["match_probability"].tolist()


def test_quarantined_rows_with_an_invalid_or_missing_id_are_candidates() -> None:
    """A death registration with a wrong check character or no ID still names a person."""
    from datong.contracts import load_resources
    from jobs.population import linkage_candidates

    def row(number: int, raw: str, *problems: tuple[str, str]) -> dict:
        return {
            "_resource": "bronze.death_registration", "_source_file": "civil/death.csv",
            "_row_number": number, "_raw": raw,
            "problems": [{"rule_id": rule, "field": field} for rule, field in problems],
        }  # fmt: skip

    rejected = [
        row(1, "D1,11010519491231002Y,张三,1,2026-01-02,420102,2026-01-03",
            ("INGEST-007", "person_id")),
        row(2, "D2,,李四,2,2026-01-02,420102,2026-01-03", ("INGEST-002", "person_id")),
        row(3, "D3,11010519491231002X,王五,1,2026-13-02,420102,2026-01-03",
            ("INGEST-003", "death_date")),
        row(4, "D4,,,2,2026-01-02,420102,2026-01-03", ("INGEST-002", "name")),
    ]  # fmt: skip
    candidates = linkage_candidates(rejected, load_resources())
    got = candidates[["record_id", "delivered_id", "name", "gender", "birth_date"]]
    assert got.to_dict("records") == [
        # The birth date and gender of a 18-character ID with a wrong check character hold.
        {"record_id": "civil/death.csv#1", "delivered_id": "11010519491231002Y",
         "name": "张三", "gender": "1", "birth_date": "1949-12-31"},
        {"record_id": "civil/death.csv#2", "delivered_id": "", "name": "李四", "gender": "2",
         "birth_date": None},
    ]  # fmt: skip


def test_a_linked_row_carries_the_linked_person_and_its_lineage() -> None:
    """Only ``linked`` decisions give a row to a person; its delivered values stay as they
    were but for the ID, so ingest's rules can be applied to it again."""
    from datong.contracts import load_resources
    from jobs.population import linked_values

    def row(number: int, raw: str, resource: str = "bronze.death_registration") -> dict:
        return {"_resource": resource, "_source_file": "civil/death.csv", "_batch_id": "b2",
                "_row_number": number, "_raw": raw}  # fmt: skip

    rejected = [
        row(1, "D1,11010519491231002Y,张三,1,2026-01-02,420102,2026-01-03"),
        row(2, "D2,,李四,2,2026-01-02,420102,2026-01-03"),
        row(3, "D3,,王五,1"),  # does not split into the columns
        row(4, "D4,,赵六,1,2026-01-02,420102,2026-01-03"),
    ]
    links = pd.DataFrame({
        "record_id": [f"civil/death.csv#{n}" for n in (1, 2, 3, 4)],
        "person_id": ["110105194912310021", "110105195001010012", "110105195001010020", None],
        "decision": ["linked", "review", "linked", "unmatched"],
    })  # fmt: skip
    got = linked_values(rejected, links, load_resources())
    assert got == {
        "bronze.death_registration": [
            {"registration_no": "D1", "person_id": "110105194912310021", "name": "张三",
             "gender": "1", "death_date": "2026-01-02", "death_division_code": "420102",
             "registration_date": "2026-01-03", "_source_file": "civil/death.csv",
             "_batch_id": "b2", "_row_number": 1},
        ]
    }  # fmt: skip
