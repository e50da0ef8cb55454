"""The performance laboratory (the harness): benches, profiles, trial specs, isolated trials
through one spawn path, sweeps, results tables, statistics, plots, notebook widgets.

It builds on the runtime's public API and never imports :mod:`lifelab.studies`. Heavy libraries
(polars, matplotlib, dask) are imported inside the functions that need them.
"""
