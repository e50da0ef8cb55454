"""Persistence of one Life: its run directory's archive, snapshot writer and log writer.

The Life owns one :class:`Persistence` when it has a run directory. The tick thread only calls
``next_due`` (one comparison per tick; :meth:`Persistence.schedule` moves it) and hands over
captures and log records; disk work happens in the archive, snapshot and log writer threads.

Ordering that makes resume exact (DESIGN §2 invariants 3, 4, 7): before a snapshot file is
written, the snapshot thread waits until the archive has made every row handed over so far
durable, so a snapshot never covers archive rows that are not on disk. On resume, archive rows
beyond the snapshot's ``archive_size`` (spilled after the capture) are rolled back
(:meth:`SegmentArchive.rollback`): the deterministic replay from the snapshot spills them again —
no duplicates, no gaps.

Faults (a full disk, I/O errors, permission denied) never stop the tick: each writer counts its
failures by kind and retries (see :class:`SnapshotWriter`,
:class:`~lifelab.memory.writer.QueuedArchive`, :class:`LogWriter`); the first failure of each
kind per writer becomes one ``io_error`` log record (``writer``, ``error``, ``message``), and
:meth:`Persistence.close` ends the log with one ``shutdown`` record carrying the fault counters.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifelab.config import LifeConfig
from lifelab.exceptions import fault_counts
from lifelab.memory.writer import QueuedArchive
from lifelab.store.logs import LogWriter
from lifelab.store.rundir import RunDir
from lifelab.store.snapshot import Capture, SnapshotWriter

__all__ = ["NEVER", "Persistence", "open_archive", "open_archive_readonly"]

NEVER = 2**63  # a tick that never comes


class Persistence:
    """Archive, snapshots and logs of one run directory."""

    def __init__(self, run: RunDir, config: LifeConfig, type_names: tuple[str, ...]) -> None:
        self.run = run
        self.config = config
        self.next_due = NEVER
        self.tick = 0  # the latest tick handed to schedule(): where a writer fault is logged
        self._closed = False
        self._reported: set[tuple[str, str]] = set()
        self._report_lock = threading.Lock()
        self.archive = open_archive(run, type_names, cache_mb=config.archive_cache_mb)
        self.archive.on_error = self._archive_error
        self.logs = LogWriter(
            run.logs, max_bytes=config.log_max_bytes, max_files=config.log_max_files
        )
        self.snapshots = SnapshotWriter(
            run.snapshots,
            keep=config.snapshot_keep,
            prepare=self._before_snapshot,
            on_error=self._snapshot_error,
        )

    @property
    def path(self) -> Path:
        return self.run.path

    def schedule(self, tick: int) -> None:
        """Compute the next tick at which a snapshot or a log record is due."""
        self.tick = tick
        nxt = NEVER
        for every in (self.config.snapshot_every, self.config.log_every):
            if every:
                nxt = min(nxt, (tick // every + 1) * every)
        self.next_due = nxt

    def _before_snapshot(self) -> None:
        # Runs in the snapshot thread: the snapshot must not cover rows still queued.
        self.archive.flush()
        self.logs.flush("snapshot")

    def _snapshot_error(self, kind: str, tick: int, exc: BaseException) -> None:
        self._report("snapshot", kind, tick, exc)

    def _archive_error(self, kind: str, exc: BaseException) -> None:
        self._report("archive", kind, self.tick, exc)

    def _report(self, writer: str, kind: str, tick: int, exc: BaseException) -> None:
        """One ``io_error`` record per writer and kind (called from the writer threads)."""
        with self._report_lock:
            if (writer, kind) in self._reported:
                return
            self._reported.add((writer, kind))
        self.logs.log("io_error", tick, writer=writer, error=kind, message=str(exc))
        self.logs.request_flush("error")

    def faults(self) -> dict[str, int]:
        """The writers' fault counters: totals, then one key per kind seen (counts, never reset),
        e.g. ``snapshot_errors_enospc``, ``archive_errors_eio``, ``log_errors_eacces``.

        The one place they are built: the ``shutdown`` log record carries them, and
        ``life.metrics_summary()`` shows them with :meth:`stats`.
        """
        log_stats = self.logs.stats()
        log_kinds: dict[str, int] = {}
        for label, n in log_stats["errors"].items():  # "op:KIND", e.g. "write:ENOSPC"
            kind = label.partition(":")[2] or label
            log_kinds[kind] = log_kinds.get(kind, 0) + n
        return {
            "snapshot_errors": self.snapshots.errors,
            "snapshots_failed": self.snapshots.failed,
            "archive_errors": self.archive.errors,
            "archive_backlog_rows": self.archive.backlog,
            "log_errors": sum(log_kinds.values()),
            "log_dropped": log_stats["dropped"],
            **fault_counts("snapshot_errors", self.snapshots.errors_by_kind),
            **fault_counts("archive_errors", self.archive.errors_by_kind),
            **fault_counts("log_errors", log_kinds),
        }

    def stats(self) -> dict[str, float]:
        """What the writers did (snapshots, log records and flushes, archive backpressure), then
        :meth:`faults`; units in the names."""
        snaps = self.snapshots
        log_stats = self.logs.stats()
        return {
            "snapshots_written": snaps.written,
            "snapshots_skipped": snaps.skipped,
            "log_records": log_stats["records_written"],
            "log_flushes": sum(log_stats["flushes"].values()),
            "log_buffered": log_stats["buffered"],
            "archive_backpressure_waits": self.archive.backpressure_waits,
            "archive_backpressure_ms": self.archive.backpressure_s * 1e3,
            **self.faults(),
        }

    def snapshot_async(self, capture: Capture) -> bool:
        return self.snapshots.submit(capture)

    def snapshot_now(self, capture: Capture) -> Path:
        return self.snapshots.write_now(capture)

    def log(self, kind: str, tick: int, **fields: Any) -> None:
        self.logs.log(kind, tick, **fields)

    def close(self, final: Capture | None) -> Path | None:
        """Final snapshot (if given), then flush and close every writer. Idempotent.

        The writers are closed even when the final snapshot fails (a full disk, or an archive
        that cannot commit the rows it would cover); the first error is raised afterwards, and
        the newest snapshot on disk stays the resume point. A ``shutdown`` log record (tick,
        snapshot file name or None, fault counters) is the last record of the run.
        """
        if self._closed:
            return None
        self._closed = True
        path = None
        errors: list[Exception] = []
        try:
            if final is not None:
                try:
                    path = self.snapshots.write_now(final)
                except Exception as exc:
                    errors.append(exc)
            self.snapshots.close()
            try:
                self.archive.close()
            except Exception as exc:
                errors.append(exc)
            if final is not None:
                self.log(
                    "shutdown",
                    final.ticks,
                    snapshot=None if path is None else path.name,
                    **self.faults(),
                )
        finally:
            self.logs.close()
            self.archive.close()  # no-op unless something above raised past it
        if errors:
            raise errors[0]
        return path


def open_archive(run: RunDir, type_names: Sequence[str], *, cache_mb: int = 2) -> QueuedArchive:
    """The run's archive for writing: segments, or the SQLite file of a version 1 run."""
    if run.version == 1:
        from lifelab.memory.sqlite_archive import SQLiteArchive

        return SQLiteArchive(run.archive, type_names=type_names, cache_mb=cache_mb)
    from lifelab.memory.segment_archive import SegmentArchive

    return SegmentArchive(run.archive, type_names=type_names)


def open_archive_readonly(run: RunDir) -> Any:
    """The run's archive for inspection (never writes, starts no thread)."""
    if run.version == 1:
        from lifelab.memory.sqlite_archive import SQLiteArchive

        return SQLiteArchive.open_readonly(run.archive)
    from lifelab.memory.segment_archive import SegmentArchive

    return SegmentArchive.open_readonly(run.archive)
