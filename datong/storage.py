"""The storage root: one URI (file:// or s3://) under which every lake table lives.

A table ``<schema>.<table>`` is stored at ``<root>/<schema>/<table>``; Spark and Trino
see the same place under their own scheme names (file:// / s3a:// for Spark,
local:// / s3:// for Trino).
"""

from __future__ import annotations

from urllib.parse import urlparse

from minio import Minio
from minio.error import MinioException

from datong.settings import Settings


def _split_name(name: str) -> tuple[str, str]:
    schema, _, table = name.partition(".")
    if not schema or not table or "." in table or "/" in name:
        raise ValueError(f"dataset name must be <schema>.<table>, got {name!r}")
    return schema, table


def spark_location(settings: Settings, name: str) -> str:
    """Where Spark reads and writes the Delta table ``name``."""
    schema, table = _split_name(name)
    if settings.uses_s3:
        return f"s3a://{settings.s3_bucket}{_s3_prefix(settings)}/{schema}/{table}"
    return f"{settings.local_lake_path.as_uri()}/{schema}/{table}"


def trino_location(settings: Settings, name: str) -> str:
    """The same table's location as the Trino ``lake`` catalog names it."""
    schema, table = _split_name(name)
    if settings.uses_s3:
        return f"s3://{settings.s3_bucket}{_s3_prefix(settings)}/{schema}/{table}"
    # local:// paths are relative to the catalog's local.location, the lake directory.
    return f"local:///{schema}/{table}"


def trino_metastore_location(settings: Settings) -> str:
    """Where the Trino file metastore keeps schema and table metadata: inside the root."""
    if settings.uses_s3:
        return f"s3://{settings.s3_bucket}{_s3_prefix(settings)}/_metastore"
    return "local:///_metastore"


def _s3_prefix(settings: Settings) -> str:
    path = urlparse(settings.storage_root).path.rstrip("/")
    return path if path else ""


def object_store_client(settings: Settings) -> Minio:
    """A MinIO SDK client for the configured S3 endpoint (SeaweedFS locally)."""
    endpoint = urlparse(settings.s3_endpoint)
    access_key, secret_key = settings.s3_credentials
    return Minio(
        endpoint.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=endpoint.scheme == "https",
        region=settings.s3_region,
    )


def object_store_healthy(settings: Settings) -> bool:
    """True when the S3 endpoint answers an authenticated bucket listing."""
    try:
        object_store_client(settings).list_buckets()
    except (MinioException, OSError, ValueError):
        return False
    except Exception:  # urllib3 raises its own errors while the server is still booting
        return False
    return True


def ensure_bucket(settings: Settings) -> None:
    """Create the storage root's bucket when it does not exist (idempotent)."""
    client = object_store_client(settings)
    if not client.bucket_exists(settings.s3_bucket):
        client.make_bucket(settings.s3_bucket)


def remove_table(settings: Settings, name: str) -> None:
    """Delete every file of the table ``name`` (its data and its Delta log)."""
    import shutil

    schema, table = _split_name(name)
    if not settings.uses_s3:
        shutil.rmtree(settings.local_lake_path / schema / table, ignore_errors=True)
        return
    from minio.deleteobjects import DeleteObject

    client = object_store_client(settings)
    prefix = f"{_s3_prefix(settings).lstrip('/')}/{schema}/{table}/".lstrip("/")
    objects = client.list_objects(settings.s3_bucket, prefix=prefix, recursive=True)
    doomed = [DeleteObject(o.object_name) for o in objects if o.object_name]
    for error in client.remove_objects(settings.s3_bucket, doomed):
        raise OSError(f"could not delete {error.name}: {error.message}")
