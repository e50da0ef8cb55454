"""Snapshot file format: round trip, atomicity, corruption and version checks."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from lifelab.config import LifeConfig
from lifelab.life.loop import Life
from lifelab.store.snapshot import (
    MAGIC,
    SNAPSHOT_VERSION,
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


def test_out_of_range_vital_is_refused():
    """A vital outside its range is refused before anything is restored."""
    _, cap = _capture(50)

    def edit(h):
        h["canonical"]["state"]["stability"] = 1.5

    with pytest.raises(SnapshotError, match="stability"):
        decode(_rewrite_header(encode(cap), edit))


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
