"""Thin Airflow DAG files, generated from declarations; no work at parse time."""
