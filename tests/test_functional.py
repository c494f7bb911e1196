"""tinygrad_llm/nn/functional.py: the wrappers and the unfused losses (binary_cross_entropy,
mse_loss). The fused ops behind F are tested in tests/test_ops_nn.py. On "cpu" and the CuPy
stand-in "cuda".
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_llm.nn.functional as F
from tinygrad_llm import Tensor
from tinygrad_llm.testing import gradcheck
from tinygrad_llm.testing import strategies as tst


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(shape=tst.shapes(), data=st.data())
def test_mse_loss(device, reduction, shape, data):
    a = data.draw(tst.float_arrays(shape))
    b = data.draw(tst.float_arrays(shape))
    x = Tensor(a, requires_grad=True, device=device)
    t = Tensor(b, requires_grad=True, device=device)
    sq = (a - b) ** 2
    expected = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    np.testing.assert_allclose(F.mse_loss(x, t, reduction).numpy(), expected, rtol=1e-12)
    assert gradcheck(lambda x, t: F.mse_loss(x, t, reduction), [x, t])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(shape=tst.shapes(), data=st.data())
def test_binary_cross_entropy(device, reduction, shape, data):
    p = data.draw(tst.float_arrays(shape, low=0.05, high=0.95))
    t = data.draw(tst.float_arrays(shape, low=0, high=1))
    x = Tensor(p, requires_grad=True, device=device)
    loss = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    expected = {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]
    y = F.binary_cross_entropy(x, t, reduction)      # a NumPy target follows x's device
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10)
    assert gradcheck(lambda x: F.binary_cross_entropy(x, t, reduction), [x])


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_binary_cross_entropy_clamps_the_log_like_torch(device):
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True, device=device)
    y = F.binary_cross_entropy(x, np.array([1.0, 0.0]), reduction="none")
    np.testing.assert_array_equal(y.numpy(), [100.0, 100.0])


def test_unfused_losses_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p, t = rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3))
    for ours, theirs in ((F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy),
                         (F.mse_loss, torch.nn.functional.mse_loss)):
        x, tx = Tensor(p, requires_grad=True), torch.tensor(p, requires_grad=True)
        y, ty = ours(x, t), theirs(tx, torch.tensor(t))
        y.backward()
        ty.backward()
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_activation_wrappers(device):
    a = np.array([-1.0, 0.5])
    x = Tensor(a, device=device)
    np.testing.assert_allclose(F.relu(x).numpy(), [0, 0.5])
    np.testing.assert_allclose(F.tanh(x).numpy(), np.tanh(a))
    np.testing.assert_allclose(F.sigmoid(x).numpy(), 1 / (1 + np.exp(-a)))


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_bad_arguments(device):
    x = Tensor(np.ones(3), requires_grad=True, device=device)
    for f in (F.mse_loss, F.binary_cross_entropy):
        with pytest.raises(ValueError, match=r"input \(3,\) and target \(2,\) must have the same"):
            f(x, np.ones(2))
        with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
            f(x, np.ones(3) * 0.5, reduction="avg")
    with pytest.raises(TypeError, match="mse_loss: target must be a Tensor or an array, got "
                                        "object"):
        F.mse_loss(x, object())
