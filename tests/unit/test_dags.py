"""The generated ingest DAGs: up to date with the declarations, importable, within policy.

The expected DAGs, sensors and Assets are read from the YAML files with plain ``yaml``,
not from the generator, so a generator bug cannot hide behind its own output.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from dags.generate import (
    GENERATED_MARK,
    LANDING_CONNECTION,
    department_schedule,
    fires_per_year,
    render_all,
)
from datong.settings import REPO_ROOT

DAGS_DIR = REPO_ROOT / "dags"
SCHEMAS_DIR = REPO_ROOT / "schemas"
DAG_FILES = sorted(DAGS_DIR.glob("ingest_*.py"))
BUILD_DAG_FILE = DAGS_DIR / "build_base_libraries.py"
#: Parse budget per DAG file, Airflow itself already imported. The DAG processor allows
#: 30 s (``dagbag_import_timeout``) and re-parses every file every 30 s; a thin file takes
#: milliseconds, so 2 s only fails on real work at parse time (I/O, Spark, a network call).
PARSE_BUDGET_SECONDS = 2.0
#: What a thin DAG file may import at module level; anything else goes inside a task.
MODULE_LEVEL_IMPORTS = ("__future__", "datetime", "pendulum", "airflow")


def _declared_sources() -> list[dict[str, Any]]:
    return [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted((SCHEMAS_DIR / "sources").glob("*/*.yaml"))
    ]


def _sources_by_department() -> dict[str, list[dict[str, Any]]]:
    by_department: dict[str, list[dict[str, Any]]] = {}
    for source in _declared_sources():
        by_department.setdefault(source["department"], []).append(source)
    return by_department


# -- golden files (no Airflow needed) -------------------------------------------------


def test_dag_files_are_what_the_generator_renders():
    rendered = render_all()
    on_disk = {path.name for path in DAG_FILES}
    stale = "is stale: run python -m dags.generate"
    assert on_disk == set(rendered), f"the set of DAG files {stale}"
    for name, text in rendered.items():
        assert (DAGS_DIR / name).read_text(encoding="utf-8") == text, f"dags/{name} {stale}"
        assert GENERATED_MARK in text


@pytest.mark.parametrize("path", [*DAG_FILES, BUILD_DAG_FILE], ids=lambda path: path.name)
def test_dag_files_import_only_airflow_at_module_level(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in MODULE_LEVEL_IMPORTS, f"{path.name}: imports {name}"


def test_generator_module_is_cheap_to_import():
    # The DAG processor parses dags/generate.py too: it must not load datong or croniter.
    code = (
        "import sys, dags.generate; "
        "assert not {'datong', 'croniter', 'yaml'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_department_runs_on_its_most_frequent_schedule():
    assert fires_per_year("0 2 * * *") == 365
    assert fires_per_year("0 6 1 1 *") == 1
    sources = [SimpleNamespace(schedule=cron) for cron in ["0 4 1 * *", "0 3 * * 1", "0 6 1 1 *"]]
    assert department_schedule(sources) == "0 3 * * 1"  # type: ignore[arg-type]


# -- DagBag integrity (imports Airflow once per test run, ~6 s) -----------------------


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway AIRFLOW_HOME, set before Airflow is first imported; no metadata DB."""
    home = tmp_path_factory.mktemp("airflow-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_HOME", str(home))
        patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        patch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_DIR))
        yield home


@pytest.fixture(scope="session")
def dagbag(airflow_home: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=DAGS_DIR)


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert not dagbag.dag_warnings


def _ingest_dags(dagbag) -> dict[str, Any]:
    return {i: d for i, d in dagbag.dags.items() if i.startswith("ingest_")}


def test_one_dag_per_department_with_sources(dagbag):
    expected = {f"ingest_{department}" for department in _sources_by_department()}
    assert set(dagbag.dag_ids) == expected | {"build_base_libraries"}


def test_dags_follow_the_policy(dagbag):
    for dag_id, dag in _ingest_dags(dagbag).items():
        department = dag_id.removeprefix("ingest_")
        declared = _sources_by_department()[department]
        assert dag.doc_md and dag.doc_md.strip(), dag_id
        assert {"datong", "ingest", department} <= set(dag.tags), dag_id
        assert dag.owner and dag.owner != "airflow", dag_id
        assert dag.catchup is False and dag.max_active_runs == 1, dag_id
        assert str(dag.timezone) == "Asia/Shanghai", dag_id
        assert dag.schedule in {source["schedule"] for source in declared}, dag_id
        for source in declared:
            assert source["id"] in dag.doc_md, f"{dag_id}: doc_md does not name {source['id']}"
        for task in dag.tasks:
            assert task.retries >= 2, task.task_id
            assert task.owner != "airflow", task.task_id


def test_every_source_has_its_group_sensor_and_asset(dagbag):
    for source in _declared_sources():
        dag = dagbag.dags[f"ingest_{source['department']}"]
        table = source["resource"].removeprefix("bronze.")
        group = {task.task_id: task for task in dag.tasks if task.task_id.startswith(f"{table}.")}
        ingest = group.pop(f"{table}.ingest")
        assert ingest.retries == source["retries"] and ingest.owner == source["owner"]
        assert [asset.name for asset in ingest.outlets] == [source["resource"]]
        assert [asset.uri for asset in ingest.outlets] == [f"datong://lake/bronze/{table}"]
        if source["delivery"]["kind"] == "landing":
            sensor = group.pop(f"{table}.wait_for_batch")
            assert sensor.filepath == f"{source['delivery']['path']}/batch-*"
            assert sensor.fs_conn_id == LANDING_CONNECTION
            assert sensor.mode == "reschedule" and sensor.soft_fail
            assert sensor.downstream_task_ids == {ingest.task_id}
        # A file that failed whole fails this task after the rest has landed.
        check = group.pop(f"{table}.deliveries_complete")
        assert check.upstream_task_ids == {ingest.task_id} and not check.outlets
        assert ingest.downstream_task_ids == {check.task_id}
        assert not group, f"{source['id']}: unexpected tasks {sorted(group)}"


def test_every_asset_and_sensor_points_at_a_declaration(dagbag):
    contracts = {
        f"bronze.{path.stem}": path.parent.name
        for path in (SCHEMAS_DIR / "resources").glob("*/*.yaml")
    }
    landing_paths = {
        source["delivery"]["path"]
        for source in _declared_sources()
        if source["delivery"]["kind"] == "landing"
    }
    for dag_id, dag in _ingest_dags(dagbag).items():
        for task in dag.tasks:
            for asset in task.outlets:
                assert asset.name in contracts, f"{task.task_id}: no contract for {asset.name}"
                assert dag_id == f"ingest_{contracts[asset.name]}", asset.name
            if hasattr(task, "filepath"):
                assert task.filepath.removesuffix("/batch-*") in landing_paths, task.filepath


def test_dags_serialize_as_the_dag_processor_stores_them(dagbag):
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in dagbag.dags.values():
        DagSerialization.to_dict(dag)


def test_build_dag_runs_on_the_bronze_assets_its_rules_read(dagbag):
    dag = dagbag.dags["build_base_libraries"]
    rules = [
        yaml.safe_load((SCHEMAS_DIR / "libraries" / f"{name}.yaml").read_text(encoding="utf-8"))
        for name in ("population", "legal_person", "credit", "license")
    ]
    read = {
        "bronze." + source["table"].split(".", 1)[1]
        for library in rules
        for source in library["sources"].values()
    }
    # The geospatial library and the materials read 自然资源's and 卫健's deliveries.
    read |= {
        "bronze.administrative_division",
        "bronze.standard_address",
        "bronze.birth_certificate",
    }
    scheduled = {asset.name for asset in dag.timetable.asset_condition.objects}
    assert scheduled == read
    assert dag.owner != "airflow" and {"datong", "build"} <= set(dag.tags)
    assert dag.doc_md and dag.max_active_runs == 1 and dag.catchup is False
    for task in dag.tasks:
        assert task.retries >= 2
    outlets = {t.task_id: [a.name for a in t.outlets] for t in dag.tasks}
    assert outlets == {
        "population": ["population.person"],
        "legal_person": ["legal_person.entity"],
        "geo": ["geo.address_match"],
        "credit": ["credit.profile"],
        "license": ["license.license", "license.valid_for_holder"],
        "quality_gates": ["quality.gate"],
    }
    # Legal persons link their representatives to the population library built first.
    assert dag.get_task("legal_person").upstream_task_ids == {"population"}
    for derived in ("geo", "credit", "license"):
        assert dag.get_task(derived).upstream_task_ids == {"legal_person"}
    # Gates are decided on the finished gold tables.
    assert dag.get_task("quality_gates").upstream_task_ids == {"geo", "credit", "license"}


@pytest.mark.parametrize("path", [*DAG_FILES, BUILD_DAG_FILE], ids=lambda path: path.name)
def test_dag_file_parses_within_budget(dagbag, path: Path):
    # ``dagbag`` first: Airflow and the providers are imported, so this is the file's own cost.
    from airflow.dag_processing.dagbag import DagBag

    fresh = DagBag(dag_folder=path)
    assert fresh.import_errors == {}
    [stat] = fresh.dagbag_stats
    seconds = stat.duration.total_seconds()
    assert seconds < PARSE_BUDGET_SECONDS, f"{path.name} took {seconds:.2f} s to parse"
