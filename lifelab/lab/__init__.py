"""The performance laboratory: trial specs, isolated trials, sweeps, results, statistics, plots.

Heavy libraries (polars, matplotlib, dask) are imported inside the functions that need them.
"""
