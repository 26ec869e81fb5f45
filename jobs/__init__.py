"""Spark jobs, one module per job: a pure ``transform(df, ...) -> DataFrame`` plus a thin ``main``.

Jobs import the core (``datong``) and the ``schemas/`` loaders; never Airflow or the web layer.
"""
