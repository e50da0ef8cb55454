"""Observability: benchmarks now; metrics and profiles join here."""
