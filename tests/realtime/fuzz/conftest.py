"""Hypothesis settings for the fuzz tests: the bounded, reproducible "ci" profile (fixed seed, no deadline)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,  # a fixed seed: the same examples on every run and machine
    deadline=None,  # the machine is shared; timing is not what these tests check
    max_examples=300,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
