"""Per-op overhead of tinygrad_llm's engine, side by side with PyTorch (CPU) when installed.

What it teaches: on small tensors an autograd engine's cost is bookkeeping (making a Function,
recording the graph, sorting it, accumulating gradients), not arithmetic. Three measurements:

1. per-op forward+backward time in microseconds on small float32 tensors, for every primitive and
   fused op, next to torch (ratio = ours / torch; below 1 means faster);
2. the graph machinery alone: ops per second for a long chain of tiny adds, forward and backward;
3. one training step of a small MLP (forward, cross-entropy, backward, SGD update).

Run:  python benchmarks/bench_ops.py            (about a minute; --quick for a fast look)
Results and the machine's load are recorded in docs/performance.md.
"""

import argparse
import os
import platform
import statistics
import time

# Single-threaded BLAS on both sides by default: the 2-core machine is shared, and a spinning
# thread pool measures the neighbours, not the engine. Set OMP_NUM_THREADS to override.
THREADS = int(os.environ.setdefault("OMP_NUM_THREADS", "1"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402 - after the thread settings, which numpy reads on import

import tinygrad_llm as tg  # noqa: E402
import tinygrad_llm.nn.functional as F  # noqa: E402
from tinygrad_llm import Tensor  # noqa: E402

try:
    import torch
    torch.set_num_threads(THREADS)
except ImportError:  # torch is optional: without it only our numbers are printed
    torch = None


def timeit(fn, iters, repeats=5):
    """Median over ``repeats`` runs of the mean time per call, in microseconds."""
    fn()  # warm up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        runs.append((time.perf_counter() - t0) / iters * 1e6)
    return statistics.median(runs)


def _op_cases(n):
    """name -> (function of our tensors, function of torch tensors, input shapes).

    Each function takes the float inputs and returns a tensor that is then backpropagated.
    """
    rng = np.random.default_rng(0)
    ids = rng.integers(0, n, (n,))
    targets = rng.integers(0, n, (n,))
    tt = torch.tensor if torch else None
    tf = torch.nn.functional if torch else None
    sq, vec = (n, n), (n,)
    return {
        "add": (lambda a, b: a + b, lambda a, b: a + b, [sq, sq]),
        "mul (broadcast)": (lambda a, b: a * b, lambda a, b: a * b, [sq, vec]),
        "div": (lambda a, b: a / b, lambda a, b: a / b, [sq, sq]),
        "pow (scalar)": (lambda a: a ** 2, lambda a: a ** 2, [sq]),
        "exp": (lambda a: a.exp(), lambda a: a.exp(), [sq]),
        "tanh": (lambda a: a.tanh(), lambda a: a.tanh(), [sq]),
        "sigmoid": (lambda a: a.sigmoid(), lambda a: a.sigmoid(), [sq]),
        "relu": (lambda a: a.relu(), lambda a: a.relu(), [sq]),
        "sum (axis)": (lambda a: a.sum(axis=1), lambda a: a.sum(1), [sq]),
        "mean": (lambda a: a.mean(), lambda a: a.mean(), [sq]),
        "max (axis)": (lambda a: a.max(axis=1), lambda a: a.amax(1), [sq]),
        "var (axis)": (lambda a: a.var(axis=1), lambda a: a.var(1, unbiased=False), [sq]),
        "reshape": (lambda a: a.reshape(-1), lambda a: a.reshape(-1), [sq]),
        "transpose": (lambda a: a.T, lambda a: a.T, [sq]),
        "getitem (slice)": (lambda a: a[1:], lambda a: a[1:], [sq]),
        "getitem (int array)": (lambda a: a[ids], lambda a: a[tt(ids)] if torch else None, [sq]),
        "concatenate": (lambda a, b: tg.concatenate([a, b]), lambda a, b: torch.cat([a, b]),
                        [sq, sq]),
        "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [sq, sq]),
        "softmax": (F.softmax, lambda a: tf.softmax(a, -1), [sq]),
        "log_softmax": (F.log_softmax, lambda a: tf.log_softmax(a, -1), [sq]),
        "cross_entropy": (lambda a: F.cross_entropy(a, targets),
                          lambda a: tf.cross_entropy(a, tt(targets)), [sq]),
        "layer_norm": (lambda a, w, b: F.layer_norm(a, w, b),
                       lambda a, w, b: tf.layer_norm(a, (n,), w, b), [sq, vec, vec]),
        "gelu": (F.gelu, tf.gelu if torch else None, [sq]),
        "gelu (tanh)": (lambda a: F.gelu(a, "tanh"), lambda a: tf.gelu(a, approximate="tanh"),
                        [sq]),
        "linear": (F.linear, tf.linear if torch else None, [sq, sq, vec]),
        "embedding": (lambda w: F.embedding(ids, w), lambda w: tf.embedding(tt(ids), w), [sq]),
        "dropout": (lambda a: F.dropout(a, 0.1), lambda a: tf.dropout(a, 0.1), [sq]),
        "bce_with_logits": (lambda a: F.binary_cross_entropy_with_logits(a, np.ones((n, n))),
                            lambda a: tf.binary_cross_entropy_with_logits(
                                a, torch.ones(n, n)), [sq]),
    }


def bench_op(ours, theirs, shapes, iters):
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0.5, 1.5, s).astype(np.float32) for s in shapes]
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    out = ours(*xs)
    g = np.ones(out.shape, np.float32)

    def step():
        ours(*xs).backward(g)
    ours_fwd = timeit(lambda: ours(*xs), iters)          # forward, graph recorded
    ours_us = timeit(step, iters)
    if torch is None or theirs is None:
        return ours_fwd, None, ours_us, None
    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    tg_ = torch.ones(tuple(out.shape))

    def tstep():
        theirs(*txs).backward(tg_)
    return ours_fwd, timeit(lambda: theirs(*txs), iters), ours_us, timeit(tstep, iters)


def bench_chain(length, repeats=5):
    """Ops per second of the graph machinery: a chain of tiny adds, forward then backward."""
    x = Tensor(np.ones(1, np.float32), requires_grad=True)
    fwd, bwd = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        y = x
        for _ in range(length):
            y = y + 1.0
        t1 = time.perf_counter()
        y.backward(np.ones(1, np.float32))
        t2 = time.perf_counter()
        fwd.append(length / (t1 - t0))
        bwd.append(length / (t2 - t1))
    result = {"forward ops/s": statistics.median(fwd), "backward ops/s": statistics.median(bwd)}
    if torch is not None:
        tx = torch.ones(1, requires_grad=True)
        tfwd, tbwd = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            y = tx
            for _ in range(length):
                y = y + 1.0
            t1 = time.perf_counter()
            y.backward(torch.ones(1))
            t2 = time.perf_counter()
            tfwd.append(length / (t1 - t0))
            tbwd.append(length / (t2 - t1))
        result["torch forward ops/s"] = statistics.median(tfwd)
        result["torch backward ops/s"] = statistics.median(tbwd)
    return result


def bench_mlp(batch, dims, iters):
    """One SGD step of an MLP dims[0] -> ... -> dims[-1] with GELU and cross-entropy (ms)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, dims[0])).astype(np.float32)
    y = rng.integers(0, dims[-1], (batch,))
    shapes = list(zip(dims[1:], dims[:-1]))
    ws = [(rng.standard_normal(s) / np.sqrt(s[1])).astype(np.float32) for s in shapes]
    params = []
    for w in ws:
        params += [Tensor(w.copy(), requires_grad=True),
                   Tensor(np.zeros(w.shape[0], np.float32), requires_grad=True)]
    xt, yt = Tensor(x), Tensor(y)

    def step():
        h = xt
        for i in range(0, len(params), 2):
            h = F.linear(h, params[i], params[i + 1])
            if i + 2 < len(params):
                h = F.gelu(h)
        loss = F.cross_entropy(h, yt)
        for p in params:
            p.grad = None
        loss.backward()
        with tg.no_grad():
            for p in params:
                p.data -= 0.01 * p.grad.data
    ours = timeit(step, iters) / 1000
    if torch is None:
        return ours, None
    tparams = []
    for w in ws:
        tparams += [torch.tensor(w.copy(), requires_grad=True),
                    torch.zeros(w.shape[0], requires_grad=True)]
    tx, ty = torch.tensor(x), torch.tensor(y)
    tf = torch.nn.functional

    def tstep():
        h = tx
        for i in range(0, len(tparams), 2):
            h = tf.linear(h, tparams[i], tparams[i + 1])
            if i + 2 < len(tparams):
                h = tf.gelu(h)
        loss = tf.cross_entropy(h, ty)
        for p in tparams:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in tparams:
                p -= 0.01 * p.grad
    return ours, timeit(tstep, iters) / 1000


def _ratio(a, b):
    return f"{a / b:6.2f}" if b else "     -"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="side of the square test tensors")
    parser.add_argument("--iters", type=int, default=300, help="calls per timing run")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    iters = 50 if args.quick else args.iters

    print(f"# tinygrad_llm {tg.__version__}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'not installed'}, "
          f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    if torch is not None:
        print(f"# torch threads: {torch.get_num_threads()}")

    print(f"\n## Per op, float32 ({args.n}, {args.n}) inputs, microseconds per call")
    print("(forward: graph recorded, no backward; fwd+bwd: forward then one backward() call)\n")
    print(f"| {'op':<20} | {'fwd ours':>8} | {'fwd torch':>9} | {'ratio':>6} "
          f"| {'f+b ours':>8} | {'f+b torch':>9} | {'ratio':>6} |")
    print(f"|{'-' * 22}|{'-' * 9}:|{'-' * 10}:|{'-' * 7}:|{'-' * 9}:|{'-' * 10}:|{'-' * 7}:|")
    fwd_ratios, ratios = [], []
    for name, (ours, theirs, shapes) in _op_cases(args.n).items():
        fwd, tfwd, both, tboth = bench_op(ours, theirs, shapes, iters)
        if tboth:
            fwd_ratios.append(fwd / tfwd)
            ratios.append(both / tboth)

        def col(v, width):
            return f"{v:{width}.1f}" if v else " " * (width - 1) + "-"
        print(f"| {name:<20} | {fwd:8.1f} | {col(tfwd, 9)} | {_ratio(fwd, tfwd)} "
              f"| {both:8.1f} | {col(tboth, 9)} | {_ratio(both, tboth)} |")
    if ratios:
        def geo(r):
            return float(np.exp(np.mean(np.log(r))))
        print(f"\ngeometric mean ratio (ours / torch): forward {geo(fwd_ratios):.2f}, "
              f"forward+backward {geo(ratios):.2f}")

    print("\n## Graph machinery: a chain of 2,000 tiny adds")
    for k, v in bench_chain(2000, repeats=3 if args.quick else 5).items():
        print(f"- {k}: {v:,.0f}")

    print("\n## MLP training step (SGD), milliseconds")
    print(f"| {'model':<32} | {'ours':>8} | {'torch':>8} | {'ratio':>6} |")
    print(f"|{'-' * 34}|{'-' * 10}:|{'-' * 10}:|{'-' * 8}:|")
    for batch, dims in ((64, (64, 128, 10)), (256, (784, 256, 256, 10))):
        ours_ms, torch_ms = bench_mlp(batch, dims, max(5, iters // 10))
        label = f"batch {batch}, {'-'.join(map(str, dims))}"
        torch_col = f"{torch_ms:8.2f}" if torch_ms else "       -"
        print(f"| {label:<32} | {ours_ms:8.2f} | {torch_col} | {_ratio(ours_ms, torch_ms)} |")


if __name__ == "__main__":
    main()
