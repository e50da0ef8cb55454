"""The results table: one row per trial, long and tidy. The one place its columns are named.

Every sweep writes one parquet file with these columns (units in the names) through
:func:`lifelab.lab.results.write_table`: kind ``results`` and the schema version in the parquet
key-value metadata (``lifelab_table`` / ``lifelab_table_version``), the version also under
``lifelab_results_schema`` (:data:`METADATA_KEY`), the only key before the common ones.

Schema history:
    1 — first version (lifelab 0.1): id, parameter, metric and environment columns below.
    2 — the ``engine`` parameter column (``compiled`` or ``python``). Version-1 tables load with
        ``engine = "python"``: every trial ran the Python engine before there was another.
    3 — the load columns (:data:`LOAD_COLUMNS`: load average, CPU steal and iowait, the trial's
        CPU time over its measured ticks). Older tables load with them null: not measured.
    4 — the instruction-count columns (:data:`INSTRUCTION_COLUMNS`), filled when a trial ran with
        ``instructions=True`` (its measured ticks counted under valgrind) and null otherwise.
        Older tables load with them null.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ENV_COLUMNS",
    "ID_COLUMNS",
    "INSTRUCTION_COLUMNS",
    "LOAD_COLUMNS",
    "METADATA_KEY",
    "METRIC_COLUMNS",
    "PARAM_COLUMNS",
    "RESULTS_SCHEMA_VERSION",
    "STAGE_NAMES",
    "polars_schema",
]

RESULTS_SCHEMA_VERSION = 4
METADATA_KEY = "lifelab_results_schema"  # still written; tables before the common keys have only it

# The tick stages timed by life.metrics (lifelab.observe.metrics.STAGES), kept here as plain
# strings so reading results never imports the runtime.
STAGE_NAMES = ("perceive", "time", "respond", "remember", "feedback", "periodic", "policy", "io")

# (name, polars dtype name) — dtype names are resolved with getattr(polars, name).
ID_COLUMNS: tuple[tuple[str, str], ...] = (
    ("suite", "String"),  # e.g. "batch_gc"; the folder under data/results/
    ("sweep_id", "String"),  # <UTC timestamp>-<8 hex>, one per sweep
    ("trial_id", "String"),  # <sweep_id>-<order>
    ("cell", "String"),  # stable hash of the parameters (same cell across repeats)
    ("repeat", "Int64"),  # 0..repeats-1
    ("order", "Int64"),  # position in the execution order (repeats interleaved)
)
PARAM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ticks", "Int64"),
    ("warmup_ticks", "Int64"),
    ("seed", "Int64"),
    ("events_per_tick", "Float64"),
    ("batch_size", "Int64"),
    ("memory_capacity", "Int64"),
    ("gc_mode", "String"),  # default | off | freeze | tuned | T0,T1,T2
    ("engine", "String"),  # compiled | python (the engine that ran; a trial refuses a fallback)
    ("config_json", "String"),  # every other LifeConfig override, sorted JSON ("{}" if none)
)
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("wall_s", "Float64"),
    ("events", "Int64"),
    ("ticks_per_s", "Float64"),
    ("events_per_s", "Float64"),
    # Tick latency, by engine: python, a Python timer around every tick of a latency pass;
    # compiled, the kernel's cycle-counter timings of its sampled ticks (observe/bench.py).
    ("tick_p50_us", "Float64"),
    ("tick_p99_us", "Float64"),
    ("tick_max_us", "Float64"),
    ("peak_rss_mb", "Float64"),
    ("gc_collections", "Int64"),
    ("gc_gen0", "Int64"),
    ("gc_gen1", "Int64"),
    ("gc_gen2", "Int64"),
    ("gc_pause_ms", "Float64"),
    ("last_decile_ratio", "Float64"),
    *((f"rate_decile_{i}_ticks_per_s", "Float64") for i in range(10)),
    *((f"stage_{name}_share", "Float64") for name in STAGE_NAMES),
    ("memory_active", "Int64"),
    ("archive_size", "Int64"),
)
ENV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("python_version", "String"),
    ("implementation", "String"),
    ("lifelab_version", "String"),
    ("git_commit", "String"),
    ("git_dirty", "Boolean"),
    ("cpu_model", "String"),
    ("cpu_count", "Int64"),
    ("hostname_hash", "String"),  # blake2b of the hostname, 12 hex: groups runs, reveals nothing
    ("gc_threshold", "String"),  # gc.get_threshold() of the worker after the mode was applied
    ("numpy_version", "String"),
    ("polars_version", "String"),
    ("scalene_version", "String"),
    ("started_at", "Datetime"),  # UTC, microseconds
    ("duration_s", "Float64"),
    ("status", "String"),  # ok | failed
    ("error", "String"),  # "" when ok; the failure and the worker's stderr tail
)
# What the machine and the trial's process did over the measured ticks (not the warm-up),
# read by the worker through lifelab.lab.load; null where not measured (no /proc, a failed
# trial, a table older than version 3). Whether a trial ran on a loaded machine is derived
# from these and cpu_count when read (lifelab.lab.load.is_loaded), not stored.
LOAD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("load_avg_1m", "Float64"),  # 1-minute load average: the higher of the start and end readings
    ("cpu_steal_pct", "Float64"),  # machine-wide share of CPU time stolen by the hypervisor
    ("cpu_iowait_pct", "Float64"),  # machine-wide share of CPU time idle waiting on I/O
    ("cpu_time_s", "Float64"),  # the worker process's own CPU time (user + system)
)

# The trial's measured ticks counted under valgrind (lifelab.lab.instructions): the same spec
# run twice in fresh interpreters, warm-up only and warm-up + measured ticks, differenced so that
# start-up cancels. Null when the trial did not ask for counts (TrialSpec.instructions).
INSTRUCTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("instructions_per_tick", "Float64"),
    ("instructions_per_event", "Float64"),  # null when the measured ticks saw no event
    ("instructions_tool", "String"),  # e.g. "cachegrind 3.19.0": counts of two tools differ
)

ALL_COLUMNS = (
    ID_COLUMNS + PARAM_COLUMNS + METRIC_COLUMNS + ENV_COLUMNS + LOAD_COLUMNS + INSTRUCTION_COLUMNS
)


def polars_schema() -> Any:
    """The polars Schema of a results table (imports polars)."""
    import polars as pl

    out = {}
    for name, dtype in ALL_COLUMNS:
        out[name] = pl.Datetime("us", "UTC") if dtype == "Datetime" else getattr(pl, dtype)
    return pl.Schema(out)
