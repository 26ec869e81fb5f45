"""The base libraries' rules files: every source and attribute they name exists."""

from __future__ import annotations

import pytest
import yaml

from datong.contracts import load_resources
from jobs import golden, legal_person, population


@pytest.mark.parametrize("library", ["population", "legal_person"])
def test_rules_name_real_silver_tables_and_view_columns(library):
    rules = golden.load_rules(library)
    bronze = load_resources()
    for source in rules.sources.values():
        assert "bronze." + source.table.split(".", 1)[1] in bronze, source.table
    module = population if library == "population" else legal_person
    assert set(module.SUBJECT_COLUMNS) == {s.table for s in rules.sources.values()}


def test_population_rules_follow_one_data_one_source():
    rules = golden.load_rules("population")
    # Identity from 公安 only; death from 民政 before 公安, and 公安 checked against it.
    for attribute in ("name", "gender", "birth_date", "ethnicity"):
        assert rules.attributes[attribute].sources == ("household",)
    assert rules.attributes["deceased"].sources == ("death", "household")
    assert "household" in rules.attributes["deceased"].checks
    assert rules.attributes["marital_status"].sources[0] == "marriage"
    assert rules.sources["marriage"].department == "civil_affairs"


def test_inconsistent_rules_are_refused(tmp_path, monkeypatch):
    data = yaml.safe_load((golden.LIBRARIES_DIR / "population.yaml").read_text(encoding="utf-8"))
    data["attributes"]["name"]["checks"] = ["hospital"]
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    monkeypatch.setattr(golden, "LIBRARIES_DIR", tmp_path)
    with pytest.raises(golden.RulesError, match="unknown source 'hospital'"):
        golden.load_rules.__wrapped__("broken")


def test_each_register_refuses_the_codes_of_other_authorities_at_ingest():
    """legal_person.yaml's registries and the contracts name the same registering authority."""
    rules, resources = golden.load_rules("legal_person"), load_resources()
    assert set(rules.registries) == {"9", "1", "5"}  # GB 32100: 市场监管, 编办, 民政
    for authority, register in rules.registries.items():
        table = legal_person.REGISTERS[register][0]
        resource = resources["bronze." + table.split(".", 1)[1]]
        [code] = [e for e in resource.elements if e.name == "credit_code"]
        assert code.registering_authority == authority, resource.name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"follows": "no_such_attribute"}, "no leading attribute"),
        ({"sources": ["household", "marriage"]}, "follows marital_status but has other sources"),
    ],
)
def test_a_follower_needs_a_leader_with_its_sources(tmp_path, monkeypatch, change, message):
    data = yaml.safe_load((golden.LIBRARIES_DIR / "population.yaml").read_text(encoding="utf-8"))
    assert data["attributes"]["spouse_id"]["follows"] == "marital_status"
    data["attributes"]["spouse_id"].update(change)
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    monkeypatch.setattr(golden, "LIBRARIES_DIR", tmp_path)
    with pytest.raises(golden.RulesError, match=message):
        golden.load_rules.__wrapped__("broken")
