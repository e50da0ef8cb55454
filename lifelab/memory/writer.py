"""The writer thread every durable archive shares: a quiet hand-off, retries, backpressure.

The tick thread only appends the spilled column dict to a list (:meth:`QueuedArchive.append`);
a daemon writer thread takes what has gathered and hands it to the archive's
:meth:`~QueuedArchive._commit_pending`. Rows are never dropped: a failed commit is retried at once a
few times, then the rows wait in memory and are retried after a backoff (and at every flush) until
the fault clears. ``append`` blocks (backpressure) while ``backlog_max`` rows wait uncommitted, so
memory stays bounded.

Quiet by design (issue 13): the writer does not wake per append. It sleeps until rows arrive, then
gathers for ``coalesce_s`` (default 0.1 s) unless ``gather_rows`` rows or ``gather_batches``
batches are waiting first, or a flush asks. An organism at 100 Hz that spills about one row per
tick therefore wakes its archive writer about ten times a second instead of a hundred, and the tick
thread pays one list append and one uncontended lock per spill — no ``queue.Queue`` hand-off, no
notify unless the writer is asleep with nothing to do or a threshold is crossed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from lifelab.exceptions import ArchiveError, error_kind
from lifelab.memory.active import COLUMNS

__all__ = ["QueuedArchive"]

logger = logging.getLogger(__name__)

_NAMES = tuple(COLUMNS)
# Waits between attempts at one commit; after the last the rows stay queued in memory.
RETRY_DELAYS_S = (0.01, 0.05, 0.2, 0.5)
# Then one attempt per backoff, doubling between these bounds (a flush or close tries at once).
BACKOFF_S = (0.5, 5.0)


class QueuedArchive:
    """Base of the durable archives: the append side, the writer thread and its fault handling.

    Subclasses open their files, then call :meth:`_start` with the committed row count and high
    water mark; they implement :meth:`_commit_pending` (commit ``self._unwritten`` oldest first,
    removing what is committed and calling :meth:`_committed`) and :meth:`_close_files`.

    Faults: failed attempts are counted in ``errors`` and by kind in ``errors_by_kind``
    (``ENOSPC``, ``EIO``, ``EACCES``…); each kind is logged once and passed once to ``on_error``
    (``(kind, exc)``, called in the writer thread). ``backlog`` rows wait uncommitted;
    ``backpressure_waits`` and ``backpressure_s`` count how often and how long ``append`` waited;
    ``wakeups`` counts the writer's wake-ups (how quiet it is).
    """

    path: Path
    readonly: bool

    def _init_writer(
        self,
        *,
        coalesce_s: float,
        gather_rows: int,
        gather_batches: int,
        backlog_max: int,
    ) -> None:
        for name, value in (
            ("gather_rows", gather_rows),
            ("gather_batches", gather_batches),
            ("backlog_max", backlog_max),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not coalesce_s >= 0:
            raise ValueError(f"coalesce_s must be >= 0, got {coalesce_s!r}")
        self.backlog_max = backlog_max
        self.errors = 0  # failed commit attempts in the writer thread
        self.errors_by_kind: Counter[str] = Counter()
        self.last_error: BaseException | None = None
        self.on_error: Any = None  # (kind, exc) -> None, once per kind, in the writer thread
        self.backpressure_waits = 0
        self.backpressure_s = 0.0
        self.wakeups = 0
        self._coalesce_s = float(coalesce_s)
        self._gather_rows = gather_rows
        self._gather_batches = gather_batches
        self._failing = False  # the last attempt failed: rows wait for the backoff
        self._backoff = 0.0
        self._retry_at = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._cv = threading.Condition()
        # Guarded by _cv: batches handed over and not yet taken by the writer, their rows, when
        # the first of them arrived, the flush requests, and whether the writer sleeps idle.
        self._inbox: list[dict[str, np.ndarray]] = []
        self._inbox_rows = 0
        self._inbox_since = 0.0
        self._idle = False
        self._stop = False
        self._pressed = False  # append waits on backpressure: make rows durable now
        self._owed_durable = False  # a durable commit failed: the retries must be durable too
        self._urgent = 0  # flush requests not yet served (each one a sequence number)
        self._served = 0
        self._unwritten: list[dict[str, np.ndarray]] = []  # taken by the writer, not committed
        self._count = 0
        self._on_disk = 0
        self._high_water = -1

    def _start(self, committed: int, high_water: int) -> None:
        self._count = self._on_disk = committed
        self._high_water = high_water
        if not self.readonly:
            self._thread = threading.Thread(
                target=self._run, name=f"lifelab-{type(self).__name__}-writer", daemon=True
            )
            self._thread.start()

    # -- writing (tick thread) --------------------------------------------------------------------

    def append(self, columns: dict[str, np.ndarray]) -> None:
        """Hand over a batch of spilled rows (a dict of COLUMNS arrays, not mutated afterwards).

        Never drops rows; blocks while ``backlog_max`` rows wait. ``len`` counts them at once.
        """
        if self._closed or self._thread is None:
            raise ArchiveError(f"{self.path}: cannot append, the archive is closed or read-only")
        ids = columns["id"]
        n = len(ids)
        if n == 0:
            return
        # Checked here, not in the writer, where a bad batch could only fail over and over.
        if columns.keys() != COLUMNS.keys() or any(len(columns[k]) != n for k in _NAMES):
            raise ValueError(
                f"append needs equal-length arrays for exactly {list(_NAMES)}, got "
                f"{ {k: len(v) for k, v in columns.items()} }"
            )
        top = int(ids.max())
        if self._count - self._on_disk >= self.backlog_max:
            self._wait_for_room()
        with self._cv:
            inbox = self._inbox
            if not inbox:
                self._inbox_since = time.monotonic()
            inbox.append(columns)
            self._inbox_rows += n
            # NOTE: quiet hand-off: wake the writer only when it sleeps with nothing to do (it
            # then gathers for coalesce_s by itself) or when a size threshold is crossed.
            if (
                self._idle
                or self._inbox_rows >= self._gather_rows
                or len(inbox) >= self._gather_batches
            ):
                self._cv.notify_all()
        self._count += n
        if top > self._high_water:
            self._high_water = top

    def _wait_for_room(self) -> None:
        """Backpressure: wait until the writer commits below ``backlog_max`` (never drop)."""
        t0 = time.perf_counter()
        self.backpressure_waits += 1
        thread = self._thread
        with self._cv:
            while self._count - self._on_disk >= self.backlog_max and thread is not None:
                if not thread.is_alive():
                    break
                self._pressed = True  # the writer may be gathering: let it commit now
                self._cv.notify_all()
                self._cv.wait(0.5)
        self.backpressure_s += time.perf_counter() - t0

    @property
    def backlog(self) -> int:
        """Rows appended but not yet durable (handed over, buffered, or waiting after a fault)."""
        return 0 if self.readonly else self._count - self._on_disk

    def flush(self, timeout: float | None = None) -> None:
        """Block until every row appended so far is durable (survives a kill -9).

        Raises:
            ArchiveError: Rows could not be committed after retries (they stay in memory and are
                retried by the next flush), or ``timeout`` seconds passed first.
        """
        if self._thread is None:
            return
        rows = self._count
        with self._cv:
            if self._closed and not self._thread.is_alive():
                ticket = self._served
            else:
                self._urgent += 1
                ticket = self._urgent
                self._cv.notify_all()
            if not self._cv.wait_for(lambda: self._served >= ticket, timeout):
                raise ArchiveError(
                    f"{self.path}: flush timed out after {timeout} s with "
                    f"{self._count - self._on_disk} rows not yet durable"
                )
        if self._on_disk < rows:
            raise self._stuck_error()

    def close(self) -> None:
        """Commit what is waiting, stop the writer and close the files. Safe to call twice.

        Raises:
            ArchiveError: Some rows could not be committed (the thread is stopped regardless).
        """
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            with self._cv:
                self._stop = True
                self._cv.notify_all()
            self._thread.join()
        self._close_files()
        if self._on_disk < self._count:
            raise self._stuck_error(closing=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        """Rows appended so far, durable or not (read-only: rows in the files)."""
        if self.readonly:
            return self.count()
        return self._count

    @property
    def high_water(self) -> int:
        """The largest id appended so far, -1 when there is none."""
        return self._high_water

    def count(self) -> int:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    # -- the writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        """Gather what was handed over, commit it; sleep while there is nothing to do."""
        cv = self._cv
        while True:
            with cv:
                while True:
                    if self._stop or self._urgent > self._served or self._pressed:
                        break
                    if self._inbox:
                        due = self._inbox_since + self._coalesce_s
                        if (
                            self._inbox_rows >= self._gather_rows
                            or len(self._inbox) >= self._gather_batches
                            or time.monotonic() >= due
                        ):
                            break
                        cv.wait(max(0.0, due - time.monotonic()))
                    elif self._unwritten or self._owed_durable:  # failing: retry even if idle
                        if time.monotonic() >= self._retry_at:
                            break
                        cv.wait(max(0.0, self._retry_at - time.monotonic()))
                    else:
                        self._idle = True
                        cv.wait()
                        self._idle = False
                self.wakeups += 1
                batches, self._inbox, self._inbox_rows = self._inbox, [], 0
                ticket = self._urgent
                stop = self._stop
                pressed, self._pressed = self._pressed, False
            urgent = stop or ticket > self._served
            durable = urgent or pressed
            try:
                self._write(batches, urgent=urgent, durable=durable)
            finally:
                with cv:
                    if urgent:
                        self._served = max(self._served, ticket)
                    cv.notify_all()
            if stop:
                with cv:
                    if not self._inbox:
                        return

    def _write(
        self,
        batches: list[dict[str, np.ndarray]],
        *,
        urgent: bool = False,
        durable: bool = False,
    ) -> None:
        """Commit earlier failed batches and these, in order; on repeated failure keep them all.

        Healthy, or asked by flush/close (``urgent``): a few attempts in a row. Failing: new
        batches only join the backlog, and one attempt is made when the backoff runs out.
        ``durable`` (a flush, close or backpressure): every row must reach the disk.
        """
        pending = self._unwritten
        pending.extend(batches)
        durable = durable or urgent or self._owed_durable
        if not pending and not durable:
            return
        if self._failing and not urgent and time.monotonic() < self._retry_at:
            return
        schedule = RETRY_DELAYS_S if urgent or not self._failing else ()
        for delay in (*schedule, None):
            try:
                self._commit_pending(durable=durable)
            except Exception as exc:  # kept, counted and raised later by flush/close
                self._record_error(exc)
                if delay is None:
                    break
                time.sleep(delay)
            else:
                self._owed_durable = False
                self._failing = False
                self._backoff = 0.0
                return
        self._failing = True
        self._owed_durable = durable
        low, high = BACKOFF_S
        self._backoff = min(max(2.0 * self._backoff, low), high)
        self._retry_at = time.monotonic() + self._backoff

    def _commit_pending(self, *, durable: bool) -> None:  # pragma: no cover - abstract
        """Commit ``self._unwritten`` oldest first; ``durable``: everything must be on disk."""
        raise NotImplementedError

    def _close_files(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _committed(self, on_disk: int) -> None:
        """Record that the first ``on_disk`` rows appended are durable (writer thread)."""
        with self._cv:
            self._on_disk = on_disk
            self._cv.notify_all()

    def _record_error(self, exc: BaseException) -> None:
        kind = error_kind(exc)
        first = kind not in self.errors_by_kind
        self.errors += 1
        self.errors_by_kind[kind] += 1
        self.last_error = exc
        if not first:
            return
        logger.warning(
            "archive %s: commit failed (%s): %r; the rows stay queued and are retried "
            "(reported once per kind)",
            self.path,
            kind,
            exc,
        )
        if self.on_error is not None:
            try:
                self.on_error(kind, exc)
            except Exception:  # reporting must not stop the writer
                logger.exception("archive error callback failed")

    def _stuck_error(self, *, closing: bool = False) -> ArchiveError:
        rows = self._count - self._on_disk
        then = (
            "The archive is closed without them; no snapshot covers uncommitted rows, so a "
            "resume from the newest snapshot writes them again."
            if closing
            else "They are kept in memory and retried by the next flush."
        )
        err = ArchiveError(
            f"{self.path}: {rows} rows could not be committed after "
            f"{len(RETRY_DELAYS_S) + 1} attempts; last error: {self.last_error!r}"
            f"{self._error_hint()}. {then}"
        )
        err.__cause__ = self.last_error  # so error_kind() names the fault (ENOSPC, EIO, ...)
        return err

    def _error_hint(self) -> str:
        return ""
