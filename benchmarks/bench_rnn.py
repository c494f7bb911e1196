r"""LSTM forward + backward against torch.nn.LSTM, side by side on the CPU.

The target configuration: batch 32, 64 steps, 256 -> 256, 2 layers, float32. Both frameworks run
the same weights on the same input, alternating (ours, torch, ours, ...) so that load from other
processes hits both alike; we report the median of each and the ratio ours / torch.

    python benchmarks/bench_rnn.py [--repeats 15] [--threads N] [--mode lstm|gru|rnn]
    python benchmarks/bench_rnn.py --vanishing      # the experiment of docs/rnn.md (no torch)

Results go in docs/performance.md. Timings on a shared machine are noisy: read the ratio, and
note the load (``uptime``) next to it.
"""

import argparse
import functools
import json
import os
import statistics
import time

import numpy as np

import tinygrad_llm
from tinygrad_llm import Tensor
from tinygrad_llm.nn.gru import GRU
from tinygrad_llm.nn.lstm import LSTM
from tinygrad_llm.nn.rnn import RNN


def vanishing(steps=100, batch=16, size=32, seed=0, distances=(0, 5, 10, 20, 40, 60, 99)):
    r"""How much of a gradient at the last output reaches the input k steps earlier.

    Loss L = sum(out[T-1] * g) with a random g; we print ||dL/dx_{T-1-k}|| (the norm over the
    (B, I) slice, averaged per sequence) for RNN (tanh), LSTM and GRU with torch's default
    initialisation, float64, same input for all; and the LSTM with b_f added to the forget
    gate's bias (f_t nearer 1: the cell path dc_{t-1} = f_t (dc_t + dh_t o_t (1 - tanh^2 c_t))
    decays more slowly)."""
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((steps, batch, size))                        # (T, B, I)
    g = rng.standard_normal((batch, size))                                  # (B, H)
    rows = {}
    for name, cls, forget_bias in (("RNN", RNN, None), ("LSTM", LSTM, None), ("GRU", GRU, None),
                                   ("LSTM b_f=1", LSTM, 1.0), ("LSTM b_f=3", LSTM, 3.0)):
        tinygrad_llm.manual_seed(seed)
        layer = cls(size, size).to(dtype=np.float64)
        if forget_bias is not None:  # add to the forget gate's bias: f = sigma(... + b_f)
            layer.bias_ih_l0.data[size:2 * size] += forget_bias
        x = Tensor(x_np, requires_grad=True)
        out, _ = layer(x)                                                   # (T, B, H)
        (out[steps - 1] * Tensor(g)).sum().backward()
        norms = np.linalg.norm(x.grad.numpy(), axis=2).mean(axis=1)         # (T,)
        rows[name] = {k: float(norms[steps - 1 - k]) for k in distances}
    print(f"||dL/dx_(T-1-k)||, T={steps}, B={batch}, I=H={size}, torch's default init")
    print("k      " + "".join(f"{n:>12s}" for n in rows))
    for k in distances:
        print(f"{k:<7d}" + "".join(f"{rows[n][k]:12.3e}" for n in rows))
    return rows


def _blas_threads():
    """The thread count of NumPy's BLAS, as threadpoolctl reports it (None without it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info()
              if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
    return max(counts) if counts else None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--input", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads for both: torch.set_num_threads and, through threadpoolctl "
                        "(if installed), NumPy's BLAS (default: each library's default)")
    p.add_argument("--mode", choices=["lstm", "gru", "rnn", "lstm-unfused"], default="lstm",
                   help="lstm-unfused: the same LSTM run from the reference cell step by step "
                        "(LSTM(fused=False): ~20 Functions per step), to see what fusion buys")
    p.add_argument("--vanishing", action="store_true",
                   help="run the gradient-norm-vs-distance experiment instead (docs/rnn.md)")
    args = p.parse_args()
    if args.vanishing:
        vanishing()
        return

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(args.threads)
        except ImportError:
            print("threadpoolctl is not installed: NumPy's BLAS keeps its default threads")
    tinygrad_llm.manual_seed(0)
    ours_cls, torch_cls = {"lstm": (LSTM, torch.nn.LSTM), "gru": (GRU, torch.nn.GRU),
                           "rnn": (RNN, torch.nn.RNN),
                           "lstm-unfused": (functools.partial(LSTM, fused=False),
                                            torch.nn.LSTM)}[args.mode]
    ref = torch_cls(args.input, args.hidden, args.layers)
    ours = ours_cls(args.input, args.hidden, args.layers)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal(
        (args.steps, args.batch, args.input)).astype(np.float32)           # (T, B, I)
    upstream = np.random.default_rng(1).standard_normal(
        (args.steps, args.batch, args.hidden)).astype(np.float32)          # (T, B, H)

    def run_ours():
        xt = Tensor(x, requires_grad=True)
        out, _ = ours(xt)
        out.backward(Tensor(upstream))
        ours.zero_grad()

    x_torch, up_torch = torch.from_numpy(x), torch.from_numpy(upstream)

    def run_torch():
        xt = x_torch.clone().requires_grad_(True)
        out, _ = ref(xt)
        out.backward(up_torch)
        ref.zero_grad()

    for _ in range(args.warmup):
        run_ours()
        run_torch()
    times = {"ours": [], "torch": []}
    for _ in range(args.repeats):
        for name, fn in (("ours", run_ours), ("torch", run_torch)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    result = {
        "mode": args.mode, "config": f"B={args.batch} T={args.steps} {args.input}->{args.hidden} "
                                     f"L={args.layers} float32 cpu",
        "ours_median_ms": round(1000 * med["ours"], 1),
        "torch_median_ms": round(1000 * med["torch"], 1),
        "ratio_median": round(med["ours"] / med["torch"], 2),
        "ours_min_ms": round(1000 * best["ours"], 1),
        "torch_min_ms": round(1000 * best["torch"], 1),
        "ratio_min": round(best["ours"] / best["torch"], 2),
        "torch_threads": torch.get_num_threads(), "numpy_blas_threads": _blas_threads(),
        "loadavg": os.getloadavg()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
