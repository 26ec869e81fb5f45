#!/usr/bin/env bash
# Creates datong's roles and databases (init.sql) on the first start of the postgres
# service. The official image runs this from /docker-entrypoint-initdb.d only while the
# data volume is empty; later password changes go through ALTER ROLE by hand.
set -e
: "${DATONG_CATALOG_DB_PASSWORD:?DATONG_CATALOG_DB_PASSWORD is not set}"
: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"
: "${HIVE_METASTORE_DB_PASSWORD:?HIVE_METASTORE_DB_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v catalog_password="$DATONG_CATALOG_DB_PASSWORD" \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v hive_password="$HIVE_METASTORE_DB_PASSWORD" \
    -f /opt/datong/postgres/init.sql
