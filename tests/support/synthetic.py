"""Synthetic results tables with every schema column, for plot and report tests (no trials)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import polars as pl

from lifelab.lab.schema import INSTRUCTION_COLUMNS, STAGE_NAMES, polars_schema

_DEFAULTS = {
    "String": "",
    "Int64": 0,
    "Float64": 0.0,
    "Boolean": False,
}


def make_results(
    *,
    batch_sizes=(1, 16, 64),
    gc_modes=("default", "freeze"),
    capacities=(10_000,),
    repeats=3,
    seed=0,
    suite="batch_gc",
    sweep_id="20250101T000000Z-0000abcd",
) -> pl.DataFrame:
    """A results table with every schema column: one ok row per (cell, repeat), seeded noise."""
    schema = polars_schema()
    rng = np.random.default_rng(seed)
    rows = []
    cells = list(itertools.product(batch_sizes, gc_modes, capacities))
    for order, (repeat, (batch, gc_mode, capacity)) in enumerate(
        itertools.product(range(repeats), cells)
    ):
        row = {
            name: datetime(2025, 1, 1, tzinfo=UTC)
            if dtype == pl.Datetime("us", "UTC")
            else _DEFAULTS[str(dtype).split("(")[0]]
            for name, dtype in schema.items()
        }
        noise = rng.normal(1.0, 0.03)
        events_per_s = 1000.0 * batch**0.5 * (1.2 if gc_mode == "freeze" else 1.0) * noise
        ticks_per_s = events_per_s / 8.0
        row.update(
            suite=suite,
            sweep_id=sweep_id,
            trial_id=f"{sweep_id}-{order}",
            cell=f"{batch}-{gc_mode}-{capacity}",
            repeat=repeat,
            order=order,
            ticks=2000,
            warmup_ticks=200,
            seed=repeat,
            events_per_tick=8.0,
            batch_size=batch,
            memory_capacity=capacity,
            gc_mode=gc_mode,
            config_json="{}",
            wall_s=2000 / ticks_per_s,
            events=16000,
            ticks_per_s=ticks_per_s,
            events_per_s=events_per_s,
            tick_p50_us=1e6 / ticks_per_s,
            tick_p99_us=3e6 / ticks_per_s,
            tick_max_us=9e6 / ticks_per_s,
            peak_rss_mb=40.0 + capacity * 0.002 * noise,
            last_decile_ratio=0.95,
            memory_active=min(capacity, 12_000),
            python_version="3.11.2",
            implementation="CPython",
            lifelab_version="0.1.0",
            git_commit="0123456789abcdef0123456789abcdef01234567",
            cpu_model="Test CPU @ 3.0GHz",
            cpu_count=2,
            status="ok",
            load_avg_1m=0.8,  # a quiet 2-core machine: not loaded (lifelab.lab.load.is_loaded)
            cpu_steal_pct=0.2,
            cpu_iowait_pct=0.1,
            cpu_time_s=0.98 * 2000 / ticks_per_s,
        )
        # Not counted (no valgrind run), as a sweep without instructions=True leaves them.
        row.update(dict.fromkeys(name for name, _ in INSTRUCTION_COLUMNS))
        for i in range(10):
            row[f"rate_decile_{i}_ticks_per_s"] = ticks_per_s * (1.0 - 0.005 * i)
        for j, stage in enumerate(STAGE_NAMES):
            row[f"stage_{stage}_share"] = 0.9 / len(STAGE_NAMES) if j % 4 else 0.0
        rows.append(row)
    return pl.DataFrame(rows, schema=schema)
