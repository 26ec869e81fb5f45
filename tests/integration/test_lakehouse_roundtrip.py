"""Spark writes Delta, Trino reads it: on the local file system and on SeaweedFS S3."""

from __future__ import annotations

import datetime as dt
import urllib.request

import pytest

from datong import query
from datong.settings import LAKE_SCHEMAS
from datong.storage import object_store_client, spark_location
from tests.trino_support import UNGRANTED_PASSWORD

pytestmark = pytest.mark.integration

SCHEMA = "person_id string, name string, birth_date date, division_code string"
FIRST_BATCH = [
    ("420102199001011234", "张伟", dt.date(1990, 1, 1), "420102"),
    ("420106198507153321", "王芳", dt.date(1985, 7, 15), "420106"),
    ("422801200012319876", "李娜", dt.date(2000, 12, 31), "422801"),
]
SECOND_BATCH = [
    ("429004197703030011", "刘洋", dt.date(1977, 3, 3), "429004"),
    ("420303196911112222", "陈静", dt.date(1969, 11, 11), "420303"),
]


def test_every_lake_schema_exists_in_trino(platform_settings):
    schemas = {row[0] for row in query.run(platform_settings, "SHOW SCHEMAS FROM lake").rows}
    assert set(LAKE_SCHEMAS) <= schemas


def test_spark_write_trino_read_append_and_time_travel(spark, platform_settings):
    name = "bronze.roundtrip_person"
    location = spark_location(platform_settings, name)
    expected_scheme = "s3a://" if platform_settings.uses_s3 else "file://"
    assert location.startswith(expected_scheme)

    spark.createDataFrame(FIRST_BATCH, SCHEMA).write.format("delta").mode("overwrite").save(
        location
    )
    assert query.register_table(platform_settings, name) is True
    assert query.register_table(platform_settings, name) is False  # idempotent

    select = (
        f"SELECT person_id, name, birth_date, division_code FROM lake.{name} ORDER BY person_id"
    )
    assert query.run(platform_settings, select).rows == sorted(FIRST_BATCH)

    spark.createDataFrame(SECOND_BATCH, SCHEMA).write.format("delta").mode("append").save(location)
    # Trino sees Spark's new commit on the next query, without re-registering.
    assert query.run(platform_settings, select).rows == sorted(FIRST_BATCH + SECOND_BATCH)

    version_zero = spark.read.format("delta").option("versionAsOf", 0).load(location)
    assert sorted(tuple(row) for row in version_zero.collect()) == sorted(FIRST_BATCH)
    trino_version_zero = query.run(
        platform_settings, f"SELECT count(*) FROM lake.{name} FOR VERSION AS OF 0"
    )
    assert trino_version_zero.rows == [(3,)]


def test_unknown_user_is_denied_by_trino(spark, platform_settings):
    name = "bronze.roundtrip_denied"
    location = spark_location(platform_settings, name)
    spark.createDataFrame(FIRST_BATCH[:1], SCHEMA).write.format("delta").mode("overwrite").save(
        location
    )
    query.register_table(platform_settings, name)
    with pytest.raises(query.QueryError, match="Access Denied: Cannot access catalog lake"):
        query.run(
            platform_settings,
            f"SELECT * FROM lake.{name}",
            user="someone_ungranted",
            password=UNGRANTED_PASSWORD,
        )


def test_object_store_presigned_download(platform_settings):
    if not platform_settings.uses_s3:
        pytest.skip("object store checks apply to the s3:// root")
    client = object_store_client(platform_settings)
    payload = "开放数据 open data extract\n".encode()
    import io

    client.put_object(
        platform_settings.s3_bucket, "open/sample.txt", io.BytesIO(payload), len(payload)
    )
    url = client.presigned_get_object(
        platform_settings.s3_bucket, "open/sample.txt", expires=dt.timedelta(minutes=5)
    )
    assert url.startswith(platform_settings.s3_endpoint)
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        assert response.read() == payload
    names = {
        o.object_name for o in client.list_objects(platform_settings.s3_bucket, prefix="open/")
    }
    assert names == {"open/sample.txt"}
