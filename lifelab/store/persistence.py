"""Persistence of one Life: its run directory's archive, snapshot writer and log writer.

The Life owns one :class:`Persistence` when it has a run directory. The tick thread only calls
:meth:`Persistence.due` (one comparison per tick) and hands over captures and log records; disk
work happens in the archive, snapshot and log writer threads.

Ordering that makes resume exact (DESIGN §2 invariants 3, 4, 7): before a snapshot file is
written, the snapshot thread waits until the archive has committed every row queued so far, so a
snapshot never covers archive rows that are not on disk. On resume, archive rows beyond the
snapshot's ``archive_size`` (spilled after the capture) are rolled back in one transaction: the
deterministic replay from the snapshot spills them again — no duplicates, no gaps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lifelab.config import LifeConfig
from lifelab.store.rundir import RunDir
from lifelab.store.snapshot import Capture, SnapshotWriter

__all__ = ["NEVER", "Persistence"]

NEVER = 2**63  # a tick that never comes


class Persistence:
    """Archive, snapshots and logs of one run directory."""

    def __init__(self, run: RunDir, config: LifeConfig, type_names: tuple[str, ...]) -> None:
        from lifelab.memory.sqlite_archive import SQLiteArchive
        from lifelab.store.logs import LogWriter

        self.run = run
        self.config = config
        self.archive = SQLiteArchive(run.archive, type_names=type_names)
        self.logs = LogWriter(
            run.logs, max_bytes=config.log_max_bytes, max_files=config.log_max_files
        )
        self.snapshots = SnapshotWriter(
            run.snapshots, keep=config.snapshot_keep, prepare=self._before_snapshot
        )
        self.next_due = NEVER
        self._closed = False

    @property
    def path(self) -> Path:
        return self.run.path

    def schedule(self, tick: int) -> None:
        """Compute the next tick at which a snapshot or a log record is due."""
        nxt = NEVER
        for every in (self.config.snapshot_every, self.config.log_every):
            if every:
                nxt = min(nxt, (tick // every + 1) * every)
        self.next_due = nxt

    def _before_snapshot(self) -> None:
        # Runs in the snapshot thread: the snapshot must not cover rows still queued.
        self.archive.flush()
        self.logs.flush("snapshot")

    def snapshot_async(self, capture: Capture) -> bool:
        return self.snapshots.submit(capture)

    def snapshot_now(self, capture: Capture) -> Path:
        return self.snapshots.write_now(capture)

    def log(self, kind: str, tick: int, **fields: Any) -> None:
        self.logs.log(kind, tick, **fields)

    def close(self, final: Capture | None) -> Path | None:
        """Final snapshot (if given), then flush and close every writer. Idempotent."""
        if self._closed:
            return None
        self._closed = True
        path = None
        try:
            if final is not None:
                path = self.snapshots.write_now(final)
        finally:
            self.snapshots.close()
            self.logs.close()
            self.archive.close()
        return path
