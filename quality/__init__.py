"""Data quality: Great Expectations suites derived from ``schemas/`` plus declared rules."""
