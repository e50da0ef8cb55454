"""Events and the event-type table (DESIGN.md §1.2–1.3): checked at the door, never clamped."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.exceptions import EventError, EventTypeError, LifelabError
from lifelab.life import events
from lifelab.life.events import (
    ECHO,
    IDLE,
    MAX_METADATA_BYTES,
    MAX_METADATA_KEYS,
    RECOVERY,
    Event,
    TypeTable,
    builtin_types,
    register_event_type,
)

# Transcribed from DESIGN.md §1.2 (draw weight, intensity range) and §1.3 (meaning weight,
# base impact on energy, stability, integrity). None marks the internal memory_echo.
DESIGN = {
    "noise": (0.352, -0.3, 0.3, 0.5, -0.3, -0.02, 0.0),
    "decay": (0.244, -0.5, 0.0, 1.0, -0.5, -0.01, -0.01),
    "recovery": (0.180, 0.0, 0.5, 1.0, 1.0, 0.05, 0.02),
    "shock": (0.040, -1.0, 1.0, 1.5, -1.5, -0.10, -0.05),
    "idle": (0.040, 0.0, 0.0, 0.2, -0.1, 0.0, 0.0),
    "social_presence": (0.014, -0.4, 0.4, 0.9, -0.1, -0.03, 0.0),
    "social_conflict": (0.010, -0.6, 0.0, 1.2, -0.8, -0.08, -0.03),
    "social_harmony": (0.010, 0.0, 0.6, 1.1, 0.6, 0.06, 0.02),
    "cognitive_doubt": (0.014, -0.5, 0.0, 0.8, 0.0, -0.04, -0.02),
    "cognitive_clarity": (0.010, 0.0, 0.5, 1.0, 0.1, 0.05, 0.03),
    "cognitive_confusion": (0.014, -0.4, 0.0, 0.7, -0.2, -0.06, -0.01),
    "existential_void": (0.007, -0.7, 0.0, 1.3, -1.0, -0.05, -0.04),
    "existential_purpose": (0.006, 0.0, 0.7, 1.4, 0.8, 0.08, 0.05),
    "existential_finitude": (0.008, -0.6, 0.0, 1.1, -0.3, -0.07, -0.03),
    "connection": (0.007, 0.0, 0.8, 1.1, 0.7, 0.08, 0.03),
    "isolation": (0.007, -0.7, 0.0, 1.0, -0.6, -0.09, -0.02),
    "insight": (0.007, 0.0, 0.6, 1.2, 0.2, 0.06, 0.04),
    "confusion": (0.007, -0.5, 0.0, 0.8, -0.1, -0.07, -0.02),
    "curiosity": (0.007, -0.3, 0.4, 0.7, -0.1, -0.03, 0.0),
    "meaning_found": (0.007, 0.0, 0.9, 1.4, 0.9, 0.09, 0.06),
    "void": (0.007, -0.8, 0.0, 1.3, -1.1, -0.06, -0.05),
    "acceptance": (0.007, 0.0, 0.5, 0.9, 0.1, 0.04, 0.02),
    "memory_echo": (None, -0.2, 0.2, 0.8, -0.05, 0.02, 0.01),
}


@pytest.fixture
def clean_registry(monkeypatch):
    """Run a test against an empty registry of user event types, restored afterwards."""
    monkeypatch.setattr(events, "_registered", {})


def test_table_has_22_drawable_types_and_one_internal_echo():
    """22 environment types, then memory_echo, which is internal and never drawn."""
    rows = builtin_types()
    assert len(rows) == 23
    drawable = [r for r in rows if not r.internal]
    assert len(drawable) == 22
    assert all(r.draw_weight > 0 for r in drawable)
    echo = rows[ECHO]
    assert echo.name == "memory_echo" and echo.internal and echo.draw_weight == 0.0
    assert rows[RECOVERY].name == "recovery"
    assert rows[IDLE].name == "idle"


def test_table_matches_the_design_values():
    """Every row's weights, range and base impacts are the DESIGN.md values."""
    rows = {r.name: r for r in builtin_types()}
    assert set(rows) == set(DESIGN)
    for name, (p, lo, hi, w, e, s, i) in DESIGN.items():
        row = rows[name]
        if p is not None:
            assert row.draw_weight == pytest.approx(p), name
        assert (row.lo, row.hi) == pytest.approx((lo, hi)), name
        assert row.meaning_weight == pytest.approx(w), name
        assert (row.energy, row.stability, row.integrity) == pytest.approx((e, s, i)), name


def test_type_table_indexes_by_name_and_refuses_unknown_names(clean_registry):
    """TypeTable.index maps names to row indices; unknown names raise EventError."""
    table = TypeTable()
    assert len(table) == 23
    for i, name in enumerate(table.names):
        assert table.index(name) == i
    with pytest.raises(EventError, match="unknown event type 'nope'"):
        table.index("nope")


@given(st.floats(min_value=-1.0, max_value=1.0))
def test_any_finite_intensity_in_range_is_kept_exactly(intensity):
    """Intensities in [-1, 1] are accepted and stored unchanged."""
    assert Event("shock", intensity).intensity == intensity


@given(
    st.one_of(
        st.floats(min_value=1.0, exclude_min=True, allow_infinity=False),
        st.floats(max_value=-1.0, exclude_max=True, allow_infinity=False),
    )
)
def test_out_of_range_intensity_is_refused_not_clamped(intensity):
    """Intensity outside [-1, 1] raises EventError (no silent clamping)."""
    with pytest.raises(EventError, match=r"\[-1, 1\]"):
        Event("shock", intensity)


@pytest.mark.parametrize("intensity", [math.nan, math.inf, -math.inf])
def test_non_finite_intensity_is_refused(intensity):
    """NaN and ±inf intensities raise EventError saying they must be finite."""
    with pytest.raises(EventError, match="finite"):
        Event("noise", intensity)


@pytest.mark.parametrize("intensity", [True, False, "0.5", None, [0.5]])
def test_non_numeric_intensity_is_a_type_error(intensity):
    """Bools, strings and other non-numbers raise EventTypeError (a TypeError)."""
    with pytest.raises(EventTypeError, match="intensity"):
        Event("noise", intensity)


def test_int_intensity_is_widened_to_float():
    """The ints -1, 0 and 1 are valid intensities and stored as floats."""
    for value in (-1, 0, 1):
        event = Event("shock", value)
        assert type(event.intensity) is float and event.intensity == value


def test_unknown_type_is_refused(clean_registry):
    """An unregistered type name raises EventError that says how to register it."""
    with pytest.raises(EventError, match="register_event_type"):
        Event("earthquake", 0.5)


def test_non_string_type_is_a_type_error():
    """A type that is not a str raises EventTypeError."""
    with pytest.raises(EventTypeError, match=r"Event\.type"):
        Event(3, 0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("timestamp", [math.nan, math.inf, True, "now"])
def test_bad_timestamps_are_refused(timestamp):
    """A timestamp must be a finite number (or None)."""
    with pytest.raises(EventError, match="timestamp"):
        Event("noise", 0.1, timestamp=timestamp)


def test_small_json_metadata_is_accepted():
    """Metadata within the key and byte limits is kept."""
    event = Event("noise", 0.1, metadata={"source": "test", "n": [1, 2, 3]})
    assert event.metadata == {"source": "test", "n": [1, 2, 3]}


@pytest.mark.parametrize(
    "metadata",
    [
        {"blob": "x" * MAX_METADATA_BYTES},
        {f"k{i}": i for i in range(MAX_METADATA_KEYS + 1)},
        {"bad": {1, 2}},
        {"bad": math.nan},
        {"bad": object()},
    ],
    ids=["oversized", "too-many-keys", "set", "nan", "object"],
)
def test_oversized_or_non_json_metadata_is_refused(metadata):
    """Metadata that is too big or not strict JSON raises EventError."""
    with pytest.raises(EventError, match="metadata"):
        Event("noise", 0.1, metadata=metadata)


def test_non_mapping_metadata_is_a_type_error():
    """Metadata must be a mapping."""
    with pytest.raises(EventTypeError, match="metadata"):
        Event("noise", 0.1, metadata=["a", "b"])  # type: ignore[arg-type]


def test_event_is_frozen():
    """Events are immutable value objects."""
    event = Event("noise", 0.1)
    with pytest.raises(AttributeError):
        event.intensity = 0.2  # type: ignore[misc]


def test_from_mapping_builds_an_equal_event():
    """A mapping with the four fields builds the same Event."""
    data = {"type": "recovery", "intensity": 0.25, "timestamp": 3.0, "metadata": {"a": 1}}
    assert Event.from_mapping(data) == Event("recovery", 0.25, 3.0, {"a": 1})


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"type": "noise", "intensity": 0.1, "colour": "red"}, EventError, "colour"),
        ({"type": "noise"}, EventError, "'type' and 'intensity'"),
        ({"intensity": 0.1}, EventError, "'type' and 'intensity'"),
        ("noise", EventTypeError, "mapping"),
        (42, EventTypeError, "mapping"),
    ],
)
def test_from_mapping_refuses_bad_input(data, error, match):
    """Unknown keys, missing fields and non-mappings are refused with a clear error."""
    with pytest.raises(error, match=match):
        Event.from_mapping(data)


def test_register_event_type_makes_a_type_known(clean_registry):
    """A registered type is accepted by Event and by tables built afterwards (weight 1.0)."""
    before = TypeTable()
    row = register_event_type("earthquake", energy=-2.0)
    assert row.meaning_weight == 1.0
    assert Event("earthquake", -0.5).type == "earthquake"
    after = TypeTable()
    assert after.rows[after.index("earthquake")].energy == -2.0
    with pytest.raises(EventError):
        before.index("earthquake")


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("noise", {}), ("not an identifier", {}), (3, {}), ("quake", {"energy": math.nan})],
)
def test_register_event_type_refuses_bad_definitions(clean_registry, name, kwargs):
    """Built-in names, non-identifiers and non-finite impacts cannot be registered."""
    with pytest.raises(EventError):
        register_event_type(name, **kwargs)


def test_event_errors_inherit_the_matching_builtins():
    """EventError is a ValueError, EventTypeError a TypeError, both LifelabErrors."""
    assert issubclass(EventError, ValueError) and issubclass(EventError, LifelabError)
    assert issubclass(EventTypeError, TypeError) and issubclass(EventTypeError, LifelabError)
