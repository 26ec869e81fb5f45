"""One name per dataset, one place per name: Spark and Trino locations agree."""

from __future__ import annotations

import pytest

from datong.settings import Settings
from datong.storage import spark_location, trino_location, trino_metastore_location


def test_local_root(tmp_path):
    settings = Settings(state_dir=tmp_path)
    assert spark_location(settings, "bronze.person") == f"file://{tmp_path}/lake/bronze/person"
    # Trino's local:// paths are relative to local.location, which is the lake directory.
    assert trino_location(settings, "bronze.person") == "local:///bronze/person"
    assert trino_metastore_location(settings) == "local:///_metastore"


def test_s3_root_with_prefix(tmp_path):
    settings = Settings(state_dir=tmp_path, storage_root="s3://gov-lake/hubei")
    assert spark_location(settings, "population.person") == "s3a://gov-lake/hubei/population/person"
    assert trino_location(settings, "population.person") == "s3://gov-lake/hubei/population/person"
    assert trino_metastore_location(settings) == "s3://gov-lake/hubei/_metastore"


def test_s3_root_without_prefix(tmp_path):
    settings = Settings(state_dir=tmp_path, storage_root="s3://gov-lake")
    assert trino_location(settings, "geo.division") == "s3://gov-lake/geo/division"


@pytest.mark.parametrize("bad", ["person", "a.b.c", "bronze/person", ".x", "x."])
def test_names_must_be_schema_dot_table(tmp_path, bad):
    with pytest.raises(ValueError, match="<schema>.<table>"):
        spark_location(Settings(state_dir=tmp_path), bad)
