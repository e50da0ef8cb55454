"""Shared test settings: Hypothesis runs without per-example deadlines and with modest budgets.

Deadlines are off because tests never judge wall-clock time (DESIGN §3); a slow CI machine must not
turn a correct example into a failure. Set HYPOTHESIS_PROFILE=thorough for a longer local search.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "lifelab",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=500,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "lifelab"))


def pytest_addoption(parser):
    parser.addoption(
        "--engine",
        choices=("compiled", "python"),
        default="compiled",
        help="the default LifeConfig.engine for this run (make test runs the suite on both)",
    )


def pytest_configure(config):
    """Run every test that does not name an engine on the chosen one.

    LifeConfig is keyword-only, so its defaults live in ``__init__.__kwdefaults__``; changing the
    default there (in this process only) reaches every ``LifeConfig()`` a test builds. Tests that
    start ``lifelab`` subprocesses run those on the shipped default (compiled).
    """
    engine = config.getoption("--engine")
    if engine != "compiled":
        from lifelab.config import LifeConfig

        LifeConfig.__init__.__kwdefaults__["engine"] = engine


def pytest_report_header(config):
    return f"lifelab engine: {config.getoption('--engine')}"
