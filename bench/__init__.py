"""Benchmarks: speed targets live here, not in tests."""
