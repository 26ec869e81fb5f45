"""The repository layout: folders from the architecture, import names that collide with nothing."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib

from datong.settings import REPO_ROOT

TOP_LEVEL_PACKAGES = ["datong", "jobs", "catalog", "quality", "warehouse", "dags", "synthetic"]


def test_architecture_folders_exist():
    for folder in [
        "dags",
        "jobs",
        "catalog",
        "schemas",
        "quality",
        "warehouse",
        "docker",
        "tests",
        "bench",
        "docs",
    ]:
        assert (REPO_ROOT / folder).is_dir(), folder
    assert (REPO_ROOT / "pyproject.toml").is_file()


def test_packaged_modules_match_the_layout():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert sorted(packages) == sorted(TOP_LEVEL_PACKAGES)


def test_import_names_collide_with_nothing_installed():
    owners = importlib.metadata.packages_distributions()
    for name in TOP_LEVEL_PACKAGES:
        assert name not in sys.stdlib_module_names, f"{name} shadows the standard library"
        others = [dist for dist in owners.get(name, []) if dist != "datong"]
        assert not others, f"import name {name!r} is also provided by {others}"


def test_every_make_target_has_a_help_line():
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z_-]+):", makefile, flags=re.M))
    documented = set(re.findall(r"^([a-zA-Z_-]+):.*## ", makefile, flags=re.M))
    assert targets == documented
    assert {"demo", "test", "test-unit", "lint", "format", "bench"} <= documented
