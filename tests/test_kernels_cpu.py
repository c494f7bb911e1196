"""tinygrad_llm/kernels/cpu.py: each fast CPU algorithm equals the plain array call it replaces
(its reference), on the CPU and on the CuPy stand-in where it takes the plain path."""

import numpy as np
import pytest

from tinygrad_llm import Tensor, backend
from tinygrad_llm.kernels import cpu


def test_blockwise_with_several_outputs(device):
    n = 2 * cpu.BLOCK + 123                                 # three blocks, the last short
    a = np.random.default_rng(0).standard_normal((n // 3, 3))

    def f(x):
        xp = backend.get_xp(x)
        return x * 2, xp.exp(x)
    got = cpu.blockwise(f, Tensor(a, device=device).data)
    assert isinstance(got, tuple) and len(got) == 2
    for g, expected in zip(got, f(a)):
        assert g.shape == a.shape and backend.device_of(g) == device
        np.testing.assert_array_equal(Tensor(g).numpy(), expected)


@pytest.mark.parametrize("threads", [None, 2, 3])
def test_blockwise_on_threads_gives_the_same_bits(monkeypatch, threads):
    """Runs of blocks on a pool of threads (the default above THREADED elements): the same bits
    as one thread and as the whole-array call, the last run and the last block short."""
    monkeypatch.setattr(cpu, "THREADED", cpu.BLOCK)
    n = (2 * cpu.RUN_BLOCKS + 3) * cpu.BLOCK + 77
    a = np.random.default_rng(2).standard_normal(n).astype(np.float32).reshape(-1, 1)

    def f(x):
        y = np.exp(-x * x)
        return y * x, y + 1
    one = cpu.blockwise(f, a, threads=1)
    got = cpu.blockwise(f, a, threads=threads)
    for g, o, expected in zip(got, one, f(a)):
        np.testing.assert_array_equal(g, o)
        np.testing.assert_array_equal(g, expected)


@pytest.mark.parametrize("ids", [[3, 0, 2, 1], [0, 2, 2, -1, 0, 2, 3, 3], []])
def test_scatter_add_distinct_repeated_and_empty_ids(ids):
    rng = np.random.default_rng(1)
    ids = np.array(ids, dtype=np.int64)
    values = rng.standard_normal((len(ids), 5)).astype(np.float32)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    expected = a.copy()
    np.add.at(expected, ids, values)
    np.testing.assert_allclose(cpu.scatter_add(a, ids, values), expected, rtol=1e-6)


@pytest.mark.parametrize("vocab, n", [(4, 3), (65, 768), (5000, 3000), (50, 40)])
@pytest.mark.parametrize("scale", [1.0, -0.25])
def test_scatter_add_each_path_equals_add_at(vocab, n, scale):
    """All ids distinct, ids repeating often (reduceat), Zipf-like ids (rank by rank, with a few
    heavy ones), a table with every id twice: each equals np.add.at."""
    rng = np.random.default_rng(vocab)
    if vocab == 4:
        ids = rng.permutation(vocab)[:n]                                 # distinct
    elif vocab == 50:
        ids = np.repeat(np.arange(20), 2)                                # each twice
    else:
        ids = np.minimum(rng.zipf(1.3, n) - 1, vocab - 1)
    values = rng.standard_normal((len(ids), 6))
    table = rng.standard_normal((vocab, 6))
    expected = table.copy()
    np.add.at(expected, ids, scale * values)
    got = cpu.scatter_add(table, ids, values, scale=scale)
    assert got is table
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_scatter_add_with_any_other_index_falls_back_to_add_at(device):
    a = np.zeros((3, 4))
    index = (np.array([0, 0, 2]), np.array([1, 1, 3]))                  # a tuple of axes
    values = np.array([1.0, 2.0, 3.0])
    got = cpu.scatter_add(Tensor(a, device=device).data, index, values if device == "cpu"
                          else backend.to_device(values, device))
    expected = np.zeros((3, 4))
    expected[0, 1], expected[2, 3] = 3.0, 3.0
    np.testing.assert_array_equal(backend.to_numpy(got), expected)


def test_row_means_and_column_sums_equal_numpy(device):
    x = np.random.default_rng(3).standard_normal((7, 5))
    d = Tensor(x, device=device).data
    np.testing.assert_allclose(backend.to_numpy(cpu.row_means(d)), x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(cpu.column_sums(d)), x.sum(axis=0), rtol=1e-12)
