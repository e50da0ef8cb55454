"""``bench memory``: keys, honest sizes, archive contents; never wall-clock values (DESIGN §3)."""

import json
import math

import numpy as np
import pytest

from lifelab.cli import build_parser, main
from lifelab.lab.bench_memory import (
    ARCHIVE_KEYS,
    SeededHistory,
    SpillSink,
    bench_memory,
    empty_memory,
    fill_memory,
    progress_total,
)
from lifelab.memory.active import COLUMNS

DESIGN_KEYS = (
    "entries",
    "bytes_per_entry",
    "append_ns",
    "decay_ms",
    "spill_ms",
    "archive_entries",
    "archive_search_p50_ms",
    "archive_search_p99_ms",
)
NOT_MEASURES = {"seed", "spill_method"}
SLOT_BYTES = sum(dtype.itemsize for dtype in COLUMNS.values())


@pytest.fixture(scope="module")
def with_archive():
    return bench_memory(entries=5_000, searches=20)


@pytest.fixture(scope="module")
def without_archive():
    return bench_memory(entries=8_192, archive=False)


def test_every_key_is_reported_positive_and_finite(with_archive):
    """The DESIGN §5 keys and the extras are present; every measure is a positive finite number."""
    assert set(DESIGN_KEYS) <= with_archive.keys()
    assert set(ARCHIVE_KEYS) <= with_archive.keys()
    for key, value in with_archive.items():
        if key in NOT_MEASURES:
            continue
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value) and value > 0, (key, value)
    assert with_archive["spill_method"] == "enforce_capacity"


def test_bytes_per_entry_is_the_column_itemsizes_when_the_store_is_exactly_full(without_archive):
    """A store whose allocation is exactly its N entries costs the 64 bytes of COLUMNS each."""
    assert SLOT_BYTES == 64
    assert without_archive["allocated_entries"] == 8_192
    assert without_archive["bytes_per_entry"] == SLOT_BYTES
    assert without_archive["bytes_per_slot"] == SLOT_BYTES
    assert without_archive["traced_bytes_per_entry"] >= SLOT_BYTES


def test_bytes_per_entry_counts_the_slots_growth_allocated(with_archive):
    """At 5 000 entries the store doubled 1 024→4 096, then stopped at capacity + 1 024 slots."""
    assert with_archive["bytes_per_slot"] == SLOT_BYTES
    assert with_archive["allocated_entries"] == 5_000 + 1_024
    assert with_archive["allocated_bytes"] == 6_024 * SLOT_BYTES
    assert with_archive["bytes_per_entry"] == 6_024 * SLOT_BYTES / 5_000


def test_archive_holds_every_entry(with_archive):
    """The archive ends with the spilled tenth plus the rest: exactly the N entries written."""
    assert with_archive["archive_entries"] == with_archive["entries"] == 5_000


def test_both_spills_move_a_tenth(with_archive):
    """enforce_capacity (N to 0.9 N) and the 10 % decay pass each spill N // 10 entries."""
    assert with_archive["spill_entries"] == 500
    assert with_archive["decay_spill_entries"] == 500


def test_snapshot_capture_is_measured_after_a_known_number_of_new_entries(
    with_archive, without_archive
):
    """capture_ms (tick thread), capture_assemble_ms (snapshot thread) and capture_whole_ms
    (no previous capture) are reported, with the entries written between two captures:
    1 024, or an eighth of a smaller store."""
    for result in (with_archive, without_archive):
        assert {"capture_ms", "capture_assemble_ms", "capture_whole_ms"} <= result.keys()
    assert with_archive["capture_new_entries"] == 5_000 // 8
    assert without_archive["capture_new_entries"] == 1_024


def test_without_archive_the_archive_keys_are_none(with_archive, without_archive):
    """Skipping the archive keeps the same keys and sets exactly the archive ones to None."""
    assert without_archive.keys() == with_archive.keys()
    nones = {key for key, value in without_archive.items() if value is None}
    assert nones == set(ARCHIVE_KEYS)


def test_progress_counts_add_up_to_the_total():
    """The progress hook receives progress_total(entries, archive) units in all."""
    seen = []
    bench_memory(entries=300, searches=2, progress=seen.append)
    assert all(step >= 0 for step in seen)
    assert sum(seen) == progress_total(300, True) == 600
    seen.clear()
    bench_memory(entries=300, archive=False, progress=seen.append)
    assert sum(seen) == progress_total(300, False) == 300


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"entries": 99}, "entries"),
        ({"entries": True}, "entries"),
        ({"entries": 1e6}, "entries"),
        ({"searches": 0}, "searches"),
    ],
)
def test_bad_arguments_are_refused_with_the_field_name(kwargs, field):
    """Too few entries or searches, or a non-int, raise ValueError naming the field."""
    with pytest.raises(ValueError, match=field):
        bench_memory(archive=False, **kwargs)


def test_command_line_arguments_parse_and_run(capsys):
    """The CLI options parse with their defaults, refuse bad values and run the bench."""
    defaults = build_parser().parse_args(["bench", "memory"])
    assert (defaults.entries, defaults.seed, defaults.searches, defaults.archive) == (
        1_000_000,
        0,
        200,
        True,
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "memory", "--entries", "0"])
    assert main(["bench", "memory", "--entries", "5"]) == 2  # bench_memory's own minimum
    assert "entries must be an int >= 100" in capsys.readouterr().err
    argv = ["bench", "memory", "--entries", "500", "--seed", "3", "--no-archive", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["entries"] == 500
    assert result["seed"] == 3
    assert result["archive_entries"] is None


def test_the_workload_is_seeded_and_fills_a_store_to_capacity():
    """The shared workload: same seed, same entries; a full store, its size; emptied by a spill."""
    a, b = (SeededHistory(1_000, np.random.default_rng(7)) for _ in range(2))
    assert np.array_equal(a.types, b.types) and np.array_equal(a.sigs, b.sigs)
    assert sum(len(args[0]) for args in a.batches(a.n)) == len(a.rows(a.n)) == 1_000
    sink = SpillSink()
    seen = []
    mem, sizes = fill_memory(a, sink=sink, progress=seen.append)
    assert len(mem) == sum(seen) == 1_000 and sink.rows == 0
    assert sizes["bytes_per_slot"] == SLOT_BYTES and sizes["bytes_per_entry"] >= SLOT_BYTES
    empty_memory(mem, a.end_s)
    assert len(mem) == 0 and sink.rows == 1_000
