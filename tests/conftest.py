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
