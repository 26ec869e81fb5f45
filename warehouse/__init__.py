"""Trino configuration (``warehouse/trino/etc``), view SQL and access-rule rendering."""
