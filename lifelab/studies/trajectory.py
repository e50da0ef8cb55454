"""Trajectories: a Life's vitals, time and memory sampled as it lives (for the tour notebook).

Sampling runs the organism in chunks of ``every`` ticks and reads the state in between, so the
trajectory is exactly the run's own (chunking never changes a simulated run's digest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from lifelab.config import LifeConfig
    from lifelab.life.loop import Life

__all__ = ["first_weakness", "plot_trajectory", "trajectory", "weakness_table"]

COLUMNS = (
    "tick",
    "age_s",
    "subjective_time_s",
    "energy",
    "stability",
    "integrity",
    "memory_active",
    "archive_size",
    "events_processed",
    "weak",
)


def _row(life: Life) -> dict[str, Any]:
    s = life.state
    return {
        "tick": s.ticks,
        "age_s": s.age,
        "subjective_time_s": s.subjective_time,
        "energy": s.energy,
        "stability": s.stability,
        "integrity": s.integrity,
        "memory_active": len(life.memory),
        "archive_size": len(life.archive),
        "events_processed": life.events_processed,
        "weak": life.is_weak(),
    }


def trajectory(life: Life, ticks: int, *, every: int = 100) -> pl.DataFrame:
    """Run ``ticks`` more ticks, sampling the organism every ``every`` ticks (and at the start)."""
    import polars as pl

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    rows = [_row(life)]
    done = 0
    while done < ticks:
        step = min(every, ticks - done)
        life.run(step)
        done += step
        rows.append(_row(life))
    return pl.DataFrame(rows)


def plot_trajectory(df: pl.DataFrame) -> Figure:
    """Vitals, subjective vs clock time, and memory/archive sizes over ticks (three panels)."""
    from matplotlib.figure import Figure

    if df.height == 0:
        raise ValueError("empty trajectory: nothing to plot")
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    tick = df["tick"].to_numpy()
    ax1.plot(tick, df["energy"] / 100.0, label="energy / 100")
    ax1.plot(tick, df["stability"], label="stability")
    ax1.plot(tick, df["integrity"], label="integrity")
    ax1.set_ylabel("vital (0–1)")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(loc="lower left")
    ax1.set_title("Vitals")
    ax2.plot(tick, df["age_s"], label="clock time (age)")
    ax2.plot(tick, df["subjective_time_s"], label="subjective time")
    ax2.set_ylabel("seconds")
    ax2.legend(loc="upper left")
    ax2.set_title("Time")
    ax3.plot(tick, df["memory_active"], label="active memory")
    ax3.plot(tick, df["archive_size"], label="archive")
    ax3.set_yscale("symlog")
    ax3.set_ylabel("entries")
    ax3.set_xlabel("tick")
    ax3.legend(loc="upper left")
    ax3.set_title("Memory")
    return fig


def first_weakness(config: LifeConfig, *, max_ticks: int, every: int = 10) -> dict[str, Any]:
    """Live a new organism until it is first weak, checking every ``every`` ticks.

    Returns the seed, the rate, ``first_weak_tick`` (None if it stayed healthy for
    ``max_ticks``; else exact to within ``every`` ticks) and ``weak_vitals``: the vitals at or
    below their thresholds then ("" if none).
    """
    from lifelab.life.loop import Life
    from lifelab.life.policy import weak_vitals

    if every < 1 or max_ticks < 1:
        raise ValueError(f"every and max_ticks must be >= 1, got {every}, {max_ticks}")
    life = Life(config)
    tick = None
    while life.state.ticks < max_ticks:
        life.run(min(every, max_ticks - life.state.ticks))
        if life.is_weak():
            tick = life.state.ticks
            break
    s = life.state
    weak = weak_vitals(s.energy, s.stability, s.integrity, config)
    return {
        "seed": config.seed,
        "events_per_tick": config.events_per_tick,
        "first_weak_tick": tick,
        "weak_vitals": ",".join(weak),
    }


def weakness_table(
    config: LifeConfig, *, seeds: list[int], rates: list[float], max_ticks: int, every: int = 10
) -> pl.DataFrame:
    """:func:`first_weakness` for every seed and rate (one row each), from ``config``."""
    import polars as pl

    rows = [
        first_weakness(
            config.replace(seed=seed, events_per_tick=rate), max_ticks=max_ticks, every=every
        )
        for rate in rates
        for seed in seeds
    ]
    return pl.DataFrame(
        rows,
        schema={
            "seed": pl.Int64,
            "events_per_tick": pl.Float64,
            "first_weak_tick": pl.Int64,
            "weak_vitals": pl.String,
        },
    )
