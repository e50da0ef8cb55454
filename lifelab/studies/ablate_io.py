"""Ablations of lifelab's I/O: asynchronous archive, asynchronous snapshots and logs, log format.

Three A/B tables (see :mod:`lifelab.studies.ablation`), each answering one item of the performance
plan with measurements taken in this process, variants interleaved:

``archive_writes``
    lifelab's :class:`~lifelab.memory.sqlite_archive.SQLiteArchive` (``append`` hands over, a
    writer thread commits, coalescing: ~20 ms when the table was measured, 100 ms today)
    against an archive that commits inside ``append`` on the caller's thread. The stream is
    one spill of 1–20 rows per simulated tick; the tick's other work is a spin that holds the
    GIL, as tick code does, so the writer thread competes for it.
``persistence_io``
    a real :class:`~lifelab.life.loop.Life` with a run directory, resumed from a filled snapshot:
    the snapshot and log writer threads against the same work done inside the tick (encode,
    write, fsync, rename, retention; one write per log record). Tick times come from
    ``life.metrics`` with every tick sampled.
``log_format``
    real log records (a short run with decision logging) serialised with stdlib ``json`` (what
    the log writer used before), ``orjson`` and ``msgspec.json`` (what it uses now); every output
    must decode to the record.

The synchronous variants (:class:`_InlineArchive`, :class:`_SyncIO`) live here only: they exist
to be measured against and replace one seam each on their own instances, never lifelab's classes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

import numpy as np

from lifelab.exceptions import ConfigError
from lifelab.memory.active import COLUMNS
from lifelab.memory.sqlite_archive import SQLiteArchive
from lifelab.studies.ablation import (
    DEFAULT_ROOT,
    Sample,
    ablation_table,
    interleave,
    write_ablation,
)

if TYPE_CHECKING:
    import polars as pl

    from lifelab.life.loop import Life
    from lifelab.store.persistence import Persistence
    from lifelab.store.snapshot import Capture

__all__ = ["QUESTIONS", "archive_writes", "log_format", "persistence_io", "run_all"]

QUESTIONS: dict[str, str] = {
    "archive_writes": (
        "Does committing spilled rows in a writer thread (queued, coalesced ~20 ms) take the "
        "archive's cost off the tick thread, compared with an INSERT + COMMIT inside append?"
    ),
    "persistence_io": (
        "Do the snapshot and log writer threads keep snapshot and log I/O out of the tick, "
        "compared with encoding, writing and fsyncing inside it?"
    ),
    "log_format": (
        "Do orjson or msgspec serialise lifelab's log records faster or smaller than stdlib "
        "json? (The log writer used json; it now takes msgspec for plain finite records.)"
    ),
}

ARCHIVE_INLINE = "inline (commit in append)"
ARCHIVE_ASYNC = "async (writer thread, lifelab)"
IO_SYNC = "sync (in the tick)"
IO_ASYNC = "async (writer threads, lifelab)"
LOG_JSON = "json (stdlib)"
LOG_ORJSON = "orjson"
LOG_MSGSPEC = "msgspec.json (lifelab)"

_NAMES = tuple(COLUMNS)
_MAX_SPILL_ROWS = 20  # one tick's spill: 1..20 rows
_WARMUP = 1

# run_all's sizes: quick for a smoke run (~a minute), full for the lead's quiet machine.
_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "archive_writes": {"sizes": (60,), "repeats": 2, "tick_us": 0.0},
        "persistence_io": {
            "sizes": (300,),
            "ticks": 120,
            "snapshot_every": 40,
            "log_every": 5,
            "repeats": 2,
        },
        "log_format": {"sizes": (150,), "repeats": 2},
    },
    "quick": {
        "archive_writes": {"sizes": (2_000,), "repeats": 3},
        "persistence_io": {"sizes": (5_000,), "ticks": 1_500, "repeats": 3},
        "log_format": {"sizes": (1_000,), "repeats": 5},
    },
    "full": {
        "archive_writes": {"sizes": (2_000, 20_000), "repeats": 7},
        "persistence_io": {"sizes": (10_000, 100_000), "ticks": 5_000, "repeats": 5},
        "log_format": {"sizes": (1_000, 10_000), "repeats": 9},
    },
}


# -- archive_writes -------------------------------------------------------------------------------


class _InlineArchive(SQLiteArchive):
    """An archive that commits each batch inside ``append``, on the caller's thread.

    The design the writer thread replaced. Only the hand-off of a batch to the writer is
    replaced: the connection and its pragmas, the INSERT and the transaction are SQLiteArchive's
    own. Its writer thread stays idle except for serving ``flush`` and ``close``. A failed commit
    raises out of ``append`` (no retries: the caller would have to handle it).
    """

    def append(self, columns: dict[str, np.ndarray]) -> None:
        n = len(columns["id"])
        if n == 0:
            return
        rows = list(zip(*[columns[name].tolist() for name in _NAMES], strict=True))
        self._commit(rows)
        self._count += n
        self._high_water = max(self._high_water, int(columns["id"].max()))
        self._committed(self._count)


def _spill_batches(spills: int, seed: int, n_types: int) -> list[dict[str, np.ndarray]]:
    """``spills`` batches of 1..20 rows with consecutive ids, shaped like ActiveMemory's spills."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, _MAX_SPILL_ROWS + 1, spills)
    total = int(sizes.sum())
    ticks = np.repeat(np.arange(1, spills + 1), sizes)
    cols = {
        "id": np.arange(total),
        "event_type": rng.integers(0, n_types, total),
        "kind": rng.integers(0, 2, total),
        "action": rng.integers(1, 4, total),
        "significance": rng.random(total),
        "weight": rng.random(total) * 0.1,
        "timestamp": ticks.astype(np.float64),
        "subjective_timestamp": ticks * 0.9,
        "tick": ticks,
        "feedback_energy": rng.normal(0.0, 1.0, total),
        "feedback_stability": rng.normal(0.0, 0.01, total),
        "feedback_integrity": rng.normal(0.0, 0.01, total),
    }
    cols = {name: np.ascontiguousarray(cols[name], dtype=dtype) for name, dtype in COLUMNS.items()}
    bounds = np.concatenate(([0], np.cumsum(sizes))).tolist()
    return [
        {name: col[a:b].copy() for name, col in cols.items()} for a, b in itertools.pairwise(bounds)
    ]


def _spin(ns: int) -> None:
    """Busy-wait ``ns`` nanoseconds holding the GIL (the rest of a tick, between two spills)."""
    end = perf_counter_ns() + ns
    while perf_counter_ns() < end:
        pass


def _stream(
    cls: type[SQLiteArchive],
    path: Path,
    batches: Sequence[dict[str, np.ndarray]],
    type_names: Sequence[str],
    tick_ns: int,
) -> dict[str, float]:
    """Append every batch (one per simulated tick), flush, close; the caller-side costs."""
    archive = cls(path, type_names=type_names)
    latencies = np.empty(len(batches), np.int64)
    try:
        append = archive.append
        start = perf_counter_ns()
        for i, batch in enumerate(batches):
            if tick_ns:
                _spin(tick_ns)
            t0 = perf_counter_ns()
            append(batch)
            latencies[i] = perf_counter_ns() - t0
        archive.flush()
        wall_ns = perf_counter_ns() - start
        rows = len(archive)
    finally:
        archive.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {
        "append_p50_us": float(np.percentile(latencies, 50)) / 1e3,
        "append_p99_us": float(np.percentile(latencies, 99)) / 1e3,
        "rows_per_s": rows / (wall_ns / 1e9),
    }


_ARCHIVE_METRICS = (
    ("append_p50_us", "µs", True),
    ("append_p99_us", "µs", True),
    ("rows_per_s", "rows/s", False),
)


def archive_writes(
    sizes: Sequence[int] = (2_000,),
    *,
    repeats: int = 5,
    seed: int = 0,
    tick_us: float = 20.0,
    workdir: str | Path | None = None,
) -> pl.DataFrame:
    """Asynchronous against inline archiving of a stream of spills; one table.

    Args:
        sizes: Spills per stream (one spill of 1..20 rows per simulated tick).
        repeats: Interleaved streams per variant and size (after one warm-up stream each).
        seed: Seed of the spilled rows (both variants append the same batches).
        tick_us: The rest of each tick, spun between two spills while holding the GIL; 0 makes
            the stream a back-to-back flood.
        workdir: Where the archive files go (default: a temporary directory). Mind that a tmpfs
            makes commits cheaper than on a disk.

    Metrics: ``append_p50_us`` and ``append_p99_us`` (per-spill ``append`` latency as the tick
    thread sees it) and ``rows_per_s`` (rows over the wall time of the whole stream, tick work
    and the final flush included). Baseline: inline; chosen: async.
    """
    from lifelab.life.events import TypeTable

    _check_sizes(sizes, 1)
    if not 0.0 <= tick_us <= 1e6:
        raise ConfigError(f"tick_us must be in [0, 1e6] µs, got {tick_us!r}")
    type_names = TypeTable().names
    tick_ns = int(tick_us * 1000)
    samples: list[Sample] = []
    files = itertools.count()
    with _workdir(workdir) as work:
        for size in sizes:
            batches = _spill_batches(int(size), seed, len(type_names))

            def run(cls: type[SQLiteArchive], batches: Any = batches) -> dict[str, float]:
                path = work / f"archive-{next(files)}.sqlite"
                return _stream(cls, path, batches, type_names, tick_ns)

            variants = {
                ARCHIVE_INLINE: lambda run=run: run(_InlineArchive),
                ARCHIVE_ASYNC: lambda run=run: run(SQLiteArchive),
            }
            samples += _samples(
                interleave(variants, repeats=repeats, warmup=_WARMUP), int(size), _ARCHIVE_METRICS
            )
    return ablation_table(
        "archive_writes", samples, baseline=ARCHIVE_INLINE, chosen=ARCHIVE_ASYNC, seed=seed
    )


# -- persistence_io -------------------------------------------------------------------------------


class _SyncIO:
    """Makes one Life's snapshot and log I/O synchronous: the design the writer threads replaced.

    Replaces two methods on that Life's writer instances only:

    * ``SnapshotWriter.submit`` by ``write_now``: prepare, encode, write, fsync, rename, fsync
      the directory and retention all run in the tick. ``prepare`` (also replaced, on the
      instance) flushes the archive, as the writer thread's does, and fsyncs the log file, as
      the log writer's ``snapshot`` flush does.
    * ``LogWriter.log`` by an inline write: the log writer's own encoder, then one unbuffered
      write per record to the same file in the same format (header line included), so the file
      reads back with :func:`~lifelab.store.logs.read_logs`. No rotation (runs here are short).

    The writer threads stay up, idle: flushes and ``close`` still go through them.
    """

    def __init__(self, store: Persistence) -> None:
        from lifelab.store.logs import HEADER_KIND, LOG_VERSION

        logs = store.logs
        snapshots = store.snapshots
        archive = store.archive
        self._header = {"kind": HEADER_KIND, "log_version": LOG_VERSION, "name": logs.name}
        # The writer's own encoder (records, non-finite floats, fallbacks): both variants pay
        # the same encoding; only where and when the bytes are written differs.
        self._encode = logs._encode
        self._file: Any = open(logs.path, "ab", buffering=0)  # noqa: SIM115 (closed in close())
        self._empty = self._file.tell() == 0

        def prepare() -> None:
            archive.flush()
            os.fsync(self._file.fileno())

        def submit(capture: Capture) -> bool:
            snapshots.write_now(capture)
            return True

        snapshots.prepare = prepare
        snapshots.submit = submit  # type: ignore[method-assign]
        logs.log = self.log  # type: ignore[method-assign]

    def log(self, kind: str, tick: int, **fields: Any) -> None:
        f = self._file
        if f is None:
            return  # after close, like a closed LogWriter (which counts it as dropped)
        if self._empty:
            header = {**self._header, "tick": tick}
            f.write(self._encode(header["kind"], None, header, None))
            self._empty = False
        f.write(self._encode(kind, tick, fields, None))

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()


def _filled_capture(entries: int, seed: int) -> Capture:
    """A snapshot of a Life holding ``entries`` active entries and an empty archive."""
    from lifelab.studies.io_bench import filled_life

    capture = filled_life(entries, seed).capture()
    if capture.canonical["counters"]["archive_size"]:
        raise ConfigError(
            f"entries must hold the filled life's first 100 ticks without a spill (>= ~200), "
            f"got {entries}"
        )
    return capture


@contextlib.contextmanager
def _io_life(
    capture: Capture,
    path: Path,
    *,
    sync: bool,
    snapshot_every: int,
    log_every: int,
) -> Iterator[Life]:
    """A Life in a new run directory at ``path``, resumed from ``capture``; closed on exit.

    Every tick is sampled by ``life.metrics``. With ``sync`` its snapshot and log I/O run in the
    tick (:class:`_SyncIO`).
    """
    from lifelab.life.loop import Life
    from lifelab.store.rundir import RunDir
    from lifelab.store.snapshot import write_snapshot

    run = RunDir.create(
        path, capture.extra["config"], life_id=capture.canonical["state"]["life_id"]
    )
    write_snapshot(run.snapshots, capture)
    life = Life.resume(path, snapshot_every=snapshot_every, log_every=log_every, metrics_every=1)
    sync_io = None
    try:
        assert life.persistence is not None
        sync_io = _SyncIO(life.persistence) if sync else None
        yield life
    finally:
        try:
            life.close()
        finally:
            if sync_io is not None:
                sync_io.close()


_IO_METRICS = (
    ("tick_p50_us", "µs", True),
    ("tick_p99_us", "µs", True),
    ("tick_max_us", "µs", True),
    ("tick_mean_us", "µs", True),
    ("io_mean_us", "µs", True),
)


def persistence_io(
    sizes: Sequence[int] = (5_000,),
    *,
    ticks: int = 1_500,
    snapshot_every: int = 500,
    log_every: int = 10,
    repeats: int = 3,
    seed: int = 0,
    workdir: str | Path | None = None,
) -> pl.DataFrame:
    """Asynchronous against synchronous snapshot and log I/O in a real Life run; one table.

    Each sample is a fresh run directory, resumed from the same filled snapshot, living
    ``ticks`` ticks at capacity (every tick adds entries and spills the weakest to the archive,
    which stays asynchronous in both variants).

    Args:
        sizes: Active entries (the memory capacity), >= ~200.
        ticks: Ticks per sample, every one timed by ``life.metrics``.
        snapshot_every: Ticks between snapshots.
        log_every: Ticks between tick-summary log records.
        repeats: Interleaved runs per variant and size (after one warm-up run each).
        seed: The organism's seed (both variants live the same ticks).
        workdir: Where the run directories go (default: a temporary directory). Mind that fsync
            on a tmpfs costs nothing.

    Metrics (from ``life.metrics``' histograms, ≤ 6 % bucket error except max and means):
    ``tick_p50_us``, ``tick_p99_us``, ``tick_max_us`` (a snapshot tick), ``tick_mean_us``
    (amortised: snapshots included) and ``io_mean_us`` (the tick's I/O stage, per tick).
    Baseline: sync; chosen: async.
    """
    _check_sizes(sizes, 1)
    for name, value, low in (
        ("ticks", ticks, 1),
        ("snapshot_every", snapshot_every, 1),
        ("log_every", log_every, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
    samples: list[Sample] = []
    runs = itertools.count()
    with _workdir(workdir) as work:
        for size in sizes:
            capture = _filled_capture(int(size), seed)

            def run(sync: bool, capture: Capture = capture) -> dict[str, float]:
                path = work / f"run-{next(runs)}"
                try:
                    with _io_life(
                        capture, path, sync=sync, snapshot_every=snapshot_every, log_every=log_every
                    ) as life:
                        life.metrics.reset()
                        life.run(ticks)
                        tick = life.metrics.tick
                        io = life.metrics.stages["io"]
                        return {
                            "tick_p50_us": tick.percentile(50) / 1e3,
                            "tick_p99_us": tick.percentile(99) / 1e3,
                            "tick_max_us": tick.max / 1e3,
                            "tick_mean_us": tick.mean / 1e3,
                            "io_mean_us": io.total / max(tick.count, 1) / 1e3,
                        }
                finally:
                    shutil.rmtree(path, ignore_errors=True)

            variants = {
                IO_SYNC: lambda run=run: run(True),
                IO_ASYNC: lambda run=run: run(False),
            }
            samples += _samples(
                interleave(variants, repeats=repeats, warmup=_WARMUP), int(size), _IO_METRICS
            )
    return ablation_table("persistence_io", samples, baseline=IO_SYNC, chosen=IO_ASYNC, seed=seed)


# -- log_format -----------------------------------------------------------------------------------

Codec = tuple[Callable[[Any], bytes], Callable[[bytes], Any]]


def _formats() -> dict[str, Codec]:
    """Each format's (record -> one line of bytes, line -> record)."""
    import msgspec
    import orjson

    # json configured as LogWriter's fallback encoder (lifelab.store.logs); its ``default`` is
    # never reached by these records (plain str, int and float values), which LogWriter itself
    # encodes with msgspec.
    stdlib = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
    orjson_dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    msgspec_encode = msgspec.json.Encoder().encode
    return {
        LOG_JSON: (lambda rec: (stdlib(rec) + "\n").encode(), json.loads),
        LOG_ORJSON: (lambda rec: orjson_dumps(rec, option=newline), orjson.loads),
        LOG_MSGSPEC: (lambda rec: msgspec_encode(rec) + b"\n", msgspec.json.Decoder().decode),
    }


def _log_records(path: Path, count: int, seed: int) -> list[dict[str, Any]]:
    """The first ``count`` records of a real log: a run with tick records every tick and
    decision logging on (``path`` is its run directory, left in place)."""
    from lifelab.config import LifeConfig
    from lifelab.life.loop import Life
    from lifelab.store.logs import read_logs

    config = LifeConfig(
        seed=seed, run_dir=str(path), log_every=1, log_decisions=True, snapshot_every=0
    )
    with Life(config) as life:
        life.run(count)
    records = read_logs(path / "logs")
    if len(records) < count:
        raise ConfigError(f"the log run wrote {len(records)} records, fewer than {count}")
    return list(records[:count])


def _check_formats(formats: Mapping[str, Codec], records: Sequence[dict[str, Any]]) -> None:
    """Every format's line decodes, with its own decoder and with json, to the record."""
    for name, (encode, decode) in formats.items():
        for rec in records:
            line = encode(rec)
            if decode(line) != rec or json.loads(line) != rec:
                raise ConfigError(f"{name} does not round-trip the log record {rec!r:.200}")


def _codec_sample(
    encode: Callable[[Any], bytes],
    decode: Callable[[bytes], Any],
    records: Sequence[dict[str, Any]],
    path: Path,
) -> dict[str, float]:
    n = len(records)
    t0 = perf_counter_ns()
    lines = [encode(rec) for rec in records]
    t1 = perf_counter_ns()
    for line in lines:
        decode(line)
    t2 = perf_counter_ns()
    # A log writer flush: encode what is buffered, join, one unbuffered write (no fsync).
    with open(path, "wb", buffering=0) as f:
        t3 = perf_counter_ns()
        f.write(b"".join([encode(rec) for rec in records]))
        t4 = perf_counter_ns()
    return {
        "encode_ns_per_record": (t1 - t0) / n,
        "decode_ns_per_record": (t2 - t1) / n,
        "flush_ns_per_record": (t4 - t3) / n,
        "bytes_per_record": sum(map(len, lines)) / n,
    }


_LOG_METRICS = (
    ("encode_ns_per_record", "ns", True),
    ("decode_ns_per_record", "ns", True),
    ("flush_ns_per_record", "ns", True),
    ("bytes_per_record", "B", True),
)


def log_format(
    sizes: Sequence[int] = (1_000,),
    *,
    repeats: int = 5,
    seed: int = 0,
    workdir: str | Path | None = None,
) -> pl.DataFrame:
    """stdlib json against orjson and msgspec.json on real log records; one table.

    Args:
        sizes: Records per sample (the first of one log: tick records and decisions, ~2:1).
        repeats: Interleaved samples per format and size (after one warm-up each).
        seed: Seed of the run whose log is read.
        workdir: Where that run and the flush file go (default: a temporary directory).

    Metrics: ``encode_ns_per_record`` (record -> line), ``decode_ns_per_record``,
    ``flush_ns_per_record`` (encode, join and one unbuffered write, as a log writer flush; the
    encode share of it is what a faster encoder can save) and ``bytes_per_record``. Every
    format is checked first: each line decodes (its own decoder and json) to the record.
    Baseline and chosen: json (stdlib), what lifelab's LogWriter uses.
    """
    _check_sizes(sizes, 1)
    formats = _formats()
    samples: list[Sample] = []
    with _workdir(workdir) as work:
        records = _log_records(work / "log-run", max(int(n) for n in sizes), seed)
        _check_formats(formats, records)
        for size in sizes:
            part = records[: int(size)]
            variants = {
                name: lambda enc=enc, dec=dec, part=part: _codec_sample(
                    enc, dec, part, work / "flush.jsonl"
                )
                for name, (enc, dec) in formats.items()
            }
            samples += _samples(
                interleave(variants, repeats=repeats, warmup=_WARMUP), int(size), _LOG_METRICS
            )
    return ablation_table("log_format", samples, baseline=LOG_JSON, chosen=LOG_MSGSPEC, seed=seed)


# -- all three ------------------------------------------------------------------------------------


def run_all(
    root: str | Path = DEFAULT_ROOT, *, scale: str = "quick", progress: bool = True
) -> list[Path]:
    """Run the three ablations and write each table to ``root/<ablation>.parquet``.

    ``scale``: "quick" (small sizes, about a minute), "full" (for a quiet machine) or "smoke"
    (tiny: checks that it runs). Scratch files go to a temporary directory inside ``root`` (the
    same disk as the results, not a possible tmpfs), removed at the end. Returns the written
    paths.
    """
    from tqdm.auto import tqdm

    runners: dict[str, Callable[..., pl.DataFrame]] = {
        "archive_writes": archive_writes,
        "persistence_io": persistence_io,
        "log_format": log_format,
    }
    if scale not in _SETTINGS:
        raise ConfigError(f"scale must be one of {sorted(_SETTINGS)}, got {scale!r}")
    settings = _SETTINGS[scale]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    with tempfile.TemporaryDirectory(prefix=".ablate-io-", dir=root) as work:
        for name in tqdm(list(QUESTIONS), desc="io ablations", disable=not progress):
            table = runners[name](**settings[name], workdir=Path(work) / name)
            paths.append(write_ablation(table, question=QUESTIONS[name], root=root))
    return paths


# -- helpers --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _workdir(workdir: str | Path | None) -> Iterator[Path]:
    """``workdir`` (created), or a temporary directory removed on exit."""
    if workdir is not None:
        path = Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="lifelab-ablate-io-") as tmp:
        yield Path(tmp)


def _check_sizes(sizes: Sequence[int], low: int) -> None:
    if isinstance(sizes, str | bytes) or not len(sizes):
        raise ConfigError(f"sizes must be a non-empty sequence of ints >= {low}, got {sizes!r}")
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < low:
            raise ConfigError(f"sizes must hold ints >= {low}, got {n!r}")


def _samples(
    runs: Mapping[str, list[Mapping[str, float]]],
    size: int,
    metrics: Sequence[tuple[str, str, bool]],
) -> list[Sample]:
    """interleave's per-variant lists of metric mappings -> Samples."""
    return [
        Sample(variant, metric, float(values[metric]), size, unit, lower)
        for variant, results in runs.items()
        for values in results
        for metric, unit, lower in metrics
    ]
