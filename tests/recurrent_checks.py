"""A helper the recurrent tests share: outputs and gradients of a Function with several outputs."""

from tinygrad_llm import Tensor


def values_and_grads(fn, arrays, upstreams, used):
    """Run ``fn`` on tensors of ``arrays``, backward from sum_k (y_k * upstream_k) over the
    outputs ``used``; return every output and every input's gradient."""
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    ys = fn(*ts)
    ys = ys if isinstance(ys, tuple) else (ys,)
    loss = None
    for k in used:
        term = (ys[k] * Tensor(upstreams[k])).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    return [y.numpy() for y in ys] + [t.grad.numpy() for t in ts]
