"""The held-full tick measurement: keys, engines, every tick sampled; no timing is judged."""

import pytest

from lifelab.exceptions import ConfigError
from lifelab.life.compiled import numba_available
from lifelab.observe.metrics import STAGES
from lifelab.studies.scaling import TICK_METRICS, ScalingError, measure_tick, tick_scaling

ENGINES = [
    "python",
    pytest.param("compiled", marks=pytest.mark.skipif(not numba_available(), reason="needs numba")),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_measure_tick_times_every_tick_of_the_engine_asked_for(engine):
    """Memory held full at N, each of the ticks sampled by life.metrics, each stage's median."""
    out = measure_tick(300, 40, seed=1, engine=engine, warmup=10)
    assert out["engine"] == engine
    assert out["entries"] == out["active_entries"] == 300
    assert out["ticks"] == out["sampled_ticks"] == 40
    for key in TICK_METRICS:
        assert out[key] > 0
    assert {f"stage_{s}_p50_us" for s in STAGES} <= set(out)


def test_measure_tick_passes_config_fields_to_the_life():
    """Other LifeConfig fields reach the organism (a bad one is refused by LifeConfig)."""
    with pytest.raises(ConfigError, match="decay_every"):
        measure_tick(100, 5, engine="python", warmup=1, decay_every=0)


def test_tick_scaling_runs_each_size_in_a_subprocess_with_the_engine():
    """One row per size, from a fresh process, with the engine that ran."""
    df = tick_scaling([200, 400], ticks=20, engine="python", progress=False)
    assert df["entries"].to_list() == [200, 400]
    assert set(df["engine"]) == {"python"}


def test_a_failing_size_is_a_scaling_error_with_the_stderr_tail():
    """A measurement process that fails raises ScalingError naming the size, with its stderr."""
    with pytest.raises(ScalingError, match=r"tick scaling at 200 exited with status 1") as info:
        tick_scaling([200], ticks=5, engine="jit", progress=False)
    assert "stderr tail" in str(info.value) and "engine" in str(info.value)
    assert isinstance(info.value, RuntimeError)
