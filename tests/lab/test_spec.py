"""Trial specs and grid expansion: validated values, stable cells, a sweep planned as data."""

import json

import pytest

from lifelab.lab.spec import SPEC_VERSION, TrialSpec, expand

GRID = {"batch_size": [1, 16, 64], "gc_mode": ["default", "freeze"]}


def test_expand_is_the_cartesian_product():
    """Three batch sizes × two GC modes × two repeats make twelve trials, six distinct cells."""
    specs = expand(GRID, repeats=2)
    assert len(specs) == 12
    assert len({s.cell for s in specs}) == 6
    assert {(s.batch_size, s.gc_mode) for s in specs} == {
        (b, g) for b in (1, 16, 64) for g in ("default", "freeze")
    }


def test_expand_strings_and_scalars_are_single_values():
    """A string is one value, never iterated character by character; a scalar is one value."""
    specs = expand({"gc_mode": "freeze", "batch_size": 8, "events_mode": "poisson"})
    assert len(specs) == 1
    assert specs[0].gc_mode == "freeze"
    assert specs[0].batch_size == 8
    assert specs[0].config == (("events_mode", "poisson"),)


def test_expand_refuses_an_empty_list_naming_the_key():
    """An empty axis would silently make an empty sweep: refused with the key's name."""
    with pytest.raises(ValueError, match="batch_size"):
        expand({"batch_size": [], "gc_mode": ["default"]})


def test_expand_refuses_unknown_keys():
    """A key that is neither a TrialSpec nor a LifeConfig field is refused by name."""
    with pytest.raises(ValueError, match="batch_sise"):
        expand({"batch_sise": [1, 2]})
    with pytest.raises(ValueError, match="config"):
        expand({"config": [{"dt": 1.0}]})
    with pytest.raises(ValueError, match="bogus"):
        expand({"batch_size": 1}, base={"bogus": 3})


def test_expand_refuses_sets_and_duplicate_cells():
    """Unordered sets and duplicate values (1 and 1.0 make one cell) are refused."""
    with pytest.raises(ValueError, match="order"):
        expand({"batch_size": {1, 2}})
    with pytest.raises(ValueError, match="same cell"):
        expand({"events_per_tick": [1, 1.0]})


def test_expand_interleaves_repeats_repeat_major():
    """Every cell of repeat 0 comes before any of repeat 1, in one deterministic order (A B A B)."""
    specs = expand(GRID, repeats=3)
    cells = [s.cell for s in specs]
    first = cells[:6]
    assert len(set(first)) == 6
    assert cells == first * 3
    assert [(s.batch_size, s.gc_mode) for s in specs[:3]] == [
        (1, "default"),
        (1, "freeze"),
        (16, "default"),
    ]
    assert [s.cell for s in expand(GRID, repeats=3)] == cells


def test_cell_is_stable_across_repeats_processes_and_versions():
    """A cell hash depends only on the parameters: a fixed value, not Python's salted hash()."""
    spec = TrialSpec(ticks=2_000, warmup_ticks=200, batch_size=16, gc_mode="freeze")
    assert (
        spec.cell == TrialSpec(ticks=2_000, warmup_ticks=200, batch_size=16, gc_mode="freeze").cell
    )
    assert len(spec.cell) == 12
    int(spec.cell, 16)
    # Pinned: a changed hash would split old and new results of one cell. Python-engine cells
    # hash as they did before engines existed (their trials all ran the Python engine).
    assert TrialSpec(ticks=2_000, warmup_ticks=200, engine="python").cell == "30ca6a96bcc0"
    assert TrialSpec(ticks=2_000, warmup_ticks=200, engine="compiled").cell == "c9202434f18b"


def test_cell_ignores_timeout_but_not_parameters():
    """The timeout bounds a trial but does not change what it measures."""
    a = TrialSpec(ticks=1_000, timeout_s=5)
    assert a.cell == TrialSpec(ticks=1_000, timeout_s=50).cell
    assert a.cell != TrialSpec(ticks=1_000, seed=1).cell
    assert a.cell != TrialSpec(ticks=1_000, config={"decay_every": 20}).cell


def test_life_config_fields_go_into_config_sorted():
    """LifeConfig fields in the grid or base land in .config as sorted, validated pairs."""
    specs = expand({"decay_every": [10, 20]}, base={"dt": 2, "ticks": 1_000})
    assert [s.config for s in specs] == [
        (("decay_every", 10), ("dt", 2.0)),
        (("decay_every", 20), ("dt", 2.0)),
    ]
    assert specs[0].config_json == '{"decay_every":10,"dt":2.0}'
    assert specs[0].life_config().decay_every == 10
    assert expand({"seed": [3]}, base=specs[0])[0].config == specs[0].config


def test_spec_normalises_values():
    """Ints widen to floats, GC thresholds are canonical, warm-up defaults like bench loop."""
    spec = TrialSpec(ticks=50_000, events_per_tick=2, gc_mode=" 700,10,10", config={"dt": 1})
    assert spec.events_per_tick == 2.0
    assert spec.gc_mode == "700,10,10"
    assert spec.config == (("dt", 1.0),)
    assert spec.warmup_ticks == 5_000
    assert TrialSpec(ticks=10).warmup_ticks == 1_000
    assert TrialSpec(ticks=10_000_000).warmup_ticks == 20_000
    assert TrialSpec(gc_mode="tuned").gc_mode == "tuned"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"ticks": 5}, "ticks"),
        ({"ticks": 2_005}, "multiple of 10"),
        ({"warmup_ticks": -1}, "warmup_ticks"),
        ({"gc_mode": "sometimes"}, "gc"),
        ({"gc_mode": "1,2"}, "gc"),
        ({"batch_size": 0}, "batch_size"),
        ({"memory_capacity": 0}, "memory_capacity"),
        ({"events_per_tick": -1.0}, "events_per_tick"),
        ({"seed": -1}, "seed"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"config": {"no_such_field": 1}}, "no_such_field"),
        ({"config": {"seed": 1}}, "seed"),
        ({"config": {"run_dir": "/tmp/x"}}, "run_dir"),
        ({"config": {"clock": "sundial"}}, "clock"),
        ({"config": {"feedback_min_ticks": 9, "feedback_max_ticks": 3}}, "feedback_max"),
    ],
)
def test_spec_validation_names_field_and_value(changes, match):
    """Bad values raise ValueError naming the field (the value and range are in the message)."""
    with pytest.raises(ValueError, match=match):
        TrialSpec(**changes)


def test_spec_wrong_types_raise_type_error():
    """A wrong type (a float tick count, a non-scalar config value) is a TypeError."""
    with pytest.raises(TypeError, match="ticks"):
        TrialSpec(ticks=1_000.0)
    with pytest.raises(TypeError, match="dt"):
        TrialSpec(config={"dt": [1.0]})
    with pytest.raises(TypeError, match="gc_mode"):
        TrialSpec(gc_mode=None)


def test_spec_is_frozen():
    """A spec is a value: fields cannot be changed after construction."""
    spec = TrialSpec()
    with pytest.raises(AttributeError):
        spec.ticks = 20  # type: ignore[misc]


def test_json_round_trip():
    """to_json/from_json give back an equal spec with the same cell."""
    spec = TrialSpec(ticks=1_000, gc_mode="0,0,0", config={"decay_every": 5}, timeout_s=9)
    text = spec.to_json()
    assert json.loads(text)["version"] == SPEC_VERSION
    back = TrialSpec.from_json(text)
    assert back == spec
    assert back.cell == spec.cell


def test_engine_is_a_field_and_an_axis():
    """engine defaults to LifeConfig's, is a parameter column, and sweeps as its own axis."""
    import dataclasses

    from lifelab.config import LifeConfig

    shipped = {f.name: f.default for f in dataclasses.fields(LifeConfig)}["engine"]
    assert TrialSpec().engine == shipped  # the shipped default (conftest --engine may patch it)
    spec = TrialSpec(engine="python")
    assert spec.params()["engine"] == "python"
    assert spec.life_config().engine == "python"
    assert spec.config == ()  # a field of its own, never in config_json
    specs = expand({"engine": ["compiled", "python"], "batch_size": [1, 64]}, repeats=2)
    assert len(specs) == 8
    assert len({s.cell for s in specs}) == 4
    assert [(s.engine, s.batch_size) for s in specs[:4]] == [
        ("compiled", 1),
        ("compiled", 64),
        ("python", 1),
        ("python", 64),
    ]
    assert TrialSpec(engine="python").cell != TrialSpec(engine="compiled").cell


def test_bad_engines_are_refused_by_name():
    """An unknown engine or an engine smuggled into config is refused, naming the field."""
    with pytest.raises(ValueError, match=r"engine.*'jit'"):
        TrialSpec(engine="jit")
    with pytest.raises(TypeError, match="engine"):
        TrialSpec(engine=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="field of its own"):
        TrialSpec(config={"engine": "python"})
    with pytest.raises(ValueError, match="'jit'"):
        expand({"engine": ["compiled", "jit"]})


def test_a_version_1_spec_means_the_python_engine():
    """Version 1 specs predate engines: they read as engine="python"; one naming it is refused."""
    data = TrialSpec(ticks=1_000, engine="python").to_dict()
    assert data["version"] == SPEC_VERSION == 3
    old = {k: v for k, v in data.items() if k not in ("engine", "instructions")} | {"version": 1}
    assert TrialSpec.from_dict(old) == TrialSpec(ticks=1_000, engine="python")
    with pytest.raises(ValueError, match="version-1"):
        TrialSpec.from_dict({**old, "engine": "compiled"})


def test_instructions_is_a_measurement_option_not_a_cell():
    """A counted trial is the same cell as an uncounted one; version 2 specs read as uncounted;
    a run directory (whose threads make counts vary) is refused; a non-bool is refused."""
    counted = TrialSpec(ticks=1_000, instructions=True)
    assert counted.cell == TrialSpec(ticks=1_000).cell
    assert counted.params() == TrialSpec(ticks=1_000).params()
    assert TrialSpec.from_json(counted.to_json()) == counted
    v2 = {k: v for k, v in counted.to_dict().items() if k != "instructions"} | {"version": 2}
    assert TrialSpec.from_dict(v2) == TrialSpec(ticks=1_000)
    with pytest.raises(ValueError, match="version-2 trial spec has no 'instructions'"):
        TrialSpec.from_dict({**v2, "instructions": True})
    with pytest.raises(ValueError, match="without a run directory"):
        TrialSpec(ticks=1_000, instructions=True, config={"snapshot_every": 100})
    with pytest.raises(TypeError, match="True or False"):
        TrialSpec(ticks=1_000, instructions=1)
    assert [
        s.instructions for s in expand({"batch_size": [1, 2]}, base={"instructions": True})
    ] == [
        True,
        True,
    ]


def test_from_json_refuses_other_versions_and_unknown_fields():
    """A spec from another lifelab or with stray fields is refused with a clear message."""
    data = TrialSpec(ticks=1_000).to_dict()
    with pytest.raises(ValueError, match="version"):
        TrialSpec.from_dict({**data, "version": SPEC_VERSION + 1})
    with pytest.raises(ValueError, match="flux"):
        TrialSpec.from_dict({**data, "flux": 1})
    with pytest.raises(ValueError, match="JSON"):
        TrialSpec.from_json("{not json")


def test_linked_parameters_vary_together():
    """A 'a+b' key zips its parameters onto one axis instead of crossing them."""
    specs = expand(
        {"batch_size+events_per_tick": [(1, 1), (64, 64)], "gc_mode": ["default", "freeze"]},
        repeats=1,
    )
    assert [(s.batch_size, s.events_per_tick, s.gc_mode) for s in specs] == [
        (1, 1.0, "default"),
        (1, 1.0, "freeze"),
        (64, 64.0, "default"),
        (64, 64.0, "freeze"),
    ]
    with pytest.raises(ValueError, match="tuple of 2"):
        expand({"batch_size+events_per_tick": [1, 64]})
    with pytest.raises(ValueError, match="unknown grid key"):
        expand({"batch_size+nope": [(1, 2)]})
