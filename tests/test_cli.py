"""The command line's --engine option: parsed, handed to LifeConfig, reported in the summary."""

from __future__ import annotations

import json

import pytest

from lifelab._argtypes import ENGINES
from lifelab.cli import build_parser, main
from lifelab.config import LifeConfig
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
