"""Run directories: exact resume, archive continuity, clean shutdown."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lifelab.config import LifeConfig
from lifelab.exceptions import LifeStateError
from lifelab.life import compiled
from lifelab.life.loop import Life
from lifelab.memory.active import ActiveMemory
from lifelab.store.inspect import inspect_run, search_run
from lifelab.store.rundir import RunDirError
from lifelab.store.snapshot import list_snapshots, read_snapshot


def _cfg(tmp_path, name="run", **kw):
    base = dict(seed=11, events_per_tick=3.0, memory_capacity=500, snapshot_every=1000)
    base.update(kw)
    return LifeConfig(run_dir=str(tmp_path / name), **base)


def test_straight_equals_stop_resume(tmp_path):
    """20 000 ticks straight and 10 000 + resume + 10 000 end with the same digest."""
    with Life(_cfg(tmp_path, "straight")) as straight:
        straight.run(20_000)
        expected = straight.digest()
        expected_archive = straight.archive.columns()
    first = Life(_cfg(tmp_path, "split"))
    first.run(10_000)
    first.close()
    second = Life.resume(tmp_path / "split")
    assert second.state.ticks == 10_000
    second.run(10_000)
    assert second.digest() == expected
    got_archive = second.archive.columns()
    second.close()
    assert np.array_equal(np.sort(got_archive["id"]), np.sort(expected_archive["id"]))


def test_resume_rolls_back_rows_spilled_after_the_snapshot(tmp_path):
    """Rows archived after the newest snapshot are rolled back, then written again by replay."""
    life = Life(_cfg(tmp_path, snapshot_every=500))
    life.run(1_250)  # snapshots at 500 and 1000; 250 ticks of spills after the last one
    life.persistence.snapshots.flush()
    life.archive.flush()
    # simulate a crash: drop the organism without close()
    life.persistence.logs.close()
    life.persistence.snapshots.close()
    life.archive.close()
    resumed = Life.resume(tmp_path / "run")
    assert resumed.state.ticks == 1_000
    assert resumed.entries_written == len(resumed.memory) + len(resumed.archive)
    resumed.run(250)
    ids = resumed.archive.columns()["id"]
    assert len(ids) == len(np.unique(ids))
    reference = Life(_cfg(tmp_path, "reference", snapshot_every=500))
    reference.run(1_250)
    assert resumed.digest() == reference.digest()
    resumed.close()
    reference.close()


def test_run_dir_layout_and_refusal_to_overwrite(tmp_path):
    """A run directory holds run.json, snapshots, archive, logs; a second create is refused."""
    life = Life(_cfg(tmp_path, log_every=100))
    life.run(2_000)
    final = life.close()
    run = tmp_path / "run"
    meta = json.loads((run / "run.json").read_text())
    assert meta["config"]["seed"] == 11
    assert final is not None and final.parent == run / "snapshots"
    assert [p.name for p in list_snapshots(run / "snapshots")][-1] == "snap-000000002000.lls"
    assert (run / "archive" / "archive.json").exists()
    lines = (run / "logs" / "life.jsonl").read_text().splitlines()
    assert any(json.loads(line)["kind"] == "tick" for line in lines)
    with pytest.raises(RunDirError, match="already holds a run"):
        Life(_cfg(tmp_path))


def test_inspect_and_search_read_only(tmp_path):
    """inspect reports the newest snapshot; search matches the archive; neither writes."""
    life = Life(_cfg(tmp_path))
    life.run(3_000)
    life.close()
    run = tmp_path / "run"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    info = inspect_run(run)
    assert info["ticks"] == 3_000
    assert info["digest"] == life.digest()
    assert info["entries_written"] == info["memory_active"] + info["archive_size"]
    assert info["corrupt_files"] == []
    found = search_run(
        run, event_type="shock", min_sig=0.2, limit=5, sort="significance", descending=True
    )
    assert found["count"] <= 5
    sigs = [r["significance"] for r in found["rows"]]
    assert sigs == sorted(sigs, reverse=True)
    assert all(r["event_type"] == "shock" and r["significance"] >= 0.2 for r in found["rows"])
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert {p: t for p, t in after.items() if p in before} == before


def test_resume_refuses_identity_changes(tmp_path):
    """Seed and clock belong to the run and cannot change on resume."""
    Life(_cfg(tmp_path)).close()
    with pytest.raises(LifeStateError, match="seed"):
        Life.resume(tmp_path / "run", seed=3)


def test_snapshot_needs_run_dir():
    """An organism without a run directory refuses snapshot() with a clear error."""
    with pytest.raises(LifeStateError, match="run directory"):
        Life(LifeConfig()).snapshot()


# -- snapshots that copy only what changed (issue 13) -------------------------------------------

needs_numba = pytest.mark.skipif(
    not compiled.numba_available(), reason="numba is not installed (pip install numba)"
)
ENGINES = [pytest.param("compiled", marks=needs_numba), "python"]
# Between two snapshots (every 40 ticks) ~70 entries are written, some spill at capacity, some
# decay out, and every weight decays: the snapshot thread's captures are mostly deltas.
_DELTA_RUN = dict(seed=21, events_per_tick=2.0, memory_capacity=400, min_weight=0.001, log_every=0)


def _crash(life):
    """Drop a life without close(), after its writers finished what they were given."""
    life.persistence.snapshots.flush()
    life.archive.flush()
    life.persistence.logs.close()
    life.persistence.snapshots.close()
    life.archive.close()


def _digests(config, until, every):
    """The uninterrupted run's digest at every ``every`` ticks up to ``until``."""
    straight = Life(config)
    out = {}
    for tick in range(every, until + 1, every):
        straight.run(every)
        out[tick] = straight.digest()
    return out


def _spy_captures(monkeypatch):
    """Record, for every ActiveMemory.capture(), whether it copied every row."""
    kinds = []
    capture = ActiveMemory.capture

    def spy(self):
        cap = capture(self)
        kinds.append(cap.whole)
        return cap

    monkeypatch.setattr(ActiveMemory, "capture", spy)
    return kinds


def _live_snapshot_by_snapshot(life, ticks, every):
    """Run in steps of one snapshot, each written before the next is taken (none skipped)."""
    for _ in range(ticks // every):
        life.run(every)
        life.persistence.snapshots.flush()


@pytest.mark.parametrize("engine", ENGINES)
def test_snapshots_in_a_row_and_after_resume_hold_the_straight_runs_state(
    tmp_path, monkeypatch, engine
):
    """Thirty snapshots in a row, with entries added, spilled and decayed between them, each
    hold the uninterrupted run's state at their tick; after a crash, resume, a snapshot at once
    (its base: the columns just loaded) and more of them all do too, and the run ends on the
    uninterrupted run's digest."""
    config = LifeConfig(engine=engine, **_DELTA_RUN)
    expected = _digests(config, 2_000, 40)
    kinds = _spy_captures(monkeypatch)
    life = Life(_cfg(tmp_path, engine=engine, snapshot_every=40, snapshot_keep=100, **_DELTA_RUN))
    _live_snapshot_by_snapshot(life, 1_200, 40)
    assert life.memory.spilled > 1_000
    _crash(life)
    snapshots = tmp_path / "run" / "snapshots"
    first = list_snapshots(snapshots)
    assert len(first) == 30
    # the first copies every row, and so does one with many new rows for the store's size
    assert kinds[0] and kinds.count(False) >= 10 and kinds.count(True) >= 5
    for path in first:
        capture = read_snapshot(path)
        assert capture.digest == expected[capture.ticks], path.name

    kinds.clear()
    resumed = Life.resume(tmp_path / "run")
    assert resumed.state.ticks == 1_200
    right_after = resumed.snapshot()
    assert read_snapshot(right_after).digest == expected[1_200]
    _live_snapshot_by_snapshot(resumed, 800, 40)
    assert resumed.digest() == expected[2_000]
    resumed.close()
    assert len(kinds) == 22 and not any(kinds)  # the loaded columns were the first base
    later = [p for p in list_snapshots(snapshots) if p not in first]
    assert len(later) == 20
    for path in later:
        capture = read_snapshot(path)
        assert capture.digest == expected[capture.ticks], path.name


@needs_numba
@pytest.mark.parametrize(("wrote", "resumes"), [("compiled", "python"), ("python", "compiled")])
def test_delta_snapshots_resume_in_the_other_engine(tmp_path, wrote, resumes):
    """Snapshots taken by one engine's delta captures (some skipped while the writer was busy)
    resume in the other, exactly."""
    expected = _digests(LifeConfig(engine=wrote, **_DELTA_RUN), 1_000, 40)
    life = Life(_cfg(tmp_path, engine=wrote, snapshot_every=40, **_DELTA_RUN))
    life.run(500)
    _crash(life)
    resumed = Life.resume(tmp_path / "run", engine=resumes)
    assert resumed.engine == resumes
    start = resumed.state.ticks
    assert start > 0 and resumed.digest() == expected[start]
    resumed.run(1_000 - start)
    assert resumed.digest() == expected[1_000]
    resumed.close()
