"""Results tables on disk: versioned parquet, ``data/results/<suite>/<sweep_id>.parquet``.

A table's columns are schema.ALL_COLUMNS exactly; its parquet key-value metadata carries the
schema version (``lifelab_results_schema``), the suite and the sweep id. Writers never overwrite
a file; readers check the version and load every version they know (one loader each, upgrading
to the current columns: see the history in :mod:`lifelab.lab.schema`) and refuse newer or unknown
ones. :func:`load_results` merges tables and,
like pyperf, never mixes rows measured on different machines or Pythons unless told to.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelab.exceptions import LifelabError
from lifelab.lab.env import CHECKED_ENVIRONMENT
from lifelab.lab.schema import METADATA_KEY, RESULTS_SCHEMA_VERSION, polars_schema

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DEFAULT_RESULTS_ROOT",
    "ResultsExistsError",
    "ResultsSchemaError",
    "load_results",
    "read_metadata",
    "read_results",
    "validate_results",
    "write_results",
]

DEFAULT_RESULTS_ROOT = Path("data/results")
STATUSES = ("ok", "failed")


class ResultsSchemaError(LifelabError, ValueError):
    """A file is not a lifelab results table, has an unknown version, or has the wrong columns."""


class ResultsExistsError(LifelabError, FileExistsError):
    """A results file already exists at the path a sweep would write (never overwritten)."""


def validate_results(df: pl.DataFrame, *, where: str = "results table") -> pl.DataFrame:
    """Check columns, dtypes and a few ranges against the schema; return df in schema order."""
    import polars as pl

    expected = polars_schema()
    got = df.schema
    missing = [name for name in expected if name not in got]
    extra = [name for name in got if name not in expected]
    wrong = [
        f"{name}: {got[name]} (expected {dtype})"
        for name, dtype in expected.items()
        if name in got and got[name] != dtype
    ]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            parts.append(f"unexpected columns {extra}")
        if wrong:
            parts.append(f"wrong dtypes {wrong}")
        raise ResultsSchemaError(
            f"{where} does not match results schema version {RESULTS_SCHEMA_VERSION}: "
            + "; ".join(parts)
        )
    df = df.select(list(expected))
    bad_status = df.filter(~pl.col("status").is_in(STATUSES) | pl.col("status").is_null())
    if bad_status.height:
        raise ResultsSchemaError(
            f"{where}: status must be one of {list(STATUSES)}, got "
            f"{sorted(set(map(str, bad_status['status'].to_list())))}"
        )
    ok = df.filter(pl.col("status") == "ok")
    rates = ok["ticks_per_s"].to_list()
    if any(r is None or not math.isfinite(r) or r <= 0 for r in rates):
        raise ResultsSchemaError(f"{where}: rows with status ok must have ticks_per_s > 0")
    if df.filter(pl.col("repeat") < 0).height:
        raise ResultsSchemaError(f"{where}: repeat must be >= 0")
    return df


def write_results(
    df: pl.DataFrame, path: str | os.PathLike[str], *, suite: str, sweep_id: str
) -> Path:
    """Write a results table to a new parquet file (parents created) and return its path.

    Raises:
        ResultsExistsError: ``path`` exists (results are a record: never overwritten).
        ResultsSchemaError: ``df`` does not have the schema's columns and dtypes.
    """
    path = Path(path)
    df = validate_results(df, where=f"the table for {path}")
    if path.exists():
        raise ResultsExistsError(
            f"{path} already exists; results are never overwritten: pick another path"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        METADATA_KEY: str(RESULTS_SCHEMA_VERSION),
        "suite": suite,
        "sweep_id": sweep_id,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        df.write_parquet(tmp, metadata=metadata)
        # link() refuses an existing target atomically, closing the race a check leaves open.
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ResultsExistsError(
                f"{path} already exists; results are never overwritten: pick another path"
            ) from None
        except OSError:
            # A file system without hard links: fall back to a checked rename.
            if path.exists():
                raise ResultsExistsError(f"{path} already exists; pick another path") from None
            os.rename(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The parquet key-value metadata of a results file (schema version, suite, sweep id)."""
    import polars as pl
    from polars.exceptions import PanicException

    try:
        return dict(pl.read_parquet_metadata(path))
    except FileNotFoundError:
        raise
    # polars raises ComputeError & co. for a file that is not parquet, and a Rust panic (a
    # BaseException) for some corrupt ones: either way the file is not a table we can read.
    except (Exception, PanicException) as exc:
        raise ResultsSchemaError(f"{path} is not a parquet file: {exc}") from exc


def read_results(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read one results table, checking its schema version, columns and dtypes.

    Raises:
        ResultsSchemaError: Not a results table, a newer or unknown schema version, or wrong
            columns.
    """
    from polars.exceptions import PanicException

    meta = read_metadata(path)
    text = meta.get(METADATA_KEY)
    if text is None:
        raise ResultsSchemaError(
            f"{path} is not a lifelab results table (no {METADATA_KEY!r} in its parquet metadata)"
        )
    try:
        version = int(text)
    except ValueError:
        raise ResultsSchemaError(f"{path}: unknown results schema version {text!r}") from None
    if version > RESULTS_SCHEMA_VERSION:
        raise ResultsSchemaError(
            f"{path} has results schema version {version}, newer than this lifelab reads "
            f"(up to {RESULTS_SCHEMA_VERSION}): upgrade lifelab to read it"
        )
    loader = _LOADERS.get(version)
    if loader is None:
        raise ResultsSchemaError(
            f"{path}: unknown results schema version {version} (known: {sorted(_LOADERS)})"
        )
    try:
        df = loader(Path(path))
    except (FileNotFoundError, ResultsSchemaError):
        raise
    except (Exception, PanicException) as exc:  # corrupt pages pass the metadata check
        raise ResultsSchemaError(f"{path}: cannot read the table (corrupt file?): {exc}") from exc
    return validate_results(df, where=str(path))


def _load_v1(path: Path) -> pl.DataFrame:
    """Version 1 had no ``engine`` column: its trials all ran the Python engine."""
    import polars as pl

    df = pl.read_parquet(path)
    if "engine" in df.columns:
        raise ResultsSchemaError(
            f"{path} says results schema version 1 but has an 'engine' column (version 2): "
            "its metadata is wrong"
        )
    return df.with_columns(pl.lit("python", pl.String).alias("engine"))


def _load_v2(path: Path) -> pl.DataFrame:
    import polars as pl

    return pl.read_parquet(path)


# One loader per schema version ever written; a new version adds a loader that upgrades.
_LOADERS: dict[int, Callable[[Path], Any]] = {1: _load_v1, 2: _load_v2}


def load_results(
    root: str | os.PathLike[str] = DEFAULT_RESULTS_ROOT,
    *,
    suite: str | None = None,
    match_environment: bool = True,
) -> pl.DataFrame:
    """Every results table under ``root`` (or ``root/<suite>``), concatenated, oldest first.

    With ``match_environment`` only rows whose checked environment (cpu_model, python_version)
    equals the most recent table's are kept — timings from different machines or Pythons are
    not comparable — and a warning says what was left out. Parquet files without the results
    metadata key (other tables) are skipped with a warning; results tables of a newer or unknown
    schema version raise :class:`ResultsSchemaError`, as in :func:`read_results`.
    """
    import polars as pl

    base = Path(root) if suite is None else Path(root) / suite
    files = []
    if base.is_dir():
        # Names starting with "." are a writer's temporary files (or hidden folders).
        for path in sorted(base.rglob("*.parquet")):
            if not any(part.startswith(".") for part in path.relative_to(base).parts):
                files.append(path)
    tables = []
    foreign = []
    for path in files:
        if METADATA_KEY not in read_metadata(path):
            foreign.append(str(path))  # some other parquet (not a results table): not ours
            continue
        df = read_results(path)
        if suite is not None:
            df = df.filter(pl.col("suite") == suite)
        latest = df["started_at"].max()
        tables.append((latest is None, latest, path.stat().st_mtime, path, df))
    if foreign:
        warnings.warn(
            f"load_results skipped {len(foreign)} parquet file(s) that are not lifelab results "
            f"tables (no {METADATA_KEY!r} metadata): {foreign}",
            stacklevel=2,
        )
    if not tables:
        return pl.DataFrame(schema=polars_schema())
    # Oldest first; a table without timestamps sorts by file time, before timestamped ones.
    tables.sort(key=lambda t: (not t[0], t[1] if t[1] is not None else 0, t[2]))
    frames = [t[4] for t in tables]
    out = pl.concat(frames, how="vertical")
    if not match_environment or out.is_empty():
        return out
    newest = tables[-1][4].sort("started_at", nulls_last=False)
    if newest.is_empty():
        return out
    ref = {c: newest[c][-1] for c in CHECKED_ENVIRONMENT}
    same = pl.lit(True)
    for column, value in ref.items():
        same = same & pl.col(column).eq_missing(pl.lit(value, dtype=pl.String))
    kept = out.filter(same)
    left = out.filter(~same)
    if left.height:
        groups = (
            left.group_by(list(CHECKED_ENVIRONMENT))
            .agg(pl.len().alias("rows"), pl.col("sweep_id").n_unique().alias("sweeps"))
            .sort(list(CHECKED_ENVIRONMENT), nulls_last=True)
        )
        described = "; ".join(
            ", ".join(f"{c}={g[c]!r}" for c in CHECKED_ENVIRONMENT)
            + f" ({g['rows']} rows, {g['sweeps']} sweeps)"
            for g in groups.iter_rows(named=True)
        )
        ref_text = ", ".join(f"{c}={v!r}" for c, v in ref.items())
        warnings.warn(
            f"load_results left out {left.height} of {out.height} rows measured in another "
            f"environment than the most recent table's ({ref_text}): {described}. Pass "
            "match_environment=False to keep them (timings across machines do not compare).",
            stacklevel=2,
        )
    return kept
