"""The command line: its one table of commands, the exit codes by meaning, the --engine option."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import polars as pl
import pytest
from support.synthetic import make_results

from lifelab import cli
from lifelab._argtypes import ENGINES
from lifelab.cli import COMMANDS, GROUPS, Exit, build_parser, exit_code, main
from lifelab.config import LifeConfig
from lifelab.exceptions import ArchiveError, ConfigError, ConfigTypeError, StageError
from lifelab.lab.results import ResultsExistsError
from lifelab.lab.runner import TrialFailed
from lifelab.store.rundir import RunDir

ENGINE_COMMANDS = (
    ["run"],
    ["resume", "RUN"],
    ["bench", "loop"],
    ["profile"],
)


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_engine_choices_are_life_configs():
    """The CLI's choices are exactly engines LifeConfig accepts, its default among them."""
    for name in ENGINES:
        assert LifeConfig(engine=name).engine == name
    assert LifeConfig().engine in ENGINES


@pytest.mark.parametrize("command", ENGINE_COMMANDS, ids=lambda c: " ".join(c))
def test_engine_option_parses_and_defaults_to_the_config(command):
    """Every command that builds an organism takes --engine; left out it is None (the default)."""
    parser = build_parser()
    assert parser.parse_args(command).engine is None
    for name in ENGINES:
        assert parser.parse_args([*command, "--engine", name]).engine == name


@pytest.mark.parametrize("command", ENGINE_COMMANDS, ids=lambda c: " ".join(c))
def test_engine_help_says_what_each_choice_means(command, capsys):
    """--help names both engines and what they are."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--engine {compiled,python}" in text
    assert "numba" in text and "reference" in text


def test_bad_engine_exits_2_naming_the_choices(capsys):
    """An unknown engine is refused by argparse with the choices, before any work."""
    with pytest.raises(SystemExit) as info:
        main(["run", "--ticks", "1", "--engine", "jit"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--engine" in err and "'jit'" in err and "compiled" in err and "python" in err


@pytest.mark.parametrize("engine", ENGINES)
def test_run_engine_reaches_the_config_and_the_summary(engine, tmp_path, capsys):
    """run --engine E stores E in the run's config; the summary says which engine ran."""
    run = tmp_path / "run"
    argv = ["run", "--ticks", "30", "--run-dir", str(run), "--engine", engine, "--json"]
    assert main(argv) == 0
    out = _last_json(capsys)
    assert out["engine"] == engine  # numba is installed here, so no fallback
    assert RunDir.open(run).read_meta()["config"]["engine"] == engine


def test_run_without_engine_uses_the_config_default(tmp_path, capsys):
    """No --engine: LifeConfig's default engine."""
    run = tmp_path / "run"
    assert main(["run", "--ticks", "10", "--run-dir", str(run), "--json"]) == 0
    assert _last_json(capsys)["engine"] == LifeConfig().engine
    assert RunDir.open(run).read_meta()["config"]["engine"] == LifeConfig().engine


def test_resume_keeps_the_runs_engine_unless_told(tmp_path, capsys):
    """resume runs the run's own engine; --engine switches it for the rest of the run."""
    run = tmp_path / "run"
    assert main(["run", "--ticks", "20", "--run-dir", str(run), "--engine", "python"]) == 0
    capsys.readouterr()
    assert main(["resume", str(run), "--ticks", "10", "--json"]) == 0
    kept = _last_json(capsys)
    assert kept["engine"] == "python" and kept["ticks"] == 30
    assert main(["resume", str(run), "--ticks", "10", "--engine", "compiled", "--json"]) == 0
    switched = _last_json(capsys)
    assert switched["engine"] == "compiled" and switched["ticks"] == 40


# -- the command table -----------------------------------------------------------------------------


def test_every_command_in_the_table_has_help_arguments_and_a_handler():
    """Each entry names a unique command (in a known group), says what it does and can run."""
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    for command in COMMANDS:
        assert command.help and command.help == command.help.strip(), command.name
        assert callable(command.arguments) and callable(command.handler), command.name
        assert command.output in ("table", "own", "json"), command.name
        group, _, _ = command.name.rpartition(" ")
        assert group == "" or group in GROUPS, command.name


def test_help_lists_every_command_including_soak_and_the_exit_codes(capsys):
    """``lifelab --help`` lists every top-level command, soak too, and ends with the exit codes."""
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for name in {c.name.split()[0] for c in COMMANDS}:
        assert f"\n    {name} " in text or f"\n    {name}\n" in text, name
    assert "soak" in text
    codes = text[text.index("exit status:") :]
    for code in (*Exit, 130, 143):
        assert str(int(code)) in codes


@pytest.mark.parametrize("name", [c.name for c in COMMANDS] + sorted(GROUPS), ids=lambda name: name)
def test_every_command_help_exits_0(name, capsys):
    """``lifelab <command> --help`` exits 0; every command offers --json."""
    with pytest.raises(SystemExit) as info:
        main([*name.split(), "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: lifelab {name}")
    assert name in GROUPS or "--json" in text


def test_compare_help_names_the_default_metrics_of_stats():
    """The --metric help lists what stats compares by default (kept in cli for a light --help)."""
    from lifelab.lab import stats

    assert cli.COMPARE_DEFAULT_METRICS == stats.DEFAULT_METRICS


def test_compare_min_effect_defaults_by_measure(capsys):
    """--min-effect left out is None (stats picks 1 % for instruction counts, 5 % for the rest),
    and --help says both defaults; a number given is passed on as it is."""
    from lifelab.lab import stats

    parser = build_parser()
    assert parser.parse_args(["compare", "a", "b"]).min_effect is None
    assert parser.parse_args(["compare", "a", "b", "--min-effect", "0.05"]).min_effect == 0.05
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{stats.INSTRUCTIONS_MIN_EFFECT} for instruction counts" in text
    assert f"{stats.MIN_EFFECT} for the others" in text


def test_help_loads_no_heavy_library():
    """Building the parser imports no numpy, polars or numba (handlers import what they use)."""
    code = (
        "import sys\n"
        "from lifelab.cli import build_parser\n"
        "build_parser().format_help()\n"
        "print(sorted(m for m in ('numpy', 'polars', 'numba') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- exit codes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("batch_size must be >= 1"), Exit.BAD_INPUT),
        (ConfigTypeError("seed must be an int"), Exit.BAD_INPUT),
        (ValueError("bad value"), Exit.BAD_INPUT),
        (FileNotFoundError(errno.ENOENT, "no such file"), Exit.BAD_INPUT),
        (ResultsExistsError("exists; never overwritten"), Exit.BAD_INPUT),
        (ArchiveError("the segment header is damaged"), Exit.BAD_INPUT),
        (ImportError("pip install 'lifelab[cluster]'"), Exit.BAD_INPUT),
        (TrialFailed("the worker exited with status 1"), Exit.RUN_FAILED),
        (StageError("a stage raised"), Exit.RUN_FAILED),
        (OSError(errno.ENOSPC, "No space left on device"), Exit.RUN_FAILED),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(int(v)),
)
def test_exit_code_by_meaning(exc, code):
    """Bad input is 2 whatever its class; a failure while running is 3."""
    assert exit_code(exc) == code


def test_bad_usage_exits_2(capsys):
    """argparse refuses an unknown command, option or value with status 2."""
    for argv in (["nosuch"], ["run", "--ticks", "zero"], ["sweep", "--frobnicate"], ["soak", "-x"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv
    assert "invalid" in capsys.readouterr().err


def test_bad_input_files_exit_2(tmp_path, capsys):
    """A missing run directory or a file that is not a results table: status 2, one error line."""
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "lifelab inspect: error:" in capsys.readouterr().err
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    assert main(["compare", str(bad), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lifelab compare: error:") and "bad.parquet" in err
    assert main(["compare", str(tmp_path / "nothing.parquet"), str(bad)]) == 2


def test_a_bad_value_exits_2_before_any_work(capsys):
    """A value argparse accepts but LifeConfig refuses (ConfigError) is bad input: 2."""
    assert main(["run", "--ticks", "1", "--snapshot-every", "-5"]) == 2
    assert "snapshot_every" in capsys.readouterr().err


def test_a_regression_in_compare_exits_1(tmp_path, capsys):
    """compare is a CI gate: a significant slowdown exits 1, the same table exits 0."""
    base = make_results(batch_sizes=(16,), gc_modes=("default",), repeats=10)
    base = base.with_columns(pl.lit(0, dtype=base["seed"].dtype).alias("seed"))  # one cell
    slower = base.with_columns(pl.col("ticks_per_s") * 0.5)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    base.write_parquet(a)
    slower.write_parquet(b)
    assert main(["compare", str(a), str(b), "--metric", "ticks_per_s", "--json"]) == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["regressions"] == 1
    assert main(["compare", str(a), str(a), "--metric", "ticks_per_s"]) == 0


def test_a_failed_trial_exits_3(tmp_path, capsys):
    """A sweep whose trial fails (here: killed at its timeout) writes its table and exits 3."""
    out = tmp_path / "sweep.parquet"
    argv = ["sweep", "--ticks", "100", "--warmup-ticks", "10", "--repeats", "1"]
    assert main([*argv, "--timeout", "0.01", "--out", str(out), "--json"]) == 3
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["failed"] == 1 and summary["ok"] == 0
    assert "1 of 1 trials failed" in captured.err
    assert pl.read_parquet(out)["status"].to_list() == ["failed"]


# -- soak ------------------------------------------------------------------------------------------


def test_soak_is_a_lifelab_command(monkeypatch, capsys):
    """``lifelab soak`` prints its JSON report; --strict turns a missed target into status 1."""
    from lifelab.studies import soak

    seen = {}

    def fake_run_soak(**kwargs):
        seen.update(kwargs)
        return {"ok": False, "targets": {"rss_growth_pct_max": soak.RSS_TARGET_PCT}}

    monkeypatch.setattr(soak, "run_soak", fake_run_soak)
    assert main(["soak", "--sim-ticks", "10", "--samples", "3"]) == 0  # a report, not a gate
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ok"] is False
    assert seen["sim_ticks"] == 10 and seen["samples"] == 3 and seen["realtime_seconds"] == 600.0
    assert main(["soak", "--strict"]) == 1


def test_soak_help_shows_its_options(capsys):
    """``lifelab soak --help`` shows the soak options and exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(["soak", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--realtime-seconds" in out and "--strict" in out
