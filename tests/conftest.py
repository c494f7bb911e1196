"""Shared test set-up: hypothesis profiles, the device fixture, the random seed, and hiding the
reference packages.

Profiles: ``ci`` (the default: quick, for the 2-core CI machine) and ``thorough`` (many more
examples, by hand): ``HYPOTHESIS_PROFILE=thorough python -m pytest``.

Devices: a test that takes the ``device`` fixture runs twice, on "cpu" (NumPy) and on "cuda",
where "cuda" is the strict NumPy-backed CuPy stand-in of tests/fake_cupy.py, installed only for
that test. No GPU code runs in this suite; benchmarks/gpu_check.py is the check on a real GPU.

Without the references: ``TINYGRAD_LLM_HIDE=torch,tiktoken python -m pytest`` makes those
packages unimportable for this run, as on a machine without them. Only their parity tests may
skip then; every other test must still run (.ci/run does this for torch).
"""

import os
import sys

import fake_cupy
import numpy as np
import pytest
from hypothesis import HealthCheck, settings


class _Hidden:
    """An import hook that finds none of the packages named in TINYGRAD_LLM_HIDE."""

    names = {n.strip() for n in os.environ.get("TINYGRAD_LLM_HIDE", "").split(",") if n.strip()}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in cls.names:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by TINYGRAD_LLM_HIDE)",
                                      name=name)
        return None


if _Hidden.names:
    sys.meta_path.insert(0, _Hidden)

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          suppress_health_check=_HEALTH)
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=_HEALTH)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config):
    hidden = os.environ.get("TINYGRAD_LLM_HIDE")
    return ("devices: 'cpu' is NumPy; 'cuda' is tests/fake_cupy.py, a strict NumPy stand-in for "
            "CuPy: no GPU code is being run" + (f"; hidden: {hidden}" if hidden else ""))


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
