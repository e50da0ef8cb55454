"""Active memory: columnar writes, decay, spill (never delete), capacity, activation, summary."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lifelab.exceptions import SnapshotError
from lifelab.memory.active import COLUMNS, KIND_EVENT, KIND_FEEDBACK, ActiveMemory, check_columns


class Spilled:
    """Collects every batch the memory spills."""

    def __init__(self):
        self.batches = []

    def __call__(self, columns):
        self.batches.append(columns)

    def ids(self):
        return [i for batch in self.batches for i in batch["id"].tolist()]


def _memory(capacity=1_000, min_weight=0.0, decay_factor=0.99):
    spilled = Spilled()
    mem = ActiveMemory(capacity, spilled, min_weight=min_weight, decay_factor=decay_factor)
    return mem, spilled


def _fill(mem, sigs, *, timestamps=None, event_type=0, kind=KIND_EVENT):
    timestamps = [0.0] * len(sigs) if timestamps is None else timestamps
    return [
        mem.add(event_type, kind, 1, sig, ts, ts, 1)
        for sig, ts in zip(sigs, timestamps, strict=True)
    ]


def test_columns_take_64_bytes_per_entry():
    """The twelve column dtypes add up to 64 bytes per entry; nbytes counts allocated rows."""
    assert sum(dtype.itemsize for dtype in COLUMNS.values()) == 64
    mem, _ = _memory(capacity=10_000)
    _fill(mem, [0.5] * 1_500)
    assert mem.nbytes() % 64 == 0
    assert mem.nbytes() >= 64 * 1_500


def test_add_writes_one_entry_with_weight_one():
    """add() stores every field, weight 1.0, and returns monotonic ids."""
    mem, _ = _memory()
    first = mem.add(3, KIND_EVENT, 2, 0.75, 12.0, 13.5, 12)
    second = mem.add(4, KIND_FEEDBACK, 1, 0.25, 13.0, 14.0, 13, (-0.5, 0.25, 0.125))
    assert (first, second) == (0, 1)
    cols = mem.columns()
    assert cols["event_type"].tolist() == [3, 4]
    assert cols["kind"].tolist() == [KIND_EVENT, KIND_FEEDBACK]
    assert cols["action"].tolist() == [2, 1]
    assert cols["significance"].tolist() == [0.75, 0.25]
    assert cols["weight"].tolist() == [1.0, 1.0]
    assert cols["timestamp"].tolist() == [12.0, 13.0]
    assert cols["subjective_timestamp"].tolist() == [13.5, 14.0]
    assert cols["tick"].tolist() == [12, 13]
    assert cols["feedback_energy"].tolist() == [0.0, -0.5]
    assert cols["feedback_stability"].tolist() == [0.0, 0.25]
    assert cols["feedback_integrity"].tolist() == [0.0, 0.125]
    assert len(mem) == mem.next_id == 2


def test_add_batch_with_per_row_feedback_arrays():
    """add_batch writes k rows sharing time and kind, with per-row actions and feedback."""
    mem, _ = _memory()
    mem.add(0, KIND_EVENT, 1, 0.5, 1.0, 1.0, 1)
    fe = np.array([-1.0, 0.5, 0.1])
    fs = np.array([0.01, 0.02, 0.03])
    fi = np.array([0.0, -0.25, 1.0 / 3.0])
    mem.add_batch(
        np.array([5, 6, 7]),
        KIND_FEEDBACK,
        np.array([1, 2, 3], np.int8),
        np.array([0.2, 0.4, 0.6]),
        9.0,
        11.0,
        9,
        (fe, fs, fi),
    )
    cols = mem.columns()
    assert cols["id"].tolist() == [0, 1, 2, 3]
    assert cols["event_type"].tolist() == [0, 5, 6, 7]
    assert cols["kind"].tolist() == [KIND_EVENT] + [KIND_FEEDBACK] * 3
    assert cols["action"].tolist() == [1, 1, 2, 3]
    assert cols["weight"].tolist() == [1.0] * 4
    assert cols["timestamp"][1:].tolist() == [9.0] * 3
    assert cols["tick"][1:].tolist() == [9] * 3
    assert np.array_equal(cols["feedback_energy"][1:], fe.astype(np.float32))
    assert np.array_equal(cols["feedback_stability"][1:], fs.astype(np.float32))
    assert np.array_equal(cols["feedback_integrity"][1:], fi.astype(np.float32))


def test_add_batch_with_scalar_feedback_and_empty_batches():
    """Scalar feedback is broadcast; an empty batch writes nothing."""
    mem, _ = _memory()
    mem.add_batch(np.array([], np.int64), KIND_EVENT, 1, np.array([]), 0.0, 0.0, 0)
    assert len(mem) == 0
    mem.add_batch(
        np.array([1, 2]), KIND_FEEDBACK, 2, np.array([0.3, 0.4]), 0.0, 0.0, 0, (0.5, -0.5, 0.25)
    )
    cols = mem.columns()
    assert cols["feedback_energy"].tolist() == [0.5, 0.5]
    assert cols["feedback_stability"].tolist() == [-0.5, -0.5]


def test_memory_grows_past_its_first_allocation():
    """Writing beyond the initial column size keeps every entry in id order."""
    mem, _ = _memory(capacity=100_000)
    _fill(mem, [0.1] * 3_000)
    mem.add_batch(np.zeros(2_000, np.int64), KIND_EVENT, 1, np.full(2_000, 0.2), 0.0, 0.0, 2)
    assert np.array_equal(mem.columns()["id"], np.arange(5_000))


def test_columns_are_read_only_views():
    """columns() cannot be used to write into the memory."""
    mem, _ = _memory()
    _fill(mem, [0.5])
    with pytest.raises(ValueError):
        mem.columns()["weight"][0] = 2.0


# -- decay ---------------------------------------------------------------------------------------


def test_decay_hand_computed():
    """sig 1, age 0: w·0.99; sig 0, age 1 day: w·0.99·0.5/2; sig 0.5, age 0.5 day: ·0.75/1.5."""
    mem, _ = _memory()
    _fill(mem, [1.0, 0.0, 0.5], timestamps=[86_400.0, 0.0, 43_200.0])
    mem.decay(86_400.0)
    expected = [0.99, 0.99 * 0.5 / 2.0, 0.99 * 0.75 / 1.5]
    assert mem.columns()["weight"].tolist() == pytest.approx(expected)


@given(
    data=st.data(),
    n=st.integers(min_value=1, max_value=60),
    now=st.floats(min_value=0.0, max_value=1e7),
    f=st.floats(min_value=0.5, max_value=1.0),
    passes=st.integers(min_value=1, max_value=3),
)
def test_decay_matches_the_formula(data, n, now, f, passes):
    """w ← w·f·(0.5 + 0.5·sig)/(1 + age/86400), checked against a direct numpy computation."""
    sig = data.draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
    ages = data.draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 1e6)))
    timestamps = now - np.minimum(ages, now)
    mem, spilled = _memory(min_weight=0.0, decay_factor=f)
    _fill(mem, sig.tolist(), timestamps=timestamps.tolist())
    weight = np.ones(n)
    for _ in range(passes):
        before = mem.columns()["weight"].copy()
        mem.decay(now)
        weight = weight * f * (0.5 + 0.5 * sig) / (1.0 + (now - timestamps) / 86_400.0)
        after = mem.columns()["weight"]
        assert np.allclose(after, weight, rtol=1e-12, atol=1e-300)
        assert np.all(after <= before)  # decay never raises a weight
    assert spilled.batches == []


@given(
    sig=hnp.arrays(np.float64, st.integers(1, 60), elements=st.floats(0.0, 1.0)),
    min_weight=st.floats(min_value=0.0, max_value=1.0),
)
def test_decay_spills_exactly_the_entries_under_min_weight(sig, min_weight):
    """Entries whose decayed weight falls below min_weight move to the spill, the rest stay."""
    mem, spilled = _memory(min_weight=min_weight)
    _fill(mem, sig.tolist())
    expected_weight = 0.99 * (0.5 + 0.5 * sig)
    gone = expected_weight < min_weight
    count = mem.decay(0.0)
    assert count == int(gone.sum())
    assert spilled.ids() == np.flatnonzero(gone).tolist()
    # spills fill holes from the end, so active columns are a set of ids, not id-ordered
    assert sorted(mem.columns()["id"].tolist()) == np.flatnonzero(~gone).tolist()
    assert len(mem) + mem.spilled == mem.next_id
    if spilled.batches:
        assert np.allclose(spilled.batches[0]["weight"], expected_weight[gone])


def test_decay_of_an_empty_memory_is_a_no_op():
    """Nothing to decay, nothing spilled."""
    mem, spilled = _memory()
    assert mem.decay(10.0) == 0
    assert spilled.batches == []


# -- capacity ------------------------------------------------------------------------------------


def _with_weights(sigs, capacity):
    """A memory whose weights after one decay at age 0 are 0.99·(0.5 + 0.5·sig)."""
    mem, spilled = _memory(capacity=capacity)
    _fill(mem, sigs)
    mem.decay(0.0)
    return mem, spilled


@pytest.mark.parametrize(
    ("capacity", "spilled_ids"),
    [
        (6, []),
        (4, [1, 3]),  # three ties at the lowest weight: the two oldest go
        (2, [1, 3, 5, 2]),  # then the next-lowest weight
        (1, [1, 3, 5, 2, 0]),  # the top weight is tied too: the older one goes
    ],
)
def test_enforce_capacity_spills_lowest_weight_then_oldest(capacity, spilled_ids):
    """Lowest weight first, ties broken oldest (lowest id) first."""
    mem, spilled = _with_weights([0.9, 0.1, 0.5, 0.1, 0.9, 0.1], capacity)
    count = mem.enforce_capacity()
    assert count == len(spilled_ids)
    assert sorted(spilled.ids()) == sorted(spilled_ids)
    assert sorted(mem.columns()["id"].tolist()) == sorted(set(range(6)) - set(spilled_ids))
    assert len(mem) == min(capacity, 6)


@given(
    sigs=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=1, max_size=50),
    capacity=st.integers(min_value=1, max_value=50),
)
def test_enforce_capacity_matches_a_brute_force_choice(sigs, capacity):
    """The spilled set is the first (weight, id)-sorted entries beyond capacity."""
    mem, spilled = _with_weights(sigs, capacity)
    cols = mem.columns()
    weight_of = dict(zip(cols["id"].tolist(), cols["weight"].tolist(), strict=True))
    excess = max(0, len(sigs) - capacity)
    expected = sorted(weight_of, key=lambda i: (weight_of[i], i))[:excess]
    mem.enforce_capacity()
    assert sorted(spilled.ids()) == sorted(expected)
    assert len(mem) == min(capacity, len(sigs))
    remaining = mem.columns()["id"].tolist()
    assert sorted(remaining) == sorted(set(weight_of) - set(expected))


class _Direct(ActiveMemory):
    """The reference: every enforce_capacity selects from all rows (no victim list)."""

    __slots__ = ()

    def enforce_capacity(self):
        excess = self.next_id - self.spilled - self.capacity
        return self._spill_rows(self._lowest(excess)) if excess > 0 else 0


def _same_life(fast, slow, got, want, steps, rng, now=0.0):
    """Drive both memories through one random sequence of adds, batches and decays."""
    for _ in range(steps):
        r = rng.random()
        if r < 0.5:
            args = [(1, KIND_EVENT, 2, rng.random(), now, now, 1)]
            fns = ("add",)
        elif r < 0.8:
            k = int(rng.integers(1, 40))
            args = [(np.zeros(k, np.int16), KIND_EVENT, 2, rng.random(k), now, now, 1)]
            fns = ("add_batch",)
        else:
            now += float(rng.random()) * 1e5
            args, fns = [(now,)], ("decay",)
        for mem in (fast, slow):
            getattr(mem, fns[0])(*args[0])
            mem.enforce_capacity()  # the tick ends with the capacity check
        assert len(fast) == len(slow) <= fast.capacity
        for name, col in slow.columns().items():
            np.testing.assert_array_equal(fast.columns()[name], col, err_msg=name)
    assert got.ids() == want.ids()


@pytest.mark.parametrize("capacity", [1, 7, 50, 400])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_enforce_capacity_at_steady_state_matches_direct_selection(capacity, seed):
    """The amortised victim list spills exactly what a fresh selection would, row for row.

    Same random adds, batches and decays (each followed by the capacity check, as in a tick)
    through the shipped memory and the reference; spilled batches and live columns compared.
    """
    got, want = Spilled(), Spilled()
    fast = ActiveMemory(capacity, got, min_weight=0.2)
    slow = _Direct(capacity, want, min_weight=0.2)
    _same_life(fast, slow, got, want, 600, np.random.default_rng(seed))


def test_victim_list_stays_exact_when_loaded_weights_exceed_one():
    """Entries loaded with weight > 1 sort after new entries (weight 1): never listed early."""
    rng = np.random.default_rng(3)
    n = 300
    columns = {name: np.zeros(n, dtype) for name, dtype in COLUMNS.items()}
    columns["id"] = np.arange(n)
    columns["weight"] = np.where(rng.random(n) < 0.5, 1.5, rng.random(n))
    columns["significance"] = rng.random(n)
    got, want = Spilled(), Spilled()
    fast = ActiveMemory(n, got, min_weight=0.0)
    slow = _Direct(n, want, min_weight=0.0)
    for mem in (fast, slow):
        mem.load(columns, next_id=n, spilled=0)
    for _ in range(n):  # no decay: every add spills one of the loaded entries or a new one
        for mem in (fast, slow):
            mem.add(1, KIND_EVENT, 2, 0.5, 0.0, 0.0, 1)
            mem.enforce_capacity()
    assert got.ids() == want.ids()
    np.testing.assert_array_equal(fast.columns()["id"], slow.columns()["id"])


def test_spilled_entries_carry_all_columns():
    """A spill hands over every column of the leaving rows (copies)."""
    mem, spilled = _memory(capacity=1)
    mem.add(4, KIND_FEEDBACK, 2, 0.3, 5.0, 6.0, 7, (0.5, 0.25, -0.125))
    mem.add(5, KIND_EVENT, 1, 0.9, 8.0, 9.0, 10)
    mem.decay(8.0)
    mem.enforce_capacity()
    (batch,) = spilled.batches
    assert set(batch) == set(COLUMNS)
    assert batch["id"].tolist() == [0]
    assert batch["event_type"].tolist() == [4]
    assert batch["tick"].tolist() == [7]
    assert batch["feedback_integrity"].tolist() == [-0.125]


# -- activation and summary ---------------------------------------------------------------------


def test_activation_returns_top_k_event_entries_by_significance():
    """Top-k of one type by significance (ties in write order); feedback entries excluded."""
    mem, _ = _memory()
    mem.add(1, KIND_EVENT, 1, 0.3, 0.0, 0.0, 1)  # id 0
    mem.add(1, KIND_EVENT, 1, 0.9, 0.0, 0.0, 1)  # id 1
    mem.add(2, KIND_EVENT, 1, 1.0, 0.0, 0.0, 1)  # id 2: other type
    mem.add(1, KIND_FEEDBACK, 1, 0.95, 0.0, 0.0, 1)  # id 3: feedback
    mem.add(1, KIND_EVENT, 1, 0.5, 0.0, 0.0, 1)  # id 4
    mem.add(1, KIND_EVENT, 1, 0.9, 0.0, 0.0, 1)  # id 5: ties id 1
    assert mem.activation(1, 3)["id"].tolist() == [1, 5, 4]
    assert mem.activation(1, 2)["id"].tolist() == [1, 5]
    assert mem.activation(1, 10)["id"].tolist() == [1, 5, 4, 0]
    assert mem.activation(7, 3)["id"].tolist() == []


def test_type_stats_count_event_entries_only():
    """Counts, significance sums and action counts cover event entries, not feedback."""
    mem, _ = _memory()
    mem.add(0, KIND_EVENT, 1, 0.5, 0.0, 0.0, 1)
    mem.add(2, KIND_EVENT, 2, 0.25, 0.0, 0.0, 1)
    mem.add(2, KIND_EVENT, 3, 0.25, 0.0, 0.0, 1)
    mem.add(2, KIND_FEEDBACK, 1, 0.9, 0.0, 0.0, 1)
    counts, sig_sums, actions = mem.type_stats(3, 4)
    assert counts.tolist() == [1, 0, 2]
    assert sig_sums.tolist() == pytest.approx([0.5, 0.0, 0.5])
    assert actions.tolist() == [0, 1, 1, 1]


def test_export_and_load_round_trip():
    """load(export()) restores the columns and counters."""
    mem, _ = _memory(capacity=3)
    _fill(mem, [0.1, 0.6, 0.2, 0.9, 0.4])
    mem.decay(0.0)
    mem.enforce_capacity()
    other, _ = _memory(capacity=3)
    other.load(mem.export(), mem.next_id, mem.spilled)
    for name, col in mem.columns().items():
        assert np.array_equal(other.columns()[name], col), name
    assert (other.next_id, other.spilled, len(other)) == (5, 2, 3)


def _exported(n=20):
    mem, _ = _memory(capacity=10)
    rng = np.random.default_rng(3)
    mem.add_batch(rng.integers(0, 5, n), KIND_EVENT, 2, rng.random(n), 1.0, 1.0, 1)
    mem.enforce_capacity()
    return mem.export(), mem.next_id, mem.spilled


def test_check_columns_takes_an_export():
    """Columns exported by a store, with its counters, pass the check."""
    columns, next_id, spilled = _exported()
    check_columns(columns, n_types=5, next_id=next_id, spilled=spilled)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("weight", -0.5, "weights or significances out of range"),
        ("significance", 2.0, "weights or significances out of range"),
        ("timestamp", np.nan, "column timestamp holds NaN or inf"),
        ("subjective_timestamp", np.inf, "column subjective_timestamp holds NaN or inf"),
        ("id", 10**6, "active ids out of range or repeated"),
        ("id", "repeat", "active ids out of range or repeated"),
        ("event_type", 5, "event types out of range"),
        ("kind", 3, "kinds or actions out of range"),
        ("action", -1, "kinds or actions out of range"),
    ],
)
def test_check_columns_refuses_what_no_store_holds(name, value, message):
    """One impossible value in a column raises SnapshotError saying what is wrong."""
    columns, next_id, spilled = _exported()
    col = columns[name]
    col[0] = col[1] if value == "repeat" else value
    with pytest.raises(SnapshotError, match=message):
        check_columns(columns, n_types=5, next_id=next_id, spilled=spilled)


def test_check_columns_refuses_counters_that_disagree_with_the_rows():
    """Entries written must be the spilled ones plus the live rows; a short column is refused."""
    columns, next_id, spilled = _exported()
    with pytest.raises(SnapshotError, match="entries_written 21 != spilled"):
        check_columns(columns, n_types=5, next_id=next_id + 1, spilled=spilled)
    columns["tick"] = columns["tick"][:-1]
    with pytest.raises(SnapshotError, match="column tick is missing or of a wrong dtype"):
        check_columns(columns, n_types=5, next_id=next_id, spilled=spilled)
