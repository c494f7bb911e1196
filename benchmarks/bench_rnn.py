r"""LSTM forward + backward against torch.nn.LSTM, side by side on the CPU.

The issue's configuration: batch 32, 64 steps, 256 -> 256, 2 layers, float32. Both frameworks run
the same weights on the same input, alternating (ours, torch, ours, ...) so that load from other
processes hits both alike; we report the median of each and the ratio ours / torch.

    python benchmarks/bench_rnn.py [--repeats 15] [--threads N] [--mode lstm|gru|rnn]

Results go in docs/performance_rnn.md. Timings on a shared machine are noisy: read the ratio, and
note the load (``uptime``) next to it.
"""

import argparse
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
                   help="torch.set_num_threads (default: torch's default)")
    p.add_argument("--mode", choices=["lstm", "gru", "rnn"], default="lstm")
    args = p.parse_args()

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    tinygrad_llm.manual_seed(0)
    ours_cls, torch_cls = {"lstm": (LSTM, torch.nn.LSTM), "gru": (GRU, torch.nn.GRU),
                           "rnn": (RNN, torch.nn.RNN)}[args.mode]
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
        "torch_threads": torch.get_num_threads(), "loadavg": os.getloadavg()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
