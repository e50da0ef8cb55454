"""Read-only views of a run directory: what ``lifelab inspect`` and ``lifelab search`` print.

Nothing here writes: snapshots are read and verified, the archive is opened read-only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from lifelab.store.persistence import open_archive_readonly
from lifelab.store.rundir import RunDir
from lifelab.store.snapshot import Capture, SnapshotError, list_snapshots, read_snapshot

__all__ = ["inspect_run", "search_run"]


def inspect_run(run_dir: str | Path) -> dict[str, Any]:
    """ticks, digest, snapshots, memory_active, archive_size, entries_written, corrupt_files.

    Every archive segment's CRC-32 is checked: a damaged segment is listed in ``corrupt_files``.
    """
    run = RunDir.open(run_dir)
    snapshots = list_snapshots(run.snapshots)
    corrupt: list[str] = []
    newest = None
    for path in reversed(snapshots):
        try:
            newest = read_snapshot(path)
            break
        except SnapshotError as exc:
            corrupt.append(str(path))
            warnings.warn(f"corrupt snapshot: {exc}", RuntimeWarning, stacklevel=2)
    archive_size = 0
    if run.archive.exists():
        try:
            archive = open_archive_readonly(run)
        except (OSError, ValueError):
            corrupt.append(str(run.archive))
        else:
            try:
                archive_size = archive.count()
                corrupt.extend(getattr(archive, "verify", list)())
            finally:
                archive.close()
    counters = _piece(newest, "counters")
    state = _piece(newest, "state")
    return {
        "run_dir": str(run.path),
        "ticks": newest.ticks if newest else 0,
        "digest": newest.digest if newest else None,
        "snapshots": [p.name for p in snapshots],
        "memory_active": len(newest.columns["id"]) if newest else 0,
        "archive_size": archive_size,
        "archive_size_at_snapshot": counters.get("archive_size", 0),
        "entries_written": counters.get("entries_written", 0),
        "energy": state.get("energy"),
        "integrity": state.get("integrity"),
        "stability": state.get("stability"),
        "corrupt_files": corrupt,
    }


def _piece(capture: Capture | None, name: str) -> dict[str, Any]:
    """A part of the canonical state as a dict (empty if missing). The file layer checks only
    the file: what the parts hold is validated when an organism restores them, not here."""
    part = capture.canonical.get(name) if capture is not None else None
    return part if isinstance(part, dict) else {}


def search_run(run_dir: str | Path, *, event_type: str | None = None, **query: Any) -> dict:
    """Archive rows matching the query, as JSON-ready dicts with the type's name."""
    run = RunDir.open(run_dir)
    archive = open_archive_readonly(run)
    try:
        names = list(archive.type_names)
        if event_type is not None and event_type not in names:
            raise ValueError(f"unknown event type {event_type!r}; this run knows {names}")
        cols = archive.search(
            event_type=None if event_type is None else names.index(event_type), **query
        )
    finally:
        archive.close()
    rows = []
    for i in range(len(cols["id"])):
        row = {name: col[i].item() for name, col in cols.items()}
        row["event_type"] = names[row["event_type"]]
        rows.append(row)
    return {"count": len(rows), "rows": rows}
