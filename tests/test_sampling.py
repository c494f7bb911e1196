"""tinygrad_llm/sampling.py: the repetition penalty, top-k, top-p and the draw, on NumPy arrays
(no torch; parity with Hugging Face's processors is in tests/test_generate.py)."""

import numpy as np
import pytest

from tinygrad_llm import sampling


def test_repetition_penalty_makes_seen_tokens_less_likely_whatever_their_sign():
    z = np.array([[2.0, -2.0, 1.0, -1.0]])
    out = sampling.repetition_penalty(z, [[0, 1, 1]], 2.0)
    np.testing.assert_array_equal(out, [[1.0, -4.0, 1.0, -1.0]])   # seen twice: once
    np.testing.assert_array_equal(sampling.repetition_penalty(z, [[0, 1]], 2.0,
                                                              mask=[[False, True]]),
                                  [[2.0, -4.0, 1.0, -1.0]])         # padding does not count
    assert sampling.repetition_penalty(z, [[0]], 1.0) is z
    np.testing.assert_array_equal(z, [[2.0, -2.0, 1.0, -1.0]])      # input unchanged


def test_top_k_and_top_p_filters():
    z = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    assert np.isneginf(sampling.top_k_filter(z, 2)).tolist() == [[False, False, True, True]]
    assert np.isneginf(sampling.top_k_filter(z, 9)).sum() == 0
    keep = ~np.isneginf(sampling.top_p_filter(z, 0.79))            # 0.5 + 0.3 reaches it
    assert keep.tolist() == [[True, True, False, False]]
    assert (~np.isneginf(sampling.top_p_filter(z, 0.81))).sum() == 3
    assert (~np.isneginf(sampling.top_p_filter(z, 1e-9))).sum() == 1  # the best always stays
    assert sampling.top_p_filter(z, 1.0) is z


def test_draws_follow_the_filtered_distribution():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    z = np.tile(np.log(p), (20000, 1))                              # (B, V): one draw per row
    rng = np.random.default_rng(0)
    counts = np.bincount(sampling.sample_next(z, rng), minlength=4) / len(z)
    np.testing.assert_allclose(counts, p, atol=0.015)
    counts = np.bincount(sampling.sample_next(z, rng, top_k=2), minlength=4) / len(z)
    np.testing.assert_allclose(counts, [0.625, 0.375, 0, 0], atol=0.015)
    counts = np.bincount(sampling.sample_next(z, rng, temperature=0.5), minlength=4) / len(z)
    sharp = p ** 2 / (p ** 2).sum()
    np.testing.assert_allclose(counts, sharp, atol=0.015)
    assert (sampling.sample_next(z[:3], rng, temperature=0) == 0).all()


def test_argument_checks_name_the_argument():
    for kwargs, message in ((dict(temperature=-1), "temperature"), (dict(top_k=0), "top_k"),
                            (dict(top_k=1.5), "top_k"), (dict(top_p=0), "top_p"),
                            (dict(penalty=0), "repetition_penalty")):
        with pytest.raises(ValueError, match=message):
            sampling.check_sampling_args(**kwargs)
