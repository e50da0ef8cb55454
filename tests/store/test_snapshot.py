"""Snapshot file format: round trip, atomicity, corruption and version checks."""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.config import LifeConfig
from lifelab.life.loop import Life
from lifelab.life.state import SelfState
from lifelab.memory.active import COLUMNS, KIND_EVENT, ActiveMemory, _rows_of
from lifelab.store.digest import digest_of
from lifelab.store.snapshot import (
    MAGIC,
    SNAPSHOT_VERSION,
    Capture,
    SnapshotError,
    SnapshotWriter,
    decode,
    encode,
    list_snapshots,
    load_newest,
    read_snapshot,
    write_snapshot,
)


def _capture(ticks: int = 300):
    life = Life(LifeConfig(seed=5, events_per_tick=3))
    life.run(ticks)
    return life, life.capture()


def test_round_trip_keeps_digest_and_columns():
    """A capture decodes to the same canonical state, columns and digest."""
    life, cap = _capture()
    back = decode(encode(cap))
    assert back.ticks == cap.ticks
    assert back.canonical == cap.canonical
    for name, col in cap.columns.items():
        assert np.array_equal(back.columns[name], col)
        assert back.columns[name].dtype == col.dtype
    assert back.digest == life.digest()


def test_truncated_file_is_refused(tmp_path):
    """Every proper prefix of a snapshot fails the checksum or the length checks."""
    _, cap = _capture(100)
    data = encode(cap)
    for cut in (0, 7, 12, len(data) // 2, len(data) - 1):
        with pytest.raises(SnapshotError):
            decode(data[:cut])


def test_bit_flip_is_refused():
    """A single flipped bit anywhere is caught by the trailer checksum."""
    _, cap = _capture(100)
    data = bytearray(encode(cap))
    rng = np.random.default_rng(1)
    for pos in rng.integers(0, len(data), 20).tolist():
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        with pytest.raises(SnapshotError):
            decode(bytes(flipped))


def _rewrite_header(data: bytes, edit) -> bytes:
    """Re-encode a snapshot after editing its header (and fixing the checksum)."""
    import hashlib
    import json

    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start : start + n])
    edit(header)
    head = json.dumps(header, sort_keys=True).encode()
    body = MAGIC + struct.pack("<I", len(head)) + head + data[start + n : -32]
    return body + hashlib.blake2b(body, digest_size=32).digest()


def test_future_version_is_refused_by_name():
    """A newer schema version is refused with a message that names both versions."""
    _, cap = _capture(50)
    data = _rewrite_header(encode(cap), lambda h: h.update(schema_version=SNAPSHOT_VERSION + 1))
    with pytest.raises(SnapshotError, match="newer"):
        decode(data)


def test_hand_edited_state_fails_digest():
    """Editing a value and fixing the checksum still fails: the digest is recomputed."""
    _, cap = _capture(50)

    def edit(h):
        h["canonical"]["state"]["energy"] = 12.5

    with pytest.raises(SnapshotError, match="digest"):
        decode(_rewrite_header(encode(cap), edit))


def test_out_of_range_vital_is_refused_by_its_owner():
    """A vital outside its range, digest recomputed, is an intact file; the state that owns the
    vital refuses it before anything is restored."""
    life, cap = _capture(50)

    def edit(h):
        h["canonical"]["state"]["stability"] = 1.5
        h["digest"] = digest_of(h["canonical"], cap.columns)

    back = decode(_rewrite_header(encode(cap), edit))
    with pytest.raises(SnapshotError, match=re.escape("state.stability = 1.5 is invalid")):
        SelfState.from_snapshot(back.canonical["state"], n_types=len(life.types), recent_size=8)


def test_load_newest_skips_a_capture_its_restore_refuses(tmp_path):
    """A file that reads intact but whose content the restore refuses is skipped like a corrupt
    one, named in the warning, and the next older snapshot is restored instead."""
    life = Life(LifeConfig(seed=3))
    life.run(10)
    write_snapshot(tmp_path, life.capture())
    life.run(10)
    newest = write_snapshot(tmp_path, life.capture())
    tried = []

    def restore(capture):
        tried.append(capture.ticks)
        if capture.ticks == 20:
            raise SnapshotError("state.energy = -1 is invalid")

    with pytest.warns(RuntimeWarning, match=re.escape("snap-000000000020.lls: state.energy")):
        cap, corrupt = load_newest(tmp_path, restore)
    assert cap is not None and cap.ticks == 10
    assert corrupt == [newest] and tried == [20, 10]


def test_write_is_atomic_and_retention_keeps_newest(tmp_path):
    """The writer leaves no temp files and keeps only the newest K snapshots."""
    life = Life(LifeConfig(seed=2))
    writer = SnapshotWriter(tmp_path, keep=2)
    try:
        for _ in range(4):
            life.run(25)
            assert writer.submit(life.capture())
            writer.flush()
    finally:
        writer.close()
    names = [p.name for p in list_snapshots(tmp_path)]
    assert names == ["snap-000000000075.lls", "snap-000000000100.lls"]
    assert not list(tmp_path.glob("*.tmp"))
    assert read_snapshot(tmp_path / names[-1]).ticks == 100


def test_load_newest_skips_corrupt_with_warning(tmp_path):
    """A corrupt newest snapshot is skipped with a warning and the previous one is used."""
    life = Life(LifeConfig(seed=3))
    life.run(10)
    write_snapshot(tmp_path, life.capture())
    life.run(10)
    newest = write_snapshot(tmp_path, life.capture())
    newest.write_bytes(newest.read_bytes()[:-5])
    with pytest.warns(RuntimeWarning, match="snap-000000000020"):
        cap, corrupt = load_newest(tmp_path)
    assert cap is not None and cap.ticks == 10
    assert corrupt == [newest]


# -- captures that copy only what changed (issue 13) ------------------------------------------

GOLDEN_SNAPSHOTS = Path(__file__).parent / "fixtures" / "run_v1" / "snapshots"


def _store(capacity: int) -> ActiveMemory:
    return ActiveMemory(capacity, lambda columns: None, min_weight=0.0)


def _assert_same_columns(got, expected):
    assert list(got) == list(COLUMNS)
    for name, col in expected.items():
        assert got[name].dtype == col.dtype, name
        assert np.array_equal(got[name], col), name
        assert not got[name].flags.writeable, name


operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 40)),
        st.tuples(st.just("feedback"), st.integers(1, 3)),
        st.tuples(st.just("decay"), st.floats(0.0, 0.95)),
        st.tuples(st.just("enforce"), st.integers(0, 1)),
        st.tuples(st.just("capture"), st.integers(0, 1)),
        st.tuples(st.just("assemble"), st.integers(0, 7)),
        st.tuples(st.just("drop"), st.integers(0, 7)),
        st.tuples(st.just("reload"), st.booleans()),
    ),
    max_size=60,
)


@given(
    ops=operations,
    capacity=st.integers(1, 300),
    share=st.sampled_from([0.0, 0.25, math.inf]),
    seed=st.integers(0, 2**32 - 1),
)
def test_captures_equal_the_export_of_their_moment(ops, capacity, share, seed):
    """Adds, spills that fill holes from the end, decays, reloads between captures that are
    assembled late, out of order or never: each equals export() at its capture, exactly."""
    rng = np.random.default_rng(seed)
    mem = _store(capacity)
    mem.delta_max_new_share = share
    pending = []
    now = 0.0
    for op, arg in ops:
        now += 1.0
        if op == "add":
            sigs = rng.random(arg)
            actions = rng.integers(0, 4, arg).astype(np.int8)
            mem.add_batch(rng.integers(0, 22, arg), KIND_EVENT, actions, sigs, now, 2 * now, 1)
        elif op == "feedback":
            for _ in range(arg):
                mem.add(
                    int(rng.integers(0, 22)), 1, 2, float(rng.random()), now, now, 2, (0.5,) * 3
                )
        elif op == "decay":  # rewrites every weight, spills those under the floor
            mem.min_weight = arg
            mem.decay(now * 20_000.0)
            mem.min_weight = 0.0
        elif op == "enforce":
            mem.capacity = max(1, capacity // (1 + 3 * arg))
            mem.enforce_capacity()
            mem.capacity = capacity
        elif op == "capture":
            pending.append((mem.capture(), mem.export()))
        elif op == "reload":  # what a resume does: new contents, maybe with a base
            mem.load(mem.export(), mem.next_id, mem.spilled, as_base=arg)
        elif pending:
            cap, expected = pending.pop(arg % len(pending))
            if op == "assemble":
                _assert_same_columns(cap.resolve(), expected)
    for cap, expected in pending:
        _assert_same_columns(cap.resolve(), expected)


def test_a_capture_is_a_delta_once_an_earlier_one_was_assembled():
    """The first capture copies every row; once it is assembled (even if then dropped, as the
    snapshot writer does), the next copies what changed; a capture left unassembled is not a
    base; load() starts over unless it keeps the loaded columns as the base."""
    mem = _store(1_000)
    rng = np.random.default_rng(1)
    for _ in range(10):
        mem.add_batch(rng.integers(0, 22, 64), KIND_EVENT, 2, rng.random(64), 1.0, 1.0, 1)
    first = mem.capture()
    assert first.whole
    assert mem.capture().whole  # the first is not assembled yet
    first.resolve()
    del first
    second = mem.capture()
    assert not second.whole and second.rows == len(mem)
    mem.load(mem.export(), mem.next_id, mem.spilled)
    assert mem.capture().whole
    mem.load(mem.export(), mem.next_id, mem.spilled, as_base=True)
    assert not mem.capture().whole
    mem.add_batch(rng.integers(0, 22, 300), KIND_EVENT, 2, rng.random(300), 2.0, 2.0, 2)
    assert mem.capture().whole  # more than a quarter of the rows are new: whole is cheaper


def test_assembly_finds_moved_rows_in_wide_id_ranges():
    """Old entries that a spill moved are found by id, by a table or a sorted search."""
    ids = np.array([5, 900_000, 17, 42, 3_000_000], np.int64)
    assert _rows_of(ids, np.array([42, 5, 3_000_000])).tolist() == [3, 0, 4]
    narrow = np.arange(100, 200, dtype=np.int64)[::-1].copy()
    assert _rows_of(narrow, np.array([199, 100, 150])).tolist() == [0, 99, 49]
    for haystack, missing in ((ids, 6), (ids, 4_000_000), (narrow, 99), (narrow, 250)):
        with pytest.raises(RuntimeError, match="missing"):
            _rows_of(haystack, np.array([missing]))


@pytest.mark.parametrize("engine", ["compiled", "python"])
@pytest.mark.parametrize(
    ("min_weight", "share"),
    [(0.0, None), (0.005, math.inf)],
    ids=["spills-at-capacity", "decay-spills-forced-deltas"],
)
def test_snapshot_bytes_equal_the_full_copy_capture(engine, min_weight, share):
    """Several captures in a row, with spills, decay and new entries between them: each encodes
    to the bytes a full copy of the same state (the old capture path) encodes to."""
    config = LifeConfig(seed=8, events_per_tick=2, memory_capacity=800, min_weight=min_weight)
    life = Life(config.replace(engine=engine))
    if share is not None:
        life.memory.delta_max_new_share = share
    kinds = []
    for ticks in (600, 40, 40, 1, 0, 60, 400, 30):
        life.run(ticks)
        cap = life.capture()
        kinds.append(cap.memory.whole)
        full = Capture(cap.ticks, cap.canonical, life.memory.export(), cap.extra)
        assert encode(cap) == encode(full)
    assert life.memory.spilled > 0
    assert kinds[0] and kinds.count(False) >= 5  # the first copied every row, most did not


def test_golden_snapshots_decode_and_reencode_byte_for_byte():
    """Snapshot files of the first format still read, and encode back to the same bytes."""
    paths = list_snapshots(GOLDEN_SNAPSHOTS)
    assert paths
    for path in paths:
        data = path.read_bytes()
        assert encode(decode(data)) == data


def test_writer_counts_a_capture_that_cannot_be_assembled(tmp_path):
    """A capture whose columns cannot be assembled is counted as failed, never written, and
    the writer goes on with the next one."""
    life = Life(LifeConfig(seed=4, events_per_tick=3, memory_capacity=400))
    life.run(200)
    life.capture().columns  # noqa: B018 - assembled: the next capture is a delta
    life.run(10)
    broken = life.capture()
    assert not broken.memory.whole
    ids = broken.memory._ids
    ids[np.flatnonzero(ids < broken.memory._base.next_id)[0]] = -5  # an id no base holds
    writer = SnapshotWriter(tmp_path)
    try:
        assert writer.submit(broken)
        writer.flush()
        assert (writer.failed, writer.written) == (1, 0)
        assert "RuntimeError" in writer.last_error
        assert writer.submit(life.capture())
        writer.flush()
        assert writer.written == 1
    finally:
        writer.close()
    assert [p.name for p in list_snapshots(tmp_path)] == ["snap-000000000210.lls"]
