"""Shared helpers for the test suite (on sys.path via pytest's pythonpath)."""
