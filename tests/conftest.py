"""Shared test set-up: hypothesis profiles, the device fixture, and the seed.

Profiles: ``ci`` (the default: quick, for the 2-core CI machine) and ``thorough`` (many more
examples, by hand): ``HYPOTHESIS_PROFILE=thorough python -m pytest``.

Devices: a test that takes the ``device`` fixture runs twice, on "cpu" (NumPy) and on "cuda",
where "cuda" is the strict NumPy-backed CuPy stand-in of tests/fake_cupy.py, installed only for
that test. No GPU code runs in this suite; benchmarks/gpu_check.py is the check on a real GPU.
"""

import os

import fake_cupy
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          suppress_health_check=_HEALTH)
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=_HEALTH)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config):
    return ("devices: 'cpu' is NumPy; 'cuda' is tests/fake_cupy.py, a strict NumPy stand-in for "
            "CuPy: no GPU code is being run")


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same seed."""
    import tinygrad_llm
    tinygrad_llm.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def fake_cuda():
    """The fake ``cupy`` module, installed in ``sys.modules`` for this test only."""
    module = fake_cupy.install()
    try:
        yield module
    finally:
        fake_cupy.uninstall()


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """Run the test on "cpu" and on the CuPy stand-in "cuda" (one suite, parametrised)."""
    if request.param == "cpu":
        yield "cpu"
        return
    fake_cupy.install()
    try:
        yield "cuda"
    finally:
        fake_cupy.uninstall()
