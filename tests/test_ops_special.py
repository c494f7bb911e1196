"""tinygrad_llm/ops/special.py: the float32 normal CDF and density that the float32 GELU runs,
against math.erfc and the exact density."""

import math

import numpy as np

from tinygrad_llm.ops.special import normal_cdf_and_pdf


def test_float32_normal_cdf_and_pdf_against_math():
    a = np.concatenate([np.linspace(-13, 13, 20001), [0.0, -1e-30, 1e-30]]).astype(np.float32)
    cdf, pdf = normal_cdf_and_pdf(a)
    assert cdf.dtype == np.float32 and pdf.dtype == np.float32
    a64 = a.astype(np.float64)
    exact_cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in a64])
    exact_pdf = np.exp(-0.5 * a64 * a64) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(cdf, exact_cdf, rtol=0, atol=2.5e-7)
    tail = (a < 0) & (exact_cdf > 1e-37)                       # relative in the negative tail
    np.testing.assert_allclose(cdf[tail], exact_cdf[tail], rtol=1e-5)
    np.testing.assert_allclose(pdf, exact_pdf, rtol=1e-5, atol=1e-40)
    assert np.all(np.diff(cdf[:20001]) >= 0)                   # monotone on the grid
