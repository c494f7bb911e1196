r"""Training health: the numbers that tell a learning run is sick before the loss does.

For one optimizer step, ``HealthMonitor`` measures

    grad_norm[layer]     ||g||, the L2 norm of the gradients of the layer's parameters (a layer
                         is a parameter's module: ``transformer.h.0.attn.c_attn`` for
                         ``transformer.h.0.attn.c_attn.weight``), before clipping
    grad_norm_total      sqrt(sum over layers of grad_norm^2): the global norm that
                         ``optim.clip_grad_norm_`` compares with max_norm
    clipped              grad_norm_total > max_norm (the step was scaled down)
    update_ratio[layer]  ||W_after - W_before|| / ||W_before||, the size of the step relative to
                         the weights; around 1e-3 is healthy for Adam (much smaller: the layer
                         hardly learns; much larger: it is being rewritten every step)
    gelu_tails           for the l-th GELU called in the forward (block l's MLP in a GPT), the
                         fraction of its inputs x with x < -tail ("below": the flat tail, where
                         gelu(x) ~ 0 and its slope |dy/dx| < 0.012 for tail = 3, so the unit passes
                         almost no gradient) and with x > tail ("above": where gelu(x) ~ x, the
                         nonlinearity unused). tail = 3 by default.

The GELU inputs are read through ``viz.watch_forward``, the engine's hook on each Function's
forward: the arrays the model's own GELU Function was given, with no second GELU beside it.

    monitor = HealthMonitor(model.named_parameters(), max_norm=1.0)
    with monitor.watch():                 # around each forward whose GELUs should count
        loss = model(x, y)[1]
    loss.backward()
    monitor.gradients()                   # the final gradients, before clipping
    clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    row = monitor.report()                # after the step: a dict of plain numbers (JSON)
"""

import contextlib
import math

from tinygrad_llm import backend
from tinygrad_llm.ops.nn import GELU
from tinygrad_llm.viz import watch_forward

__all__ = ["HealthMonitor", "layer_of"]


def layer_of(name):
    r"""The layer of a parameter name: its module's name (the name without its last part)."""
    return name.rpartition(".")[0] or name


def _sum_squares(a):
    xp = backend.get_xp(a)
    return xp.sum(xp.square(a, dtype=xp.float64))                          # () on a's device


class HealthMonitor:
    r"""Measures one step's training health; see the module docstring.

    ``named_parameters``: (name, parameter) pairs, as ``Module.named_parameters()`` gives them
    (a tied parameter once). ``max_norm``: the clipping threshold (None or 0: no clipping).
    ``tail``: the GELU tail threshold (> 0).
    """

    def __init__(self, named_parameters, max_norm=None, tail=3.0):
        if not tail > 0:
            raise ValueError(f"HealthMonitor: tail must be > 0, got {tail!r}")
        self.params = list(named_parameters)
        if not self.params:
            raise ValueError("HealthMonitor: named_parameters is empty")
        self.max_norm, self.tail = max_norm, float(tail)
        self._reset()

    def _reset(self):
        self._gelu = []            # per GELU call index: [count below -tail, above tail, total]
        self._grads = None         # {layer: sum of squares} once gradients() ran
        self._before = None        # {name: a copy of the weights before the step}

    @contextlib.contextmanager
    def watch(self):
        r"""Count the inputs of every GELU Function run inside the context; the call index
        restarts at 0 on each entry, so micro-batches add up per layer."""
        calls = 0

        def count(fn, xs, kwargs):
            nonlocal calls
            xp = backend.get_xp(xs[0])
            while len(self._gelu) <= calls:
                self._gelu.append([0, 0, 0])
            entry = self._gelu[calls]
            entry[0] += int(xp.count_nonzero(xs[0] < -self.tail))
            entry[1] += int(xp.count_nonzero(xs[0] > self.tail))
            entry[2] += int(xs[0].size)
            calls += 1

        with watch_forward(GELU, count):
            yield self

    def gradients(self):
        r"""Take the per-layer gradient norms (call it when the gradients are final: after
        backward and any all-reduce, before clipping) and keep a copy of the weights."""
        sums, before = {}, {}
        for name, p in self.params:
            before[name] = p.data.copy()
            if p.grad is None:
                continue
            g = getattr(p.grad, "data", p.grad)
            if not backend.is_array(g):
                raise TypeError(f"HealthMonitor.gradients: the gradient of {name} is a "
                                f"{type(g).__name__}, not an array")
            layer = layer_of(name)
            sums[layer] = sums.get(layer, 0.0) + _sum_squares(g)
        self._grads = {k: float(v) for k, v in sums.items()}              # one read per layer
        self._before = before

    def report(self):
        r"""The step's health as a dict of plain numbers (call it after the optimizer step);
        the monitor is then ready for another step."""
        if self._grads is None:
            raise RuntimeError("HealthMonitor.report: call gradients() before the step first")
        total = math.sqrt(sum(self._grads.values()))
        moved, size = {}, {}
        for name, p in self.params:
            layer = layer_of(name)
            old = self._before[name]
            moved[layer] = moved.get(layer, 0.0) + float(_sum_squares(p.data - old))
            size[layer] = size.get(layer, 0.0) + float(_sum_squares(old))
        row = {
            "grad_norm": {k: math.sqrt(v) for k, v in self._grads.items()},
            "grad_norm_total": total,
            "max_norm": self.max_norm,
            "clipped": bool(self.max_norm) and total > self.max_norm,
            "update_ratio": {k: math.sqrt(moved[k] / size[k]) if size[k] > 0 else None
                             for k in moved},
            "gelu_tail": self.tail,
            "gelu_tails": {"below": [b / n if n else None for b, _, n in self._gelu],
                           "above": [a / n if n else None for _, a, n in self._gelu]},
        }
        self._reset()
        return row
