"""Spark sessions with Delta Lake (and S3A when the storage root is s3://).

Jars come from the pinned, already-fetched runtime (``datong setup``) as local paths
(class path in local mode, ``spark.jars`` on a cluster), never ``spark.jars.packages``,
so no Ivy download happens at session start.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from datong.artifacts import runtime_paths
from datong.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkSetupError(RuntimeError):
    """Spark cannot start: no Java 17 or the runtime jars are missing."""


def find_java17(settings: Settings) -> Path:
    """JAVA_HOME of a JDK 17: Spark 4.1's Hadoop 3.4.2 fails on Java 24+ (SPARK-54276)."""
    candidates: list[Path] = []
    if settings.java17_home:
        candidates.append(settings.java17_home)
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    candidates += sorted(Path("/usr/lib/jvm").glob("*17*"))
    java = shutil.which("java")
    if java:
        candidates.append(Path(java).resolve().parent.parent)
    for home in candidates:
        release = home / "release"
        if release.is_file() and 'JAVA_VERSION="17' in release.read_text():
            return home
    raise SparkSetupError(
        "no JDK 17 found for Spark (set DATONG_JAVA17_HOME); "
        "install one with: apt-get install openjdk-17-jdk-headless"
    )


def spark_conf(settings: Settings) -> dict[str, str]:
    """Every Spark setting datong uses, each with its reason."""
    jars = runtime_paths(settings.cache_dir).spark_jars
    missing = [str(jar) for jar in jars if not jar.is_file()]
    if missing:
        raise SparkSetupError(f"Spark runtime jars missing, run `datong setup`: {missing[0]}")
    warehouse = settings.state_dir / "spark-warehouse"
    conf = {
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.warehouse.dir": str(warehouse),
        # Embedded metastore state (Derby) stays in the state dir, not the working directory.
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={settings.state_dir / 'derby'}",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        # The UI binds a port per session; the platform does not use it.
        "spark.ui.enabled": "false",
        # Linkage collects the golden persons' compared columns as Arrow: 1.1 GB at 10M.
        "spark.driver.maxResultSize": "4g",
        # Progress bars garble CLI output and CI logs.
        "spark.ui.showConsoleProgress": "false",
        # Delta rebuilds table state with 50 shuffle tasks by default; our logs are small.
        "spark.databricks.delta.snapshotPartitions": str(settings.delta_snapshot_partitions),
        # A MERGE marks the rows it replaces in deletion vectors instead of rewriting every
        # file it touches: an incremental 1 % batch at 1M persons, 160 s → 129 s
        # (BENCHMARKS.md). Trino reads them. Never turn them off on a table that has them:
        # Trino then ignores the vectors already written (trinodb/trino#30685).
        "spark.databricks.delta.properties.defaults.enableDeletionVectors": "true",
        # Dates before 1900 (old household records) must round-trip without calendar rebasing.
        "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
        "spark.sql.session.timeZone": "Asia/Shanghai",
        # Loopback by default: the embedded platform never listens beyond 127.0.0.1.
        "spark.driver.bindAddress": settings.spark_driver_host,
        "spark.driver.host": settings.spark_driver_host,
    }
    if settings.spark_master.startswith("local"):
        # Driver and executors share one JVM: put the jars on its class path at launch.
        # spark.jars would copy them into the session (16 s per start for the 641 MB SDK).
        conf["spark.driver.extraClassPath"] = os.pathsep.join(str(jar) for jar in jars)
    else:
        # A cluster: Spark ships the jars to the executors.
        conf["spark.jars"] = ",".join(str(jar) for jar in jars)
    if settings.uses_s3:
        access_key, secret_key = settings.s3_credentials
        conf |= {
            "spark.hadoop.fs.s3a.endpoint": settings.s3_endpoint,
            "spark.hadoop.fs.s3a.endpoint.region": settings.s3_region,
            # SeaweedFS (and most on-premises stores) serve buckets by path.
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": str(
                settings.s3_endpoint.startswith("https")
            ).lower(),
            "spark.hadoop.fs.s3a.access.key": access_key,
            "spark.hadoop.fs.s3a.secret.key": secret_key,
            "spark.hadoop.fs.s3a.aws.credentials.provider": (
                "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
            ),
            # Delta's S3 log store: single-driver writes are safe without a DynamoDB lock.
            "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
            # A local store answers fast; fail in seconds, not after the SDK's long retries.
            "spark.hadoop.fs.s3a.attempts.maximum": "3",
            "spark.hadoop.fs.s3a.retry.limit": "3",
        }
    return conf


def spark_session(settings: Settings, app_name: str = "datong") -> SparkSession:
    """Build (or return the running) Spark session for these settings."""
    from pyspark.sql import SparkSession

    os.environ["JAVA_HOME"] = str(find_java17(settings))
    # PySpark starts its Python workers (pandas UDFs) with $PYSPARK_PYTHON, else `python3`
    # from PATH, which lacks the project's packages: use this interpreter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.spark_master).appName(app_name)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
