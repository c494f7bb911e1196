"""tinygrad_llm/profiler.py: it counts every op's forward and backward, and switches off after."""

import numpy as np

from tinygrad_llm import Tensor, autograd


def test_profiler_counts_each_op_and_averages_per_step():
    from tinygrad_llm import profiler  # noqa: PLC0415
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with profiler.profile() as prof:
        for _ in range(2):
            ((x * 2).sum()).backward()
    calls = {(op, phase): n for op, phase, n, _ in prof.rows()}
    assert calls[("Mul", "forward")] == 2 and calls[("Mul", "backward")] == 2
    assert calls[("Sum", "backward")] == 2
    table = prof.table(per=2)
    assert "ms/step" in table and "Mul" in table
    assert autograd._profile_hook is None            # off again: the engine pays nothing
