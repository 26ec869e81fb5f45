"""The Spark configuration datong builds: Delta on, no Ivy, S3A only for s3:// roots."""

from __future__ import annotations

from datong.artifacts import runtime_paths
from datong.settings import Settings
from datong.spark import spark_conf


def test_local_session_uses_pinned_jars_on_the_class_path(tmp_path):
    settings = Settings(state_dir=tmp_path)
    conf = spark_conf(settings)
    assert "spark.jars.packages" not in conf  # never Ivy at session start
    class_path = conf["spark.driver.extraClassPath"].split(":")
    assert class_path == [str(p) for p in runtime_paths(settings.cache_dir).spark_jars]
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")
    assert not any(key.startswith("spark.hadoop.fs.s3a.") for key in conf)


def test_cluster_session_ships_jars(tmp_path):
    conf = spark_conf(Settings(state_dir=tmp_path, spark_master="spark://10.1.2.3:7077"))
    assert len(conf["spark.jars"].split(",")) == len(runtime_paths(Settings().cache_dir).spark_jars)
    assert "spark.driver.extraClassPath" not in conf


def test_s3_root_configures_s3a_on_the_endpoint(tmp_path):
    settings = Settings(
        state_dir=tmp_path,
        storage_root="s3://lake/x",
        s3_endpoint="http://127.0.0.1:18333",
        s3_access_key="ak",
        s3_secret_key="sk",
    )
    conf = spark_conf(settings)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:18333"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.access.key"] == "ak"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "sk"
