"""Engine ablations: table shape, round trips, the digest check, GC modes restored.

Tiny sizes and two repeats; nothing here judges a timing or which engine is faster (DESIGN §3).
"""

import functools
import gc
import math

import polars as pl
import pytest

from lifelab.life.compiled import numba_available
from lifelab.studies import ablate_engine as ae
from lifelab.studies.ablation import ABLATION_COLUMNS, AblationError, read_ablation, write_ablation

pytestmark = pytest.mark.skipif(not numba_available(), reason="the compiled engine needs numba")

GC_VARIANTS = {ae.gc_variant(e, m) for e in ("python", "compiled") for m in ae.GC_MODES}
STAGE_METRICS = {f"stage_{s}_mean_us" for s in ae.TIMED_STAGES} | {"tick_us"}

# name -> (function, tiny arguments, sizes, variants, baseline, chosen, metrics)
CASES = {
    "engine_throughput": (
        ae.engine_throughput,
        {"sizes": (1, 16), "repeats": 2, "warmup": 30, "target_s": 0.002},
        {1, 16},
        {ae.PYTHON, ae.COMPILED},
        ae.PYTHON,
        ae.COMPILED,
        {"tick_us", "event_ns"},
    ),
    "engine_memory": (
        ae.engine_memory,
        {
            "sizes": (300,),
            "repeats": 2,
            "ticks": 60,
            "warmup": 20,
            "decay_ticks": 20,
            "decay_warmup": 5,
            "check_ticks": 25,
        },
        {300},
        {ae.PYTHON, ae.COMPILED},
        ae.PYTHON,
        ae.COMPILED,
        {"tick_p50_us", "decay_us"},
    ),
    "engine_gc": (
        ae.engine_gc,
        {"repeats": 2, "warmup": 30, "target_s": 0.002},
        {1},
        GC_VARIANTS,
        ae.gc_variant("python", "default"),
        ae.gc_variant("compiled", "default"),
        {"tick_us"},
    ),
    "engine_stages": (
        ae.engine_stages,
        # enough timed ticks that metrics samples some (one tick in ~32)
        {"sizes": (1, 4), "repeats": 2, "warmup": 30, "ticks": 320},
        {1, 4},
        {ae.PYTHON, ae.COMPILED},
        ae.PYTHON,
        ae.COMPILED,
        STAGE_METRICS,
    ),
}


@pytest.fixture(scope="module")
def tables():
    return {name: case[0](**case[1]) for name, case in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_table_has_the_schema_every_variant_and_metric(tables, name):
    """Ablation columns and dtypes; every variant has every metric at every size."""
    _, _, sizes, variants, baseline, chosen, metrics = CASES[name]
    table = tables[name]
    assert [(n, str(t)) for n, t in table.schema.items()] == list(ABLATION_COLUMNS)
    assert set(table["ablation"]) == {name}
    assert set(table["variant"]) == variants
    assert set(table["metric"]) == metrics
    assert set(table["size"]) == sizes
    cells = {(r["variant"], r["size"], r["metric"]) for r in table.iter_rows(named=True)}
    assert len(cells) == table.height == len(variants) * len(sizes) * len(metrics)
    assert set(table.filter(pl.col("baseline"))["variant"]) == {baseline}
    assert set(table.filter(pl.col("chosen"))["variant"]) == {chosen}
    assert table["lower_is_better"].all()
    assert (table["unit"] != "").all()


@pytest.mark.parametrize("name", list(CASES))
def test_values_are_positive_finite_and_baseline_ratios_exactly_one(tables, name):
    """Medians and intervals are positive and finite; the baseline's ratio is 1; n is repeats."""
    table = tables[name]
    for row in table.iter_rows(named=True):
        for key in ("median", "ci_low", "ci_high", "ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (row, key)
        assert row["ci_low"] <= row["median"] <= row["ci_high"]
        if row["baseline"]:
            assert row["ratio"] == 1.0
        assert row["n"] == CASES[name][1]["repeats"]


@pytest.mark.parametrize("name", list(CASES))
def test_tables_round_trip_through_write_and_read(tables, name, tmp_path):
    """write_ablation / read_ablation keep the table and the question."""
    path = write_ablation(tables[name], question=ae.QUESTIONS[name], root=tmp_path)
    assert path == tmp_path / f"{name}.parquet"
    table, meta = read_ablation(path)
    assert table.equals(tables[name])
    assert meta["question"] == ae.QUESTIONS[name]


def test_run_all_writes_one_table_per_question(tmp_path, monkeypatch):
    """run_all writes the four tables (tiny arguments swapped in) and returns their paths."""
    for name, case in CASES.items():
        monkeypatch.setitem(ae._ABLATIONS, name, functools.partial(case[0], **case[1]))
    paths = ae.run_all(tmp_path, scale="quick", progress=False)
    assert paths == [tmp_path / f"{name}.parquet" for name in ae.QUESTIONS]
    assert list(ae.QUESTIONS) == list(ae._ABLATIONS) == list(ae._FULL) == list(ae._SMOKE)
    for name, path in zip(ae.QUESTIONS, paths, strict=True):
        table, meta = read_ablation(path)
        assert set(table["ablation"]) == {name}
        assert meta["question"] == ae.QUESTIONS[name]


def test_smoke_and_full_arguments_are_accepted_by_each_ablation():
    """Every scale's arguments name parameters the ablation takes (nothing runs)."""
    import inspect

    for settings in (ae._SMOKE, ae._FULL):
        for name, kwargs in settings.items():
            inspect.signature(ae._ABLATIONS[name]).bind(**kwargs, seed=0)


# -- the check before timing -----------------------------------------------------------------------


def _drifting(build, *, engine_at):
    """``build`` (``_life`` or ``_filled``) giving the Python engine's organism another seed."""

    def wrapped(*args, **fields):
        args = list(args)
        if args[engine_at] == "python":
            args[1] += 1  # the seed: the second argument of both
        return build(*args, **fields)

    return wrapped


@pytest.mark.parametrize("name", list(CASES))
def test_the_digest_check_catches_engines_that_disagree(name, monkeypatch):
    """When the two engines do not reach the same organism, the ablation refuses to time them."""
    monkeypatch.setattr(ae, "_life", _drifting(ae._life, engine_at=0))
    monkeypatch.setattr(ae, "_filled", _drifting(ae._filled, engine_at=2))
    with pytest.raises(AblationError, match="different organisms"):
        CASES[name][0](**CASES[name][1])


def test_a_compiled_variant_running_python_is_refused(monkeypatch):
    """Without numba the compiled variant would silently be the Python engine: refused."""
    build = ae._life
    monkeypatch.setattr(ae, "_life", lambda engine, seed, **f: build("python", seed, **f))
    with pytest.raises(AblationError, match="numba"):
        ae.engine_throughput(sizes=(1,), repeats=1, warmup=5, target_s=0.001)


def test_equal_engines_pass_the_check():
    """The real engines from one configuration agree after the same ticks (no raise)."""
    lives = {e: ae._life(e, 3, events_per_tick=8.0, batch_size=8) for e in ("python", "compiled")}
    ae._check_same("test", lives, 120)
    assert lives["python"].digest() == lives["compiled"].digest()


# -- GC modes --------------------------------------------------------------------------------------


def _gc_state():
    return gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()


@pytest.mark.parametrize("mode", ["default", "off", "freeze", "tuned"])
def test_gc_mode_is_applied_inside_and_restored_after(mode):
    """Inside the block the mode holds; afterwards the former state is back, even on error."""
    before = _gc_state()
    with pytest.raises(RuntimeError), ae._gc_mode(mode):
        if mode == "off":
            assert not gc.isenabled()
        if mode == "freeze":
            assert gc.get_freeze_count() > 0
        raise RuntimeError("inside")
    assert _gc_state() == before


def test_engine_gc_leaves_the_gc_as_it_found_it(tables):
    """After the GC ablation ran (module fixture), the collector is on with its thresholds."""
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_gc_effects_compares_each_mode_with_its_own_engines_default(tables):
    """One row per engine and mode; each engine's default is 1 against itself."""
    effects = ae.gc_effects(tables["engine_gc"])
    assert effects.height == len(GC_VARIANTS)
    assert set(effects["engine"]) == {"python", "compiled"}
    assert set(effects["gc"]) == set(ae.GC_MODES)
    defaults = effects.filter(pl.col("gc") == "default")
    assert defaults["vs_default"].to_list() == [1.0, 1.0]
    assert defaults["overlaps_default"].all()


# -- the stage figure ------------------------------------------------------------------------------


def test_stage_shares_figure_has_one_bar_per_engine_and_size(tables):
    """A bar per (engine, size), each stage a segment, shares of the wall tick in [0, 1]."""
    fig = ae.plot_stage_shares(tables["engine_stages"])
    ax = fig.axes[0]
    assert [t.get_text().split("\n")[0] for t in ax.get_yticklabels()] == [
        ae.PYTHON,
        ae.COMPILED,
        ae.PYTHON,
        ae.COMPILED,
    ]
    totals: dict[float, float] = {}
    for patch in ax.patches:
        assert patch.get_width() >= 0.0
        y = round(patch.get_y() + patch.get_height() / 2)
        totals[y] = totals.get(y, 0.0) + patch.get_width()
    # each bar is the whole wall tick: the stages plus what they leave (or more, when they
    # add up to more than the wall clock)
    assert sorted(totals) == [0, 1, 2, 3]
    assert all(total >= 1.0 - 1e-9 for total in totals.values())
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert set(ae.TIMED_STAGES) <= legend


# -- arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [
        (ae.engine_throughput, {"sizes": ()}),
        (ae.engine_throughput, {"sizes": (0,)}),
        (ae.engine_memory, {"sizes": (1.5,)}),
        (ae.engine_memory, {"sizes": (100,), "ticks": 0}),
        (ae.engine_gc, {"modes": ("off",)}),
        (ae.engine_gc, {"modes": ("default", "sometimes")}),
        (ae.engine_stages, {"ticks": 0}),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_the_ablation(fn, kwargs):
    """Sizes, counts and modes are checked before anything runs."""
    with pytest.raises(AblationError, match=r"engine_(throughput|memory|gc|stages)"):
        fn(**kwargs)
    assert issubclass(AblationError, ValueError)


def test_run_all_refuses_an_unknown_scale(tmp_path):
    with pytest.raises(AblationError, match="scale"):
        ae.run_all(tmp_path, scale="huge", progress=False)
