-- Roles and databases of the cluster deployment, one owner role per database.
-- Run once by init.sh on the first start (empty data volume); the passwords arrive as psql
-- variables taken from the container's environment and are never written in this file.

CREATE ROLE datong_catalog LOGIN PASSWORD :'catalog_password';
CREATE DATABASE datong_catalog OWNER datong_catalog ENCODING 'UTF8';
REVOKE ALL ON DATABASE datong_catalog FROM PUBLIC;

CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8';
REVOKE ALL ON DATABASE airflow FROM PUBLIC;

CREATE ROLE hive LOGIN PASSWORD :'hive_password';
CREATE DATABASE metastore OWNER hive ENCODING 'UTF8';
REVOKE ALL ON DATABASE metastore FROM PUBLIC;
