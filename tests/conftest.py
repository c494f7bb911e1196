"""Shared test set-up: hypothesis profiles, the device fixture, and the seed.

Profiles: ``ci`` (the default: quick, for the 2-core CI machine) and ``thorough`` (many more
examples, by hand): ``HYPOTHESIS_PROFILE=thorough python -m pytest``.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=20, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same seed."""
    import tinygrad_llm
    tinygrad_llm.manual_seed(0)
    np.random.seed(0)
    yield
