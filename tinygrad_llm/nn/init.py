r"""Weight initialisation from the seeded host generator (``tinygrad_llm.manual_seed``).

Weights are drawn on the host with NumPy and then moved, so one seed gives the same weights on
every device. Each returns a float32 NumPy array.
"""

import numpy as np

from tinygrad_llm import backend

__all__ = ["uniform", "normal", "zeros", "ones"]


def uniform(shape, bound, dtype=np.float32):
    """U(-bound, bound): torch's default for Linear (bound = 1/sqrt(fan_in)) and the RNNs."""
    return backend.host_rng().uniform(-bound, bound, size=shape).astype(dtype)


def normal(shape, std=1.0, mean=0.0, dtype=np.float32):
    """N(mean, std^2): torch's default for Embedding (std 1); GPT-2 uses std 0.02."""
    return (mean + std * backend.host_rng().standard_normal(shape)).astype(dtype)


def zeros(shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype=np.float32):
    return np.ones(shape, dtype=dtype)
