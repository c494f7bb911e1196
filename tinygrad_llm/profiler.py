r"""Where does the time go? A profiler that times every Function's forward and backward.

    from tinygrad_llm import profiler
    with profiler.profile() as prof:
        loss = model(x, y)[1]
        loss.backward()
    print(prof.table())

While a ``profile`` is active, ``Function.apply`` and ``Tensor.backward`` call a hook that times
each forward and backward and adds it to a per-op total. When no profile is active the hook is
``None`` and the engine pays only one ``is None`` test per op.

On a GPU, kernels run asynchronously, so the times would measure launches, not work; pass
``sync=True`` to synchronise after every op (slower, but honest per-op GPU times).
"""

import time
from collections import defaultdict

from tinygrad_llm import autograd, backend

__all__ = ["profile", "Profile"]


class Profile:
    """Per-op totals: {(op name, 'forward' | 'backward'): [calls, seconds]}."""

    def __init__(self, sync=False):
        self.sync = sync
        self.totals = defaultdict(lambda: [0, 0.0])
        self._previous = None

    def _hook(self, name, phase, fn, args, kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        if self.sync:
            arrays = out if isinstance(out, tuple) else (out,)
            for a in arrays:
                if a is not None and backend.device_of(a) == "cuda":
                    backend.synchronize("cuda")
                    break
        entry = self.totals[(name, phase)]
        entry[0] += 1
        entry[1] += time.perf_counter() - start
        return out

    def __enter__(self):
        self._previous = autograd._profile_hook
        autograd._profile_hook = self._hook
        return self

    def __exit__(self, *exc):
        autograd._profile_hook = self._previous

    def total_seconds(self):
        return sum(s for _, s in self.totals.values())

    def rows(self):
        """[(op, phase, calls, seconds)], slowest first."""
        rows = [(op, phase, n, s) for (op, phase), (n, s) in self.totals.items()]
        return sorted(rows, key=lambda r: -r[3])

    def table(self, top=25, per=1):
        """A text table of the slowest ops, with each one's share of the profiled time. With
        ``per=n`` (n profiled steps), calls and milliseconds are per step (averages)."""
        total = self.total_seconds() or 1.0
        unit = "ms/step" if per != 1 else "total ms"
        lines = [f"{'op':<22}{'phase':<10}{'calls':>8}{unit:>12}{'share':>8}"]
        for op, phase, n, s in self.rows()[:top]:
            lines.append(f"{op:<22}{phase:<10}{n / per:>8.0f}{s * 1e3 / per:>12.2f}"
                         f"{s / total:>8.1%}")
        lines.append(f"{'all ops':<40}{total * 1e3 / per:>12.2f}")
        return "\n".join(lines)


def profile(sync=False):
    """A context that times every op run inside it; see the module docstring."""
    return Profile(sync=sync)
