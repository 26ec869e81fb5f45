"""datong core runtime: settings, storage URIs, Spark session, services, Trino client, CLI.

Imports nothing of the domain (jobs, catalog, quality, dags).
"""

__version__ = "0.1.0"
