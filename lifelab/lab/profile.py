"""``lifelab profile``: profile the tick loop with cProfile or Scalene and analyse the result.

The manager here starts a fresh worker process through :func:`lifelab.lab.spawn.run_worker`
(pyperf style: timeout, exit-code check, stderr tail in the error) that builds a Life, runs
``warmup`` ticks unprofiled and then ``ticks`` ticks under the profiler
(:mod:`lifelab.lab._profile_worker`). Scalene always runs that way
(``python -m scalene run --off ... -m lifelab.lab._profile_worker --- SPEC_JSON``; the worker
switches sampling on after warm-up). The output folder then holds:

- the raw profile: ``profile.prof`` (cProfile, read it with :mod:`pstats`) or
  ``scalene-profile.json`` (open it with ``scalene view``);
- ``functions.parquet``: one row per function;
- ``lines.parquet`` (Scalene only): one row per source line with any CPU or memory activity.
  cProfile measures functions, not lines, so a cProfile result has an empty ``lines`` table
  rather than rows invented from functions' first lines;
- ``summary.json``: format version, environment, the worker's clock readings, the analysis
  numbers, the hot spots and the one-paragraph summary.

The two tables are written and read like every lifelab table, by
:func:`lifelab.lab.results.write_table` and :func:`~lifelab.lab.results.read_table`: kinds
``profile_functions`` and ``profile_lines``, version :data:`PROFILE_FORMAT_VERSION`, and a
SHA-256 checked before polars decodes a byte, so a damaged table is refused with
:class:`~lifelab.lab.results.ResultsSchemaError` naming the file (polars can abort the
interpreter on a corrupt parquet file). Tables written before that (no kind, no checksum) still
load, unverified.

The tables are read from the raw profile by :mod:`lifelab.lab.profile_tables` (see there for
their columns and the tolerant reading of Scalene's JSON); this module analyses them.

Real-time mode: the share of wall time spent sleeping is measured by the worker as
``(wall − process CPU time) / wall`` over the profiled ticks — profiler independent, so it holds
for Scalene too — and again over the unprofiled warm-up. Profiling slows the working part, so
the profiled share reads lower; the warm-up share is the faithful one (when there is a warm-up).
For cProfile the summary also gives the share of profiled time in the clock's waiting entries
(``lock.acquire`` under ``Event.wait``, ``time.sleep``), which are left out of the CPU shares
and hot spots. Scalene samples virtual (CPU) time in real-time mode for the same reason.

polars is imported inside functions only: ``import lifelab`` stays cheap.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelab.config import LifeConfig
from lifelab.exceptions import ConfigError, ConfigTypeError
from lifelab.lab._profile_worker import SPEC_VERSION
from lifelab.lab.profile_tables import (
    CPU_COLUMNS,
    ProfileError,
    empty_lines,
    read_cprofile,
    read_scalene_json,
)
from lifelab.lab.results import read_table, write_table
from lifelab.lab.spawn import SOURCE_ROOT, WorkerError, WorkerTimeout, run_worker

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DEFAULT_PROFILE_ROOT",
    "PROFILE_FORMAT_VERSION",
    "TOOLS",
    "ProfileError",
    "ProfileResult",
    "load_profile",
    "profile",
    "read_cprofile",
    "read_scalene_json",
]

# History: 1 — profile.prof | scalene-profile.json, functions.parquet, lines.parquet (Scalene),
# summary.json with format_version, tool, profiler_version, worker, analysis, hot_spots, summary.
# Later additions within version 1, absent from older files and read as unknown: worker.engine
# (and the analysis' engine); the tables' kind, version and checksum (write_table), absent from
# older tables, which read_table reads as kind "plain", version 0, unverified.
PROFILE_FORMAT_VERSION = 1
TOOLS = ("cprofile", "scalene")
DEFAULT_PROFILE_ROOT = Path("data") / "runs" / "profiles"

WORKER_MODULE = "lifelab.lab._profile_worker"
SUMMARY_FILE = "summary.json"
FUNCTIONS_FILE = "functions.parquet"
LINES_FILE = "lines.parquet"
FUNCTIONS_KIND = "profile_functions"  # the tables' kinds for write_table / read_table
LINES_KIND = "profile_lines"
RAW_FILE = {"cprofile": "profile.prof", "scalene": "scalene-profile.json"}
_WORKER_RESULT = ".worker-result.json"

# cProfile entries in which the real-time clock waits for the next deadline (Event.wait ends in
# a lock acquire with a timeout; without a stop event the clock calls time.sleep).
_WAIT_FUNCTIONS = frozenset(
    {
        "<method 'acquire' of '_thread.lock' objects>",
        "<method 'acquire' of '_thread.RLock' objects>",
        "<built-in method time.sleep>",
    }
)


# -- the result ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ProfileResult:
    """One profile: where its files are, its tables, and the analysis made from them.

    Attributes:
        tool: ``"cprofile"`` or ``"scalene"``.
        profile_path: The raw profile (``profile.prof`` or ``scalene-profile.json``).
        table_path: ``functions.parquet``.
        functions: One row per function (see the module docstring for the columns).
        lines: One row per active line (Scalene); empty with the same schema for cProfile.
        ticks: Ticks run under the profiler (warm-up excluded).
        lines_path: ``lines.parquet``, or None for cProfile.
        meta: The contents of ``summary.json`` (worker readings, environment, parse notes).
    """

    tool: str
    profile_path: Path
    table_path: Path
    functions: pl.DataFrame
    lines: pl.DataFrame
    ticks: int
    lines_path: Path | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.profile_path.parent

    def hot_spots(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` hottest places by CPU (and, for Scalene, the ``n`` biggest by allocation).

        Each dict has ``by`` (``"cpu"`` or ``"memory"``), ``file``, ``line``, ``function`` and
        the figures that ranked it; ``cpu_percent`` is the share of profiled CPU (cProfile: of
        self time, real-time waiting excluded).
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if self.tool == "cprofile":
            return _cprofile_hot_spots(self.functions, n, self._realtime)
        return _scalene_hot_spots(self.lines, n)

    def analysis(self) -> dict[str, Any]:
        """The numbers behind :meth:`summary` (shares by file, hottest places, sleeping share)."""
        if self.tool == "cprofile":
            return _analyse_cprofile(self.functions, self._worker, self._realtime)
        return _analyse_scalene(self.functions, self.lines, self._worker, self.meta)

    def summary(self) -> str:
        """A one-paragraph plain-language analysis of where the time (and memory) goes."""
        return _summary_text(self.tool, self.meta, self.analysis(), self.ticks)

    def to_json(self) -> dict[str, Any]:
        """The ``lifelab profile --json`` object."""
        worker = self._worker
        out: dict[str, Any] = {
            "tool": self.tool,
            "profiler_version": self.meta.get("profiler_version", ""),
            "ticks": self.ticks,
            "out_dir": str(self.out_dir),
            "profile_path": str(self.profile_path),
            "table_path": str(self.table_path),
            "lines_path": None if self.lines_path is None else str(self.lines_path),
            "wall_s": worker.get("wall_s"),
            "engine": worker.get("engine"),
            "summary": self.summary(),
            "hot_spots": self.hot_spots(),
        }
        if self._realtime:
            out["sleeping_share"] = worker.get("sleeping_share")
            out["warmup_sleeping_share"] = worker.get("warmup_sleeping_share")
        return out

    @property
    def _worker(self) -> Mapping[str, Any]:
        return self.meta.get("worker", {})

    @property
    def _realtime(self) -> bool:
        return self._worker.get("clock") == "realtime"


# -- profiling -------------------------------------------------------------------------------------


def profile(
    config: LifeConfig | None = None,
    *,
    tool: str = "cprofile",
    ticks: int = 50_000,
    out: str | Path | None = None,
    warmup: int = 2_000,
    timeout: float | None = None,
    cpu_only: bool = False,
) -> ProfileResult:
    """Profile ``warmup`` + ``ticks`` ticks of ``Life(config)`` in a fresh process and analyse them.

    Args:
        config: The organism to profile (default ``LifeConfig()``: simulated clock, no run
            directory, so no persistence threads).
        tool: ``"cprofile"`` (deterministic, per function) or ``"scalene"`` (sampling, per line,
            CPU split into Python/native/system, plus memory).
        ticks: Ticks run under the profiler.
        out: Output folder; default ``data/runs/profiles/<UTC timestamp>-<tool>/``. A folder that
            already holds a profile is refused (never overwritten).
        warmup: Ticks run first, unprofiled.
        timeout: Seconds the worker may take (default: generous, from ticks and the clock).
        cpu_only: Scalene only: profile CPU only (faster; no memory columns filled).

    Raises:
        ConfigError: bad ``tool``, ``ticks`` or ``warmup`` (a ValueError).
        FileExistsError: ``out`` already holds a profile.
        ProfileError: the worker failed, timed out or wrote nothing usable (a RuntimeError).
    """
    if tool not in TOOLS:
        raise ConfigError(f"profile tool must be one of {list(TOOLS)}, got {tool!r}")
    _check_count("ticks", ticks, 1)
    _check_count("warmup", warmup, 0)
    cfg = config if config is not None else LifeConfig()
    if not isinstance(cfg, LifeConfig):
        raise ConfigTypeError(f"config must be a LifeConfig, got {type(cfg).__name__}")
    version = _profiler_version(tool)
    folder, created = _make_out(out, tool)
    raw = folder / RAW_FILE[tool]
    result_path = folder / _WORKER_RESULT
    spec = {
        "version": SPEC_VERSION,
        "tool": tool,
        "config": cfg.to_dict(),
        "ticks": ticks,
        "warmup": warmup,
        "result_path": str(result_path.resolve()),
        "profile_path": str(raw.resolve()) if tool == "cprofile" else None,
    }
    spec_json = json.dumps(spec)
    if tool == "cprofile":
        cmd = [sys.executable, "-m", WORKER_MODULE, spec_json]
    else:
        realtime = cfg.clock == "realtime"
        cmd = _scalene_command(raw.resolve(), spec_json, cpu_only=cpu_only, realtime=realtime)
    limit = timeout if timeout is not None else _default_timeout(cfg, ticks, warmup, tool)
    try:
        _run_worker(cmd, timeout=limit, what=f"{tool} worker")
        worker = _read_worker_result(result_path)
        if not raw.is_file():
            raise ProfileError(f"the {tool} worker exited cleanly but wrote no profile at {raw}")
        return _finish(folder, tool, version, raw, worker, warmup, cpu_only)
    except BaseException:
        _discard(folder, created)
        raise


def _check_count(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(f"profile {name} must be an integer, got {value!r}")
    if value < lo:
        raise ConfigError(f"profile {name} must be >= {lo}, got {value}")


def _profiler_version(tool: str) -> str:
    """The profiler's version, checked before any work (Scalene must be installed)."""
    if tool == "cprofile":
        import platform

        return f"cProfile (CPython {platform.python_version()})"
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    try:
        if importlib.util.find_spec("scalene") is not None:
            return version("scalene")
    except PackageNotFoundError:
        pass
    raise ProfileError(
        f"scalene is not installed for {sys.executable}; "
        "install it (pip install scalene) or use tool='cprofile'"
    )


def _scalene_command(
    json_path: Path, spec_json: str, *, cpu_only: bool, realtime: bool
) -> list[str]:
    """``python -m scalene run`` (Scalene 2.x syntax) around the worker module.

    ``--off`` starts with sampling off (the worker turns it on after warm-up); ``--program-path``
    is the lifelab package so every lifelab file is profiled, not only the worker's folder
    (the default for ``-m``); arguments after ``---`` go to the worker. In real-time mode
    ``--use-virtual-time`` samples CPU time only: on wall time the clock's sleep would fill the
    profile (as "system" time on its wait line); the worker measures the sleeping instead.
    """
    cmd = [sys.executable, "-m", "scalene", "run", "--off", "-o", str(json_path)]
    cmd += ["--program-path", str(SOURCE_ROOT / "lifelab")]
    if cpu_only:
        cmd.append("--cpu-only")
    if realtime:
        cmd.append("--use-virtual-time")
    return [*cmd, "-m", WORKER_MODULE, "---", spec_json]


def _default_timeout(cfg: LifeConfig, ticks: int, warmup: int, tool: str) -> float:
    """Generous: start-up plus a slow per-tick allowance plus real-time pacing."""
    n = ticks + warmup
    per_tick = 0.005 if tool == "scalene" else 0.002
    paced = n * cfg.tick_interval if cfg.clock == "realtime" else 0.0
    return 120.0 + n * per_tick + 1.5 * paced


def _make_out(out: str | Path | None, tool: str) -> tuple[Path, bool]:
    """The output folder and whether this call created it; refuses to overwrite a profile."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        base = DEFAULT_PROFILE_ROOT / f"{stamp}-{tool}"
        folder, k = base, 1
        while folder.exists():
            k += 1
            folder = base.with_name(f"{base.name}-{k}")
    else:
        folder = Path(out)
        taken = [
            name
            for name in (SUMMARY_FILE, FUNCTIONS_FILE, LINES_FILE, *RAW_FILE.values())
            if (folder / name).exists()
        ]
        if taken:
            raise FileExistsError(
                f"{folder} already holds a profile ({', '.join(taken)}); pick another --out folder"
            )
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    return folder, created


def _discard(folder: Path, created: bool) -> None:
    """Remove what a failed profile left behind (the whole folder only if we made it)."""
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for name in (_WORKER_RESULT, SUMMARY_FILE, FUNCTIONS_FILE, LINES_FILE, *RAW_FILE.values()):
        (folder / name).unlink(missing_ok=True)


def _run_worker(cmd: list[str], *, timeout: float, what: str = "profile worker") -> None:
    """Run one worker process; raise ProfileError with the stderr tail on timeout or failure.

    :func:`lifelab.lab.spawn.run_worker` kills the worker's whole process group on a timeout:
    Scalene re-executes itself in a child process (to preload its allocator), which killing only
    the process we started would leave running.
    """
    try:
        run_worker(cmd, timeout=timeout, what=f"the {what}")
    except WorkerTimeout as exc:
        raise ProfileError(
            f"{exc.reason}; pass a larger timeout or fewer ticks. stderr tail:\n{exc.stderr_tail}"
        ) from None
    except WorkerError as exc:  # chained to the OSError when the worker could not start
        raise ProfileError(str(exc)) from exc.__cause__


def _read_worker_result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(
            f"the profile worker exited cleanly but wrote no result ({path})"
        ) from None
    except ValueError as exc:
        raise ProfileError(f"the profile worker's result {path} is not JSON: {exc}") from None
    finally:
        path.unlink(missing_ok=True)
    if not isinstance(data, dict):
        raise ProfileError(f"the profile worker's result {path} is not a JSON object")
    return data


def _finish(
    folder: Path,
    tool: str,
    version: str,
    raw: Path,
    worker: dict[str, Any],
    warmup: int,
    cpu_only: bool,
) -> ProfileResult:
    """Read the raw profile into tables, write them and summary.json, return the result."""
    from lifelab import __version__

    notes: list[str] = []
    scalene_info: dict[str, Any] = {}
    if tool == "cprofile":
        functions = read_cprofile(raw, profiler_version=version)
        lines = empty_lines()
    else:
        functions, lines, scalene_info = read_scalene_json(raw, profiler_version=version)
        notes = scalene_info.pop("notes", [])
    ticks = int(worker.get("ticks", 0))
    parquet_meta = {
        "lifelab.profile.format_version": str(PROFILE_FORMAT_VERSION),
        "profiler": tool,
        "profiler_version": version,
        "lifelab_version": __version__,
        "ticks": str(ticks),
    }
    # Not replace=True: _make_out already refused a folder holding a profile, and a table that
    # appeared since is another writer's (write_table refuses it: a FileExistsError).
    table_path = write_table(
        functions,
        folder / FUNCTIONS_FILE,
        kind=FUNCTIONS_KIND,
        version=PROFILE_FORMAT_VERSION,
        metadata=parquet_meta,
    )
    lines_path = None
    if tool == "scalene":
        lines_path = write_table(
            lines,
            folder / LINES_FILE,
            kind=LINES_KIND,
            version=PROFILE_FORMAT_VERSION,
            metadata=parquet_meta,
        )
    meta: dict[str, Any] = {
        "format_version": PROFILE_FORMAT_VERSION,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tool": tool,
        "profiler": tool,
        "profiler_version": version,
        "lifelab_version": __version__,
        "ticks": ticks,
        "warmup": warmup,
        "files": {
            "profile": raw.name,
            "functions": FUNCTIONS_FILE,
            "lines": None if lines_path is None else LINES_FILE,
        },
        "worker": worker,
        "scalene": scalene_info,
        "cpu_only": cpu_only and tool == "scalene",
        "notes": notes,
    }
    result = ProfileResult(
        tool=tool,
        profile_path=raw,
        table_path=table_path,
        functions=functions,
        lines=lines,
        ticks=ticks,
        lines_path=lines_path,
        meta=meta,
    )
    meta["analysis"] = result.analysis()
    meta["hot_spots"] = result.hot_spots()
    meta["summary"] = result.summary()
    tmp = folder / (SUMMARY_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    tmp.replace(folder / SUMMARY_FILE)
    return result


def load_profile(folder: str | Path) -> ProfileResult:
    """Open a profile folder written by :func:`profile` (tables and summary, no re-parsing).

    The tables' checksums are checked before they are decoded; tables written before checksums
    load unverified.

    Raises:
        ProfileError: No summary, or a profile format this lifelab does not read.
        ResultsSchemaError: A table is damaged (checksum mismatch, not parquet), of another
            kind, or of a newer version.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{folder} holds no {SUMMARY_FILE}: not a lifelab profile") from None
    version = meta.get("format_version")
    if version != PROFILE_FORMAT_VERSION:
        raise ProfileError(
            f"{folder / SUMMARY_FILE} has profile format {version!r}; "
            f"this lifelab reads format {PROFILE_FORMAT_VERSION}"
        )
    files = meta.get("files", {})
    lines_name = files.get("lines")
    lines_path = folder / lines_name if lines_name else None
    return ProfileResult(
        tool=meta["tool"],
        profile_path=folder / files.get("profile", RAW_FILE[meta["tool"]]),
        table_path=folder / FUNCTIONS_FILE,
        functions=_read_profile_table(folder / FUNCTIONS_FILE, FUNCTIONS_KIND),
        lines=empty_lines() if lines_path is None else _read_profile_table(lines_path, LINES_KIND),
        ticks=int(meta.get("ticks", 0)),
        lines_path=lines_path,
        meta=meta,
    )


def _read_profile_table(path: Path, kind: str) -> pl.DataFrame:
    """A profile table's rows, checksum checked; an older raw table (kind plain) as stored."""
    return read_table(path, kind=kind, max_version=PROFILE_FORMAT_VERSION).data


# -- analysis --------------------------------------------------------------------------------------


def _working(functions: pl.DataFrame, realtime: bool) -> pl.DataFrame:
    """cProfile rows that are work, not the real-time clock waiting for its deadline."""
    import polars as pl

    if not realtime:
        return functions
    return functions.filter(~pl.col("function").is_in(list(_WAIT_FUNCTIONS)))


def _cprofile_hot_spots(functions: pl.DataFrame, n: int, realtime: bool) -> list[dict[str, Any]]:
    work = _working(functions, realtime)
    total = float(work["tottime_s"].sum()) if work.height else 0.0
    out = []
    for row in work.sort("tottime_s", descending=True).head(n).iter_rows(named=True):
        out.append(
            {
                "by": "cpu",
                "file": row["file"],
                "line": row["line"],
                "function": row["function"],
                "cpu_percent": 100.0 * row["tottime_s"] / total if total > 0 else 0.0,
                "tottime_s": row["tottime_s"],
                "cumtime_s": row["cumtime_s"],
                "ncalls": row["ncalls"],
            }
        )
    return out


def _scalene_hot_spots(lines: pl.DataFrame, n: int) -> list[dict[str, Any]]:
    import polars as pl

    out: list[dict[str, Any]] = []
    keep = ["file", "line", "function", "source"]
    by_cpu = lines.filter(pl.col("cpu_total_percent") > 0).sort(
        "cpu_total_percent", descending=True
    )
    for row in by_cpu.head(n).iter_rows(named=True):
        spot = {"by": "cpu", **{k: row[k] for k in keep}}
        spot["cpu_percent"] = row["cpu_total_percent"]
        spot.update({c: row[c] for c in CPU_COLUMNS})
        out.append(spot)
    by_mem = lines.filter(pl.col("malloc_mb").fill_null(0) > 0).sort("malloc_mb", descending=True)
    for row in by_mem.head(n).iter_rows(named=True):
        spot = {"by": "memory", **{k: row[k] for k in keep}}
        spot.update(malloc_mb=row["malloc_mb"], peak_mb=row["peak_mb"], mallocs=row["mallocs"])
        out.append(spot)
    return out


def _analyse_cprofile(
    functions: pl.DataFrame, worker: Mapping[str, Any], realtime: bool
) -> dict[str, Any]:
    import polars as pl

    total = float(functions["tottime_s"].sum()) if functions.height else 0.0
    work = _working(functions, realtime)
    work_total = float(work["tottime_s"].sum()) if work.height else 0.0
    by_file = (
        work.group_by("file")
        .agg(pl.col("tottime_s").sum())
        .sort("tottime_s", descending=True)
        .head(5)
    )
    out: dict[str, Any] = {
        "profiled_s": total,
        "working_s": work_total,
        "cpu_by_file": [
            {"file": f, "cpu_percent": 100.0 * t / work_total if work_total > 0 else 0.0}
            for f, t in by_file.iter_rows()
        ],
        "hottest_functions": _cprofile_hot_spots(functions, 3, realtime),
    }
    out.update(_clock_figures(worker))
    if realtime:
        waiting = total - work_total
        out["profile_wait_share"] = waiting / total if total > 0 else 0.0
    return out


def _analyse_scalene(
    functions: pl.DataFrame,
    lines: pl.DataFrame,
    worker: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    info = meta.get("scalene", {}) or {}
    file_cpu = info.get("file_cpu_percent") or {}
    if not file_cpu and lines.height:
        grouped = lines.group_by("file").agg(_sum("cpu_total_percent")).rows()
        file_cpu = dict(sorted(grouped, key=lambda kv: -kv[1]))
    cpu_sums = {c: float(lines[c].fill_null(0).sum()) for c in CPU_COLUMNS}
    total_cpu = sum(cpu_sums.values())
    spots = _scalene_hot_spots(lines, 3)
    out: dict[str, Any] = {
        "cpu_by_file": [
            {"file": f, "cpu_percent": float(p)} for f, p in list(file_cpu.items())[:5]
        ],
        "python_percent": _share(cpu_sums["cpu_python_percent"], total_cpu),
        "native_percent": _share(cpu_sums["cpu_native_percent"], total_cpu),
        "system_percent": _share(cpu_sums["cpu_system_percent"], total_cpu),
        "hottest_lines": [s for s in spots if s["by"] == "cpu"],
        "hottest_functions": [
            {k: row[k] for k in ("file", "line", "function", "cpu_total_percent")}
            for row in functions.head(3).iter_rows(named=True)
            if (row["cpu_total_percent"] or 0) > 0
        ],
        "top_allocations": [s for s in spots if s["by"] == "memory"],
        "memory_profiled": (
            info["memory"]
            if isinstance(info.get("memory"), bool)
            else not meta.get("cpu_only", False)
        ),
        "malloc_mb_total": float(lines["malloc_mb"].fill_null(0).sum()),
        "max_footprint_mb": info.get("max_footprint_mb"),
    }
    out.update(_clock_figures(worker))
    return out


def _sum(column: str) -> Any:
    import polars as pl

    return pl.col(column).fill_null(0).sum()


def _share(part: float, total: float) -> float:
    return 100.0 * part / total if total > 0 else 0.0


def _clock_figures(worker: Mapping[str, Any]) -> dict[str, Any]:
    wall = worker.get("wall_s") or 0.0
    ticks = worker.get("ticks") or 0
    out: dict[str, Any] = {
        "clock": worker.get("clock"),
        "engine": worker.get("engine"),
        "wall_s": wall,
        "cpu_s": worker.get("cpu_s"),
        "ticks_per_s_profiled": ticks / wall if wall > 0 else None,
    }
    if worker.get("clock") == "realtime":
        out["sleeping_share"] = worker.get("sleeping_share")
        out["warmup_sleeping_share"] = worker.get("warmup_sleeping_share")
    return out


def _pct(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.0f} %" if value >= 10 else f"{value:.1f} %"


def _label(file: str) -> str:
    return "C built-ins" if file == "<built-in>" else file


def _where(spot: Mapping[str, Any]) -> str:
    name = spot.get("function") or "?"
    return f"{name} ({spot.get('file')}:{spot.get('line')})"


def _summary_text(tool: str, meta: Mapping[str, Any], a: Mapping[str, Any], ticks: int) -> str:
    """One paragraph from the analysis numbers: what, where the time goes, memory, sleeping."""
    worker = meta.get("worker", {}) or {}
    name = "cProfile" if tool == "cprofile" else f"Scalene {meta.get('profiler_version', '')}"
    rate = a.get("ticks_per_s_profiled")
    why = "paced by the real-time clock" if a.get("clock") == "realtime" else "profiling slows it"
    parts = [
        f"{name.strip()} profile of {ticks:,} ticks ({worker.get('clock', '?')} clock, "
        f"after {meta.get('warmup', 0):,} unprofiled warm-up ticks): {a.get('wall_s', 0):.2f} s "
        f"under the profiler" + (f", {rate:,.0f} ticks/s ({why})." if rate else ".")
    ]
    what = "self time" if tool == "cprofile" else "sampled CPU time"
    if a.get("clock") == "realtime" and tool == "cprofile":
        what = "working (non-sleeping) self time"
    files = a.get("cpu_by_file") or []
    if files:
        head = files[0]
        rest = ", ".join(f"{_pct(f['cpu_percent'])} in {_label(f['file'])}" for f in files[1:3])
        parts.append(
            f"{_pct(head['cpu_percent'])} of {what} is in {_label(head['file'])}"
            + (f" (then {rest})." if rest else ".")
        )
    elif tool == "scalene":
        parts.append(
            "Scalene took no CPU samples in lifelab code: it samples every 10 ms of CPU time, "
            "so profile more ticks."
        )
    else:
        parts.append("The profile holds no timings.")
    if tool == "scalene" and files:
        parts.append(
            f"CPU splits {_pct(a.get('python_percent'))} Python, "
            f"{_pct(a.get('native_percent'))} native (numpy, C built-ins) and "
            f"{_pct(a.get('system_percent'))} system."
        )
        hot_lines = a.get("hottest_lines") or []
        if hot_lines:
            line = hot_lines[0]
            source = (line.get("source") or "").strip()
            source = source if len(source) <= 60 else source[:57] + "..."
            parts.append(
                f"The hottest line is {line['file']}:{line['line']} (`{source}`)"
                f"{' in ' + line['function'] if line.get('function') else ''} "
                f"with {_pct(line['cpu_percent'])}."
            )
    if a.get("engine") == "compiled":
        parts.append(
            "The compiled engine ran these ticks: the kernel's time shows up as one native "
            "frame (the kernel call, run_ticks) in cProfile and as native time in Scalene, not "
            "split by stage (profile with --engine python to see the stages)."
        )
    hot = a.get("hottest_functions") or []
    if hot:
        top = hot[0]
        share = top.get("cpu_percent", top.get("cpu_total_percent"))
        extra = f" over {top['ncalls']:,} calls" if "ncalls" in top else ""
        parts.append(f"The hottest function is {_where(top)} with {_pct(share)}{extra}.")
    if tool == "cprofile":
        rss = worker.get("peak_rss_mb")
        rss_text = f" (the worker's peak RSS was {rss:.0f} MB)" if rss else ""
        parts.append(
            f"cProfile does not measure memory{rss_text}; use the scalene tool for allocations."
        )
    elif not a.get("memory_profiled"):
        parts.append("Memory was not profiled (CPU only).")
    else:
        allocs = a.get("top_allocations") or []
        footprint = a.get("max_footprint_mb")
        peak = f"; peak footprint {footprint:.1f} MB" if footprint else ""
        if allocs:
            top = allocs[0]
            parts.append(
                f"Memory allocation is dominated by {top['file']}:{top['line']}"
                f"{' in ' + top['function'] if top.get('function') else ''} "
                f"({top['malloc_mb']:.1f} of {a.get('malloc_mb_total', 0):.1f} MB sampled){peak}."
            )
        else:
            parts.append(
                "Scalene sampled no allocations in lifelab code (the loop allocated less than "
                f"its sampling window){peak}."
            )
    if a.get("clock") == "realtime":
        sleeping = a.get("sleeping_share") or 0.0
        text = (
            f"In real-time mode {_pct(100.0 * sleeping)} of wall time under the profiler was "
            f"spent sleeping until tick deadlines and {_pct(100.0 * (1.0 - sleeping))} working"
        )
        unprofiled = a.get("warmup_sleeping_share")
        if unprofiled is not None:
            text += f" ({_pct(100.0 * unprofiled)} sleeping in the unprofiled warm-up)"
        text += "; measured by the worker as wall minus process CPU time"
        wait = a.get("profile_wait_share")
        if wait is not None:
            text += f"; the clock's wait entries hold {_pct(100.0 * wait)} of profiled time"
        if tool == "scalene":
            text += "; Scalene sampled CPU time only (virtual time), so the sleep is not in it"
        parts.append(text + ".")
    notes = meta.get("notes") or []
    if notes:
        parts.append(f"Reading the profile needed {len(notes)} fix(es); see notes in summary.json.")
    return " ".join(parts)
