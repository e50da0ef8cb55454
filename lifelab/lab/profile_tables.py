"""Profile readers: a cProfile dump or a Scalene JSON profile as polars tables.

:func:`read_cprofile` gives one row per function; :func:`read_scalene_json` one row per function
and one per active source line, read tolerantly (fields differ across Scalene versions: missing
fields become nulls, out-of-range numbers are clamped and noted, unknown shapes are skipped).
Every table has ``profiler``, ``profiler_version`` and ``file`` columns (``file`` is relative to
the folder holding the ``lifelab`` package when inside it, ``site-packages/…`` or ``stdlib/…``
for libraries; ``path`` keeps the absolute path), and units in column names.
:mod:`lifelab.lab.profile` makes the profiles and analyses these tables.

polars is imported inside functions only: ``import lifelab`` stays cheap.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelab.exceptions import LifelabError
from lifelab.lab.spawn import SOURCE_ROOT

if TYPE_CHECKING:
    import polars as pl

__all__ = ["CPU_COLUMNS", "ProfileError", "empty_lines", "read_cprofile", "read_scalene_json"]

_OWN_PREFIX = str(SOURCE_ROOT / "lifelab") + os.sep  # lifelab's own source files


class ProfileError(LifelabError, RuntimeError):
    """A profile could not be made or read: the worker failed, timed out, or wrote nothing."""


def _short_path(path: str) -> str:
    """A readable, machine-independent name for a source file (see the module docstring)."""
    if not path or path.startswith("<"):
        return path
    text = path.replace(os.sep, "/")
    root = str(SOURCE_ROOT).replace(os.sep, "/") + "/"
    if text.startswith(root):
        return text[len(root) :]
    marker = "/site-packages/"
    if marker in text:
        return "site-packages/" + text.split(marker, 1)[1]
    stdlib = sysconfig.get_paths().get("stdlib", "").replace(os.sep, "/")
    if stdlib and text.startswith(stdlib + "/"):
        return "stdlib/" + text[len(stdlib) + 1 :]
    return text


def _qualnames(path: str) -> dict[int, str]:
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return {}
    return _parse_qualnames(path, stamp)


@functools.lru_cache(maxsize=256)
def _parse_qualnames(path: str, _mtime_ns: int) -> dict[int, str]:
    """``{first line: qualified name}`` of every def in a source file ({} if unreadable).

    cProfile (3.11) keys functions by ``co_name``; this gives ``Life._tick`` instead of
    ``_tick``, like Scalene. A decorated def is keyed by its first decorator's line too, which
    is where ``co_firstlineno`` points.
    """
    import ast

    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return {}
    names: dict[int, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    names[child.lineno] = name
                    for deco in child.decorator_list:
                        names.setdefault(deco.lineno, name)
                inner = name + "." if isinstance(child, ast.ClassDef) else name + ".<locals>."
                visit(child, inner)
            else:
                visit(child, prefix)

    visit(tree, "")
    return names


def read_cprofile(path: str | Path, *, profiler_version: str = "") -> pl.DataFrame:
    """One row per function of a cProfile/pstats dump, hottest self time first.

    Columns: profiler, profiler_version, file, path, line, function, ncalls, primitive_calls,
    tottime_s (self), cumtime_s (with callees), tottime_per_call_us, share_of_total (self time
    as a fraction of all profiled self time, 0–1). C functions have file ``<built-in>``, line 0.
    lifelab's own functions are named by qualified name (``Life._tick``), others by the bare
    name cProfile records (parsing every library file for it would cost a second).
    """
    import pstats

    import polars as pl

    try:
        stats = pstats.Stats(str(path))
    except (OSError, EOFError, TypeError, ValueError) as exc:
        raise ProfileError(f"{path} is not a readable cProfile dump: {exc}") from exc
    total = stats.total_tt  # type: ignore[attr-defined]
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, function), (cc, nc, tt, ct, _callers) in raw.items():
        builtin = filename == "~"
        ours = not builtin and filename.startswith(_OWN_PREFIX)
        rows.append(
            {
                "file": "<built-in>" if builtin else _short_path(filename),
                "path": "" if builtin else filename,
                "line": int(line),
                "function": _qualnames(filename).get(line, function) if ours else function,
                "ncalls": int(nc),
                "primitive_calls": int(cc),
                "tottime_s": float(tt),
                "cumtime_s": float(ct),
                "tottime_per_call_us": float(tt) / nc * 1e6 if nc else 0.0,
                "share_of_total": float(tt) / total if total > 0 else 0.0,
            }
        )
    schema = {
        "file": pl.String,
        "path": pl.String,
        "line": pl.Int64,
        "function": pl.String,
        "ncalls": pl.Int64,
        "primitive_calls": pl.Int64,
        "tottime_s": pl.Float64,
        "cumtime_s": pl.Float64,
        "tottime_per_call_us": pl.Float64,
        "share_of_total": pl.Float64,
    }
    frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    return _with_profiler(frame, "cprofile", profiler_version).sort("tottime_s", descending=True)


def _with_profiler(frame: pl.DataFrame, tool: str, version: str) -> pl.DataFrame:
    import polars as pl

    return frame.select(
        pl.lit(tool, pl.String).alias("profiler"),
        pl.lit(version, pl.String).alias("profiler_version"),
        pl.all(),
    )


# Scalene field → (our column, low, high); high None means unbounded. Older Scalene versions
# lack some fields (e.g. n_peak_mb was n_growth_mb); a missing field is a null.
_SCALENE_FIELDS: tuple[tuple[str, str, float, float | None], ...] = (
    ("n_cpu_percent_python", "cpu_python_percent", 0.0, 100.0),
    ("n_cpu_percent_c", "cpu_native_percent", 0.0, 100.0),
    ("n_sys_percent", "cpu_system_percent", 0.0, 100.0),
    ("n_core_utilization", "core_utilization_fraction", 0.0, 1.0),
    ("n_gpu_percent", "gpu_percent", 0.0, 100.0),
    ("n_malloc_mb", "malloc_mb", 0.0, None),
    ("n_peak_mb", "peak_mb", 0.0, None),
    ("n_avg_mb", "avg_mb", 0.0, None),
    ("n_mallocs", "mallocs", 0.0, None),
    ("n_python_fraction", "python_alloc_fraction", 0.0, 1.0),
    ("n_usage_fraction", "usage_fraction", 0.0, 1.0),
    ("n_copy_mb_s", "copy_mb_per_s", 0.0, None),
)
_FALLBACK = {"n_peak_mb": "n_growth_mb"}
CPU_COLUMNS = ("cpu_python_percent", "cpu_native_percent", "cpu_system_percent")


def _line_schema() -> dict[str, Any]:
    import polars as pl

    schema: dict[str, Any] = {
        "profiler": pl.String,
        "profiler_version": pl.String,
        "file": pl.String,
        "path": pl.String,
        "line": pl.Int64,
        "function": pl.String,
        "source": pl.String,
    }
    for _key, column, _lo, _hi in _SCALENE_FIELDS:
        schema[column] = pl.Float64
    schema["cpu_total_percent"] = pl.Float64
    return schema


def _function_schema() -> dict[str, Any]:
    schema = _line_schema()
    del schema["source"]
    return schema


def empty_lines() -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(schema=_line_schema())


class _Checker:
    """Reads numbers out of loosely-shaped dicts, clamping out-of-range values with a note."""

    def __init__(self) -> None:
        self.clamped: dict[str, list[float]] = {}
        self.bad: dict[str, list[Any]] = {}
        self.skipped: list[str] = []

    def number(self, entry: Mapping[str, Any], key: str, lo: float, hi: float | None) -> Any:
        raw = entry.get(key)
        if raw is None and key in _FALLBACK:
            raw = entry.get(_FALLBACK[key])
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            self.bad.setdefault(key, []).append(raw)
            return None
        value = float(raw)
        if value < lo or (hi is not None and value > hi):
            self.clamped.setdefault(key, []).append(value)
            value = lo if value < lo else float(hi)  # type: ignore[arg-type]
        return value

    def notes(self) -> list[str]:
        out = list(self.skipped)
        for key, values in sorted(self.clamped.items()):
            worst = max(values, key=abs)
            out.append(f"{key}: {len(values)} value(s) out of range clamped (worst {worst:g})")
        for key, values in sorted(self.bad.items()):
            out.append(f"{key}: {len(values)} non-numeric value(s) left empty (e.g. {values[0]!r})")
        return out


def _unescape(source: str) -> str:
    # Scalene escapes &, <, > in source lines for its web viewer.
    return (
        source.replace("\\u0026", "&").replace("\\u003c", "<").replace("\\u003e", ">").rstrip("\n")
    )


def _measures(entry: Mapping[str, Any], check: _Checker) -> dict[str, Any]:
    row = {column: check.number(entry, key, lo, hi) for key, column, lo, hi in _SCALENE_FIELDS}
    total = sum(row[c] or 0.0 for c in CPU_COLUMNS)
    if total > 100.0 + 1e-6:
        check.clamped.setdefault("cpu_total_percent", []).append(total)
        total = 100.0
    row["cpu_total_percent"] = total
    return row


def read_scalene_json(
    source: str | Path | Mapping[str, Any], *, profiler_version: str = ""
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Scalene's JSON profile as (functions, lines, info), read tolerantly.

    ``lines`` keeps lines with any CPU or memory activity. Missing fields become nulls,
    percentages and fractions are clamped into their ranges and MB to >= 0 (each clamp is
    counted in ``info["notes"]``), and entries of unknown shape are skipped with a note. ``info``
    also holds ``file_cpu_percent`` (Scalene's per-file share), ``elapsed_time_s``,
    ``max_footprint_mb``, ``memory`` (whether memory was profiled; None if the file does not
    say), ``alloc_samples`` and ``malloc_mb_total``. ``{}`` (what Scalene writes when it took no
    samples) is an empty profile, without notes.

    Raises:
        ProfileError: the file is unreadable or its top level is not a JSON object.
    """
    import polars as pl

    data: Any = source
    if isinstance(source, str | os.PathLike):
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ProfileError(f"cannot read the Scalene profile {source}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ProfileError(f"a Scalene profile is a JSON object, got {type(data).__name__}")
    check = _Checker()
    files = data.get("files")
    if not isinstance(files, Mapping):
        # Scalene writes {} when it took no samples: that is an empty profile, not an odd one.
        if data:
            check.skipped.append("no 'files' object: no per-line or per-function data")
        files = {}
    line_rows: list[dict[str, Any]] = []
    function_rows: list[dict[str, Any]] = []
    file_cpu: dict[str, float] = {}
    for path, detail in files.items():
        if not isinstance(detail, Mapping):
            check.skipped.append(f"files[{path!r}]: not an object, skipped")
            continue
        name = _short_path(str(path))
        share = check.number(detail, "percent_cpu_time", 0.0, 100.0)
        if share is not None:
            file_cpu[name] = share
        names: dict[int, str] = {}
        for kind, rows in (("functions", function_rows), ("lines", line_rows)):
            entries = detail.get(kind, [])
            if not isinstance(entries, list):
                check.skipped.append(f"files[{path!r}].{kind}: not a list, skipped")
                continue
            for i, entry in enumerate(entries):
                lineno = entry.get("lineno") if isinstance(entry, Mapping) else None
                if isinstance(lineno, bool) or not isinstance(lineno, int) or lineno < 0:
                    check.skipped.append(f"files[{path!r}].{kind}[{i}]: no line number, skipped")
                    continue
                row: dict[str, Any] = {"file": name, "path": str(path), "line": lineno}
                text = entry.get("line")
                text = text if isinstance(text, str) else ""
                if kind == "functions":
                    row["function"] = text
                    names[lineno] = text
                else:
                    start = entry.get("start_function_line")
                    row["function"] = names.get(start) if isinstance(start, int) else None
                    row["source"] = _unescape(text)
                row.update(_measures(entry, check))
                rows.append(row)
    lines = pl.DataFrame(line_rows, schema=_line_schema(), orient="row") if line_rows else None
    functions = pl.DataFrame(function_rows, schema=_function_schema(), orient="row")
    if lines is None:
        lines = empty_lines()
    lines = lines.with_columns(
        pl.lit("scalene", pl.String).alias("profiler"),
        pl.lit(profiler_version, pl.String).alias("profiler_version"),
    ).filter(
        (pl.col("cpu_total_percent") > 0)
        | (pl.col("malloc_mb").fill_null(0) > 0)
        | (pl.col("peak_mb").fill_null(0) > 0)
        | (pl.col("copy_mb_per_s").fill_null(0) > 0)
    )
    functions = functions.with_columns(
        pl.lit("scalene", pl.String).alias("profiler"),
        pl.lit(profiler_version, pl.String).alias("profiler_version"),
    )
    info: dict[str, Any] = {
        "file_cpu_percent": dict(sorted(file_cpu.items(), key=lambda kv: -kv[1])),
        "elapsed_time_s": check.number(data, "elapsed_time_sec", 0.0, None),
        "max_footprint_mb": check.number(data, "max_footprint_mb", 0.0, None),
        "max_footprint_file": _short_path(str(data.get("max_footprint_fname") or "")) or None,
        "max_footprint_line": data.get("max_footprint_lineno"),
        "memory": data["memory"] if isinstance(data.get("memory"), bool) else None,
        "alloc_samples": check.number(data, "alloc_samples", 0.0, None),
        "malloc_mb_total": float(lines["malloc_mb"].fill_null(0).sum()),
        "notes": check.notes(),
    }
    return (
        functions.sort("cpu_total_percent", descending=True),
        lines.sort(["file", "line"]),
        info,
    )
