"""The organism's block-drawn random streams: one seed, one sequence, resumable exactly."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.exceptions import SnapshotError
from lifelab.life.rng import BLOCK, BlockStream, check_position, streams_for_seed


def _stream(seed=0):
    return BlockStream(streams_for_seed(seed, 1)[0], lambda g, k: g.random(k))


@given(st.lists(st.integers(min_value=1, max_value=BLOCK + 7), min_size=1, max_size=6))
def test_take_and_next_hand_out_the_same_sequence(sizes):
    """Slices of any size (across block boundaries too) equal repeated next() calls."""
    a, b = _stream(), _stream()
    taken = np.concatenate([a.take(k) for k in sizes])
    singles = [b.next() for _ in range(len(taken))]
    assert taken.tolist() == singles


def test_state_round_trip_resumes_mid_block():
    """set_state(get_state()) resumes at the same position in the same block."""
    s = _stream(3)
    s.take(BLOCK - 5)
    saved = s.get_state()
    expected = s.take(20).tolist()
    s.set_state(saved)
    assert s.take(20).tolist() == expected


def test_streams_for_seed_are_reproducible_and_independent():
    """One seed gives the same generators; different seeds and streams differ."""
    a = [g.random(4).tolist() for g in streams_for_seed(7, 3)]
    b = [g.random(4).tolist() for g in streams_for_seed(7, 3)]
    c = [g.random(4).tolist() for g in streams_for_seed(8, 3)]
    assert a == b
    assert a != c
    assert a[0] != a[1] != a[2]


def test_check_position_takes_what_get_state_gives():
    """A stream's own position (JSON round-tripped: dicts and ints) passes the check."""
    s = _stream(3)
    s.take(17)
    check_position(s.get_state(), "rng.uniform")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.update(index=BLOCK + 1), "rng.uniform.index = 4097 is invalid"),
        (lambda p: p.update(index=True), "rng.uniform.index = True is invalid"),
        (lambda p: p["state_before"].update(bit_generator="MT19937"), "rng.uniform.state_before"),
        (lambda p: p["state_before"]["state"].update(inc=-1), "state_before.state.inc = -1"),
        (lambda p: p["state_before"].update(has_uint32=2), "state_before.has_uint32 = 2"),
        (lambda p: p.pop("state_before"), "rng.uniform = {'index'"),
    ],
)
def test_check_position_refuses_a_position_set_state_cannot_take(edit, message):
    """A junk stream position raises SnapshotError naming the stream and the field."""
    position = _stream(3).get_state()
    edit(position)
    with pytest.raises(SnapshotError, match=re.escape(message)):
        check_position(position, "rng.uniform")
