"""The machine's load over a trial's measured ticks, and the rule that calls a trial loaded.

DESIGN §3: a timing taken while other work ran is not comparable with one taken on a quiet
machine. The trial worker takes a :func:`sample` just before and just after its measured ticks
(the warm-up is outside) and :func:`load_columns` turns the two into the ``LOAD_COLUMNS`` of the
results schema:

- ``load_avg_1m``: the 1-minute load average (/proc/loadavg), the higher of the two readings, so
  that a flag errs toward flagging. It is a damped average over about a minute: for a short
  trial it mostly describes the minute before, and it counts the trial's own process (about 1).
- ``cpu_steal_pct`` and ``cpu_iowait_pct``: the machine-wide share of CPU time, in %, that the
  hypervisor stole and that CPUs sat idle waiting on I/O between the samples (deltas of the
  aggregate ``cpu`` line of /proc/stat over the delta of its jiffies). The kernel counts in
  jiffies (1/100 s per CPU), so a window shorter than :data:`MIN_SHARE_JIFFIES` (0.5 s on two
  CPUs) gives None: one stolen jiffy in 20 would read 5 % and flag a trial by chance.
- ``cpu_time_s``: the worker process's own CPU time over the measured run (user + system,
  ``time.process_time``), readable everywhere.

Without /proc (macOS, Windows) the machine-wide fields are None, never an error; the load
average then comes from ``os.getloadavg`` where the system has one.

:func:`is_loaded` (a row) and :func:`loaded_expr` (a table) apply one rule: the load average
exceeds the CPU count, or steal exceeds :data:`LOAD_STEAL_PCT`. It is computed when read, not
stored, so changing the rule re-judges every table. Nothing here imports polars at import time:
the worker imports this module.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelab.lab.schema import LOAD_COLUMNS

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "LOADED",
    "LOADED_RULE",
    "LOAD_STEAL_PCT",
    "MIN_SHARE_JIFFIES",
    "PROC_LOADAVG",
    "PROC_STAT",
    "CpuTimes",
    "LoadSample",
    "cpu_shares",
    "is_loaded",
    "load_columns",
    "loaded_expr",
    "parse_loadavg",
    "parse_proc_stat",
    "read_cpu_times",
    "read_loadavg",
    "sample",
    "with_loaded",
]

LOAD_STEAL_PCT = 5.0  # more CPU stolen than this and the VM's timings are not the trial's own
LOADED = "loaded"  # the derived column of with_loaded: True, False, or null (not measured)
LOADED_RULE = f"load > cores or steal > {LOAD_STEAL_PCT:g} %"  # the rule, in the report's words
# Fewest jiffies (all CPUs together) a share is computed over: 1 % steps, fine enough for 5 %.
MIN_SHARE_JIFFIES = 100

PROC_LOADAVG = Path("/proc/loadavg")
PROC_STAT = Path("/proc/stat")

# The first eight fields of a /proc/stat cpu line: user nice system idle iowait irq softirq
# steal. The guest fields after them are already counted in user and nice, so they are left out
# of the total (summing them would count guest time twice).
_TIME_FIELDS = 8
_IOWAIT, _STEAL = 4, 7


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat: jiffies since boot, all CPUs together."""

    total: int
    iowait: int
    steal: int


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One reading before or after the measured ticks; None where the system has no such file."""

    load_avg_1m: float | None
    cpu: CpuTimes | None
    process_cpu_s: float


def parse_loadavg(text: str) -> float:
    """The 1-minute load average: the first field of /proc/loadavg (``"0.52 0.40 0.31 1/123 45"``).

    Raises:
        ValueError: ``text`` does not start with a number.
    """
    fields = text.split()
    if not fields:
        raise ValueError("empty /proc/loadavg text")
    return float(fields[0])


def parse_proc_stat(text: str) -> CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat text (not ``cpu0``…).

    Older kernels print fewer fields (steal since 2.6.11): the missing ones count as 0.

    Raises:
        ValueError: no ``cpu`` line, or a field that is not an integer.
    """
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            times = [int(f) for f in fields[1 : 1 + _TIME_FIELDS]]
            times += [0] * (_TIME_FIELDS - len(times))
            return CpuTimes(total=sum(times), iowait=times[_IOWAIT], steal=times[_STEAL])
    raise ValueError("no aggregate 'cpu' line in the /proc/stat text")


def read_loadavg(path: str | os.PathLike[str] = PROC_LOADAVG) -> float | None:
    """The 1-minute load average from ``path``; None if it is missing or unreadable."""
    try:
        return parse_loadavg(Path(path).read_text(encoding="ascii", errors="replace"))
    except (OSError, ValueError):
        return None


def read_cpu_times(path: str | os.PathLike[str] = PROC_STAT) -> CpuTimes | None:
    """The aggregate CPU times from ``path``; None if it is missing or unreadable."""
    try:
        return parse_proc_stat(Path(path).read_text(encoding="ascii", errors="replace"))
    except (OSError, ValueError):
        return None


def sample(
    *,
    loadavg_path: str | os.PathLike[str] = PROC_LOADAVG,
    stat_path: str | os.PathLike[str] = PROC_STAT,
) -> LoadSample:
    """Read the load average, the machine's CPU times and this process's CPU time, now."""
    load = read_loadavg(loadavg_path)
    if load is None and not Path(loadavg_path).exists() and hasattr(os, "getloadavg"):
        try:  # no /proc (macOS): the same figure through the C library
            load = os.getloadavg()[0]
        except OSError:
            load = None
    return LoadSample(load, read_cpu_times(stat_path), time.process_time())


def cpu_shares(start: CpuTimes, end: CpuTimes) -> tuple[float | None, float | None]:
    """(steal %, iowait %) of the CPU time that passed between two readings of /proc/stat.

    None for both when fewer than :data:`MIN_SHARE_JIFFIES` passed (too coarse to judge), or
    the counters went back (a reboot between readings). Each share is clamped to [0, 100]: the
    kernel's iowait counter may step back a little on tickless kernels.
    """
    total = end.total - start.total
    if total < MIN_SHARE_JIFFIES:
        return None, None

    def share(delta: int) -> float:
        return min(max(100.0 * delta / total, 0.0), 100.0)

    return share(end.steal - start.steal), share(end.iowait - start.iowait)


def load_columns(start: LoadSample, end: LoadSample) -> dict[str, float | None]:
    """The LOAD_COLUMNS of the results schema from the samples around the measured ticks."""
    loads = [x for x in (start.load_avg_1m, end.load_avg_1m) if x is not None and math.isfinite(x)]
    steal = iowait = None
    if start.cpu is not None and end.cpu is not None:
        steal, iowait = cpu_shares(start.cpu, end.cpu)
    out = {
        "load_avg_1m": max(loads) if loads else None,
        "cpu_steal_pct": steal,
        "cpu_iowait_pct": iowait,
        "cpu_time_s": max(end.process_cpu_s - start.process_cpu_s, 0.0),
    }
    # Keep the schema's order, and fail loudly if the schema grows a column this module misses.
    return {name: out[name] for name, _ in LOAD_COLUMNS}


def is_loaded(values: Mapping[str, Any], cores: int | None = None) -> bool:
    """Whether a trial ran on a loaded machine: load average > ``cores``, or steal > 5 %.

    ``values`` is a results row (or any mapping with ``load_avg_1m``, ``cpu_steal_pct`` and,
    when ``cores`` is not given, ``cpu_count``). A reading that is missing, null or NaN is no
    evidence of load, and neither is a CPU count that is not positive.
    """
    if cores is None:
        cores = values.get("cpu_count")
    load = values.get("load_avg_1m")
    steal = values.get("cpu_steal_pct")
    over_load = load is not None and cores is not None and cores > 0 and load > cores
    over_steal = steal is not None and steal > LOAD_STEAL_PCT
    return bool(over_load or over_steal)


def loaded_expr() -> pl.Expr:
    """:func:`is_loaded` as a polars expression: True, False, or null when nothing was measured.

    Needs the ``load_avg_1m``, ``cpu_steal_pct`` and ``cpu_count`` columns (see
    :func:`with_loaded` for tables that may lack them).
    """
    import polars as pl

    cores = pl.col("cpu_count")
    over_load = pl.when(cores > 0).then(pl.col("load_avg_1m").fill_nan(None) > cores)
    over_steal = pl.col("cpu_steal_pct").fill_nan(None) > LOAD_STEAL_PCT
    measured = over_load.is_not_null() | over_steal.is_not_null()
    flagged = over_load.fill_null(False) | over_steal.fill_null(False)
    return pl.when(measured).then(flagged).otherwise(None).alias(LOADED)


def with_loaded(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with a Boolean ``loaded`` column (:func:`loaded_expr`).

    A table without the load columns (older than results schema version 3, or another kind of
    table) gets a null ``loaded``: it cannot tell, which is not the same as "not loaded".
    """
    import polars as pl

    needed = {"load_avg_1m": pl.Float64, "cpu_steal_pct": pl.Float64, "cpu_count": pl.Int64}
    absent = [pl.lit(None, t).alias(name) for name, t in needed.items() if name not in df.columns]
    flags = df.with_columns(absent).select(loaded_expr()).to_series()
    return df.with_columns(flags)
