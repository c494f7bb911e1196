"""data.mask_tokens: BERT's 15% masking with the 80/10/10 rule."""
import numpy as np
import pytest

from tinygrad_llm.data import mask_tokens

V, MASK, SPECIAL = 1000, 4, (0, 1, 2, 3, 4)   # [PAD] [UNK] [CLS] [SEP] [MASK]


def _ids(rng, b=400, t=250):
    ids = rng.integers(5, V, size=(b, t))
    ids[:, 0], ids[:, -1] = 2, 3                  # [CLS] ... [SEP]
    ids[::3, -40:] = 0                             # padding on every third row
    return ids


def test_labels_and_untouched_positions():
    rng = np.random.default_rng(0)
    ids = _ids(rng)
    before = ids.copy()
    inputs, labels = mask_tokens(ids, np.random.default_rng(1), V, MASK, SPECIAL)
    assert inputs.dtype == labels.dtype == np.int64 and inputs.shape == labels.shape == ids.shape
    np.testing.assert_array_equal(ids, before)                        # the input is not modified
    chosen = labels != -100
    np.testing.assert_array_equal(labels[chosen], ids[chosen])       # the original id
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])     # the rest untouched
    assert not chosen[np.isin(ids, SPECIAL)].any()                    # specials never chosen


def test_the_15_percent_and_the_80_10_10_rule():
    rng = np.random.default_rng(0)
    ids = _ids(rng)
    inputs, labels = mask_tokens(ids, np.random.default_rng(2), V, MASK, SPECIAL)
    chosen = labels != -100
    n = chosen.sum()
    assert abs(n / (~np.isin(ids, SPECIAL)).sum() - 0.15) < 0.005    # ~80,000 candidates
    masked = (inputs == MASK) & chosen
    kept = (inputs == ids) & chosen
    replaced = chosen & ~masked & ~kept
    assert abs(masked.sum() / n - 0.8) < 0.01
    # A random token equals the original 1 time in 995; the "unchanged" 10% absorb those.
    assert abs(kept.sum() / n - 0.1) < 0.01 and abs(replaced.sum() / n - 0.1) < 0.01
    assert not np.isin(inputs[replaced], SPECIAL).any() and inputs[replaced].max() < V


def test_deterministic_for_a_seed():
    ids = _ids(np.random.default_rng(0), 8, 16)
    a = mask_tokens(ids, np.random.default_rng(5), V, MASK, SPECIAL)
    b = mask_tokens(ids, np.random.default_rng(5), V, MASK, SPECIAL)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="integers"):
        mask_tokens(np.zeros((2, 3)), rng, V, MASK, SPECIAL)
    with pytest.raises(ValueError, match="mask_prob"):
        mask_tokens(np.zeros((2, 3), dtype=int), rng, V, MASK, SPECIAL, mask_prob=1.5)
    with pytest.raises(ValueError, match="special"):
        mask_tokens(np.zeros((2, 3), dtype=int), rng, 5, MASK, SPECIAL)
