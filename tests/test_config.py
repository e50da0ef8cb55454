"""LifeConfig: keyword-only, frozen, validated field by field with errors that name the field."""

import dataclasses
import math

import pytest

from lifelab.config import _RULES, LifeConfig
from lifelab.exceptions import ConfigError, ConfigTypeError, LifelabError

FIELDS = [f.name for f in dataclasses.fields(LifeConfig)]
RANGED = sorted(name for name, rule in _RULES.items() if rule.lo is not None)
FLOATS = sorted(name for name, rule in _RULES.items() if rule.kind is float)
REQUIRED = sorted(name for name, rule in _RULES.items() if not rule.optional)
WRONG_TYPES = {
    float: ["1.0", True, [1.0]],
    int: [1.5, "1", True, 1.0],
    str: [1, b"x", 1.0],
    bool: [1, 0, "true"],
}


def _only(name, value):
    """Keyword arguments that set ``name`` while keeping the feedback pair consistent."""
    kwargs = {name: value}
    if name == "feedback_min_ticks":
        kwargs["feedback_max_ticks"] = 10_000
    elif name == "feedback_max_ticks":
        kwargs["feedback_min_ticks"] = 1
    return kwargs


def _below(rule):
    return rule.lo - 1 if rule.kind is int else math.nextafter(rule.lo, -math.inf)


def _above(rule):
    return rule.hi + 1 if rule.kind is int else math.nextafter(rule.hi, math.inf)


def test_every_field_has_exactly_one_rule():
    """A new field without a validation rule (or a stale rule) is caught here."""
    assert set(_RULES) == set(FIELDS)


def test_defaults_match_the_design():
    """The defaults are the reference values of DESIGN.md §1."""
    cfg = LifeConfig()
    assert cfg.clock == "simulated"
    assert cfg.memory_capacity == 10_000
    assert cfg.min_weight == 0.1
    assert cfg.decay_every == 10
    assert cfg.decay_factor == 0.99
    assert cfg.learn_every == 75
    assert cfg.adapt_every == 100
    assert (cfg.feedback_min_ticks, cfg.feedback_max_ticks) == (3, 10)
    assert cfg.echo_probability == 0.02
    assert (cfg.weak_penalty_energy, cfg.weak_penalty_stability) == (0.02, 0.04)
    assert cfg.weak_penalty_integrity == 0.04
    assert cfg.mortality_ticks is None


@pytest.mark.parametrize("name", RANGED)
def test_range_ends_are_accepted(name):
    """Both ends of every field's range are valid values."""
    rule = _RULES[name]
    for value in (rule.lo, rule.hi):
        cfg = LifeConfig(**_only(name, value))
        assert getattr(cfg, name) == value


@pytest.mark.parametrize("name", RANGED)
def test_values_below_the_range_are_refused(name):
    """Just below the lower bound raises ConfigError naming the field and the value."""
    value = _below(_RULES[name])
    with pytest.raises(ConfigError, match=rf"LifeConfig\.{name}\b") as info:
        LifeConfig(**_only(name, value))
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("name", RANGED)
def test_values_above_the_range_are_refused(name):
    """Just above the upper bound raises ConfigError naming the field and the range."""
    with pytest.raises(ConfigError, match=rf"LifeConfig\.{name} must be in \["):
        LifeConfig(**_only(name, _above(_RULES[name])))


def test_every_rule_kind_has_wrong_type_examples():
    """The wrong-type test below covers every kind of field the config has."""
    assert {rule.kind for rule in _RULES.values()} <= set(WRONG_TYPES)


@pytest.mark.parametrize("name", sorted(_RULES))
def test_wrong_types_are_refused(name):
    """A value of the wrong type (bools for numbers, 1 for bools) raises ConfigTypeError."""
    for value in WRONG_TYPES.get(_RULES[name].kind, []):
        with pytest.raises(ConfigTypeError, match=rf"LifeConfig\.{name}\b"):
            LifeConfig(**_only(name, value))


@pytest.mark.parametrize("name", REQUIRED)
def test_none_is_refused_for_required_fields(name):
    """None is a type error for every field that is not optional."""
    with pytest.raises(ConfigTypeError, match=rf"LifeConfig\.{name}\b"):
        LifeConfig(**{name: None})


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(name, value):
    """NaN and ±inf are refused with ConfigError for every float field."""
    with pytest.raises(ConfigError, match=rf"LifeConfig\.{name}\b"):
        LifeConfig(**{name: value})


@pytest.mark.parametrize(("name", "value"), [("clock", "wall"), ("events_mode", "uniform")])
def test_unknown_choices_are_refused(name, value):
    """Choice fields list the allowed values in the error."""
    with pytest.raises(ConfigError, match=rf"LifeConfig\.{name} must be one of \[") as info:
        LifeConfig(**{name: value})
    assert value in str(info.value)


def test_optional_fields_accept_none():
    """mortality_ticks and run_dir may be None."""
    cfg = LifeConfig(mortality_ticks=None, run_dir=None)
    assert cfg.mortality_ticks is None
    assert cfg.run_dir is None


def test_ints_are_widened_to_float_for_float_fields():
    """An int given for a float field is stored as a float."""
    cfg = LifeConfig(dt=2, events_per_tick=3)
    assert type(cfg.dt) is float and cfg.dt == 2.0
    assert type(cfg.events_per_tick) is float and cfg.events_per_tick == 3.0


def test_config_is_keyword_only():
    """Positional arguments are refused."""
    with pytest.raises(TypeError):
        LifeConfig(1)  # type: ignore[misc]


def test_config_is_frozen():
    """Fields cannot be assigned after construction."""
    cfg = LifeConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]


def test_feedback_max_below_min_is_refused():
    """feedback_max_ticks < feedback_min_ticks raises ConfigError naming both."""
    with pytest.raises(ConfigError, match=r"feedback_max_ticks.*feedback_min_ticks"):
        LifeConfig(feedback_min_ticks=5, feedback_max_ticks=4)


def test_feedback_window_of_one_tick_is_allowed():
    """feedback_max_ticks == feedback_min_ticks is a valid, fixed delay."""
    cfg = LifeConfig(feedback_min_ticks=4, feedback_max_ticks=4)
    assert cfg.feedback_max_ticks == cfg.feedback_min_ticks == 4


def test_from_mapping_refuses_unknown_keys():
    """Unknown keys are refused by name, not ignored."""
    with pytest.raises(ConfigError, match="colour"):
        LifeConfig.from_mapping({"seed": 1, "colour": "red"})


def test_from_mapping_round_trips_to_dict():
    """from_mapping(to_dict()) rebuilds an equal config."""
    cfg = LifeConfig(seed=9, events_per_tick=2.5, events_mode="poisson", mortality_ticks=4)
    assert LifeConfig.from_mapping(cfg.to_dict()) == cfg


def test_from_mapping_validates_values():
    """Values coming through from_mapping are validated like keyword arguments."""
    with pytest.raises(ConfigError, match=r"LifeConfig\.batch_size"):
        LifeConfig.from_mapping({"batch_size": 0})


def test_replace_validates_again():
    """replace() returns a validated copy and leaves the original alone."""
    cfg = LifeConfig(seed=1)
    assert cfg.replace(seed=2).seed == 2
    assert cfg.seed == 1
    with pytest.raises(ConfigError, match=r"LifeConfig\.decay_factor"):
        cfg.replace(decay_factor=1.5)


def test_config_errors_inherit_the_matching_builtins():
    """ConfigError is a ValueError and ConfigTypeError a TypeError, both LifelabErrors."""
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, LifelabError)
    assert issubclass(ConfigTypeError, TypeError) and issubclass(ConfigTypeError, LifelabError)
