r"""Data parallelism on one machine: 2 ranks x 1 thread against 1 process x 2 threads.

    python benchmarks/bench_distributed.py                      # nanoGPT's CPU config
    python benchmarks/bench_distributed.py --config baby --steps 3 --warmup 1   # the baby GPT
    python benchmarks/bench_distributed.py --config both --json out.json

For each GPT config it trains the same steps (same batches, AdamW, clipping at 1.0) three times:

- ``OPENBLAS_NUM_THREADS=1 python ... --worker``: one process on one thread (the baseline);
- ``OPENBLAS_NUM_THREADS=2 python ... --worker``: one process, its BLAS on two threads;
- ``OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python ... --worker``: two ranks of one thread each, each
  on half the batch, averaging gradients with ``DistributedDataParallel``.

and reports tokens/s (global batch x block size / median step time) and tokens per CPU-second
(the CPU time of every rank and thread together, which load from other jobs moves less than wall
time; a BLAS thread that spins while it waits counts too). In the data-parallel run
each step is timed in four parts: compute (forward, backward, clip and AdamW), the wait for the
slower rank (a barrier just before the all-reduce, so the all-reduce then measures only its own
work), the gradient all-reduce (one flat float32 buffer of all the weights, over MPI's shared
memory), and the rest. Medians over the timed steps, from rank 0.

The two runs share the same 2 cores, so neither gets more compute than the other; what differs
is how the work is split (BLAS threads inside each matmul against whole half-batches) and the
all-reduce. The machine may be shared with other work: the load average is printed beside the
figures, and they are only as steady as it.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinygrad_llm  # noqa: E402
from tinygrad_llm import distributed  # noqa: E402
from tinygrad_llm.data import get_batch, tiny_shakespeare  # noqa: E402
from tinygrad_llm.models.gpt import GPT, GPTConfig  # noqa: E402
from tinygrad_llm.optim import clip_grad_norm_  # noqa: E402

# nanoGPT's shakespeare_char configs, as examples/train_shakespeare.py and bench_gpt.py run them
CONFIGS = {
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0),
    "baby": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=[*CONFIGS, "both"], default="cpu")
    p.add_argument("--steps", type=int, default=None, help="timed steps (cpu 30, baby 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (cpu 5, baby 1)")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(args):
    """One process's (or one rank's) share: train, time, and print a JSON line on rank 0."""
    distributed.init("auto")
    cfg = CONFIGS[args.config]
    text = tiny_shakespeare()
    chars = sorted(set(text))
    ids = np.searchsorted(np.array(chars), np.array(list(text[:200_000])))   # (n,) char ids
    tinygrad_llm.manual_seed(1337)
    model = GPT(GPTConfig(vocab_size=len(chars), block_size=cfg["block_size"],
                          n_layer=cfg["n_layer"], n_head=cfg["n_head"], n_embd=cfg["n_embd"],
                          dropout=cfg["dropout"], bias=False))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    ddp = distributed.DistributedDataParallel(model, opt)
    rng = np.random.default_rng(1337)
    batch, n = cfg["batch_size"], distributed.world_size()
    rows = distributed.split_rows(batch)
    weight = n * (rows.stop - rows.start) / batch       # this rank's share of the mean loss
    times, cpu = [], 0.0
    for step in range(args.warmup + args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        x, y = get_batch(ids, batch, cfg["block_size"], rng)            # (B, T) each, global
        opt.zero_grad()
        _, loss = model(x[rows], y[rows])                               # (B / N, T) rows
        (loss * weight).backward()
        t1 = time.perf_counter()
        distributed.barrier()                           # wait for the slower rank here
        t2 = time.perf_counter()
        ddp.sync_gradients()                            # the all-reduce alone
        t3 = time.perf_counter()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t4 = time.perf_counter()
        if step >= args.warmup:
            times.append((t4 - t0, t1 - t0 + t4 - t3, t2 - t1, t3 - t2))
            cpu += time.process_time() - c0
    cpu = distributed.all_reduce(np.array([cpu]))[0] / args.steps    # CPU s a step, all ranks
    step_s, compute_s, wait_s, reduce_s = (float(np.median(c)) for c in zip(*times))
    if distributed.is_main():
        params = sum(p.size for p in model.parameters())    # every weight, wpe too
        print(json.dumps({
            "config": args.config, "ranks": n, "threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "params": params, "tokens_per_step": batch * cfg["block_size"],
            "tokens_per_s": batch * cfg["block_size"] / step_s, "step_ms": 1e3 * step_s,
            "compute_ms": 1e3 * compute_s, "wait_ms": 1e3 * wait_s,
            "all_reduce_ms": 1e3 * reduce_s, "all_reduce_bytes": 4 * params,
            "cpu_s_per_step": cpu, "tokens_per_cpu_s": batch * cfg["block_size"] / cpu,
            "final_loss": float(loss.item())}), flush=True)


def run(config, ranks, threads, steps, warmup):
    """Launch one measurement (a child process, or mpiexec's ranks) and return its JSON."""
    threads = str(threads)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
               MKL_NUM_THREADS=threads)
    cmd = [sys.executable, __file__, "--worker", "--config", config, "--steps", str(steps),
           "--warmup", str(warmup)]
    if ranks > 1:
        mpiexec = Path(sys.executable).with_name("mpiexec")
        cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    results = []
    for config in (CONFIGS if args.config == "both" else [args.config]):
        steps = args.steps or (30 if config == "cpu" else 3)
        warmup = args.warmup if args.warmup is not None else (5 if config == "cpu" else 1)
        load = os.getloadavg()[0]
        single = run(config, 1, 1, steps, warmup)
        one = run(config, 1, 2, steps, warmup)
        many = run(config, args.ranks, 1, steps, warmup)
        load = (load + os.getloadavg()[0]) / 2
        results += [single, one, many]
        print(f"\n{config}: {one['params'] / 1e6:.2f}M parameters, {one['tokens_per_step']} "
              f"tokens a step, {steps} timed steps after {warmup}; load average {load:.1f} "
              f"on {os.cpu_count()} CPUs (shared machine)")
        for name, r in (("1 process x 1 thread ", single), ("1 process x 2 threads", one),
                        (f"{args.ranks} ranks x 1 thread  ", many)):
            print(f"  {name}: {r['tokens_per_s']:8.0f} tokens/s, {r['step_ms']:8.1f} ms/step, "
                  f"{r['tokens_per_cpu_s']:8.0f} tokens per CPU-second")
        print(f"  {args.ranks} ranks' step: {many['step_ms']:.1f} ms = compute "
              f"{many['compute_ms']:.1f} + wait "
              f"{many['wait_ms']:.1f} + all-reduce {many['all_reduce_ms']:.2f} "
              f"({many['all_reduce_bytes'] / 2**20:.1f} MiB, "
              f"{100 * many['all_reduce_ms'] / many['step_ms']:.1f}% of the step)")
        print(f"  {args.ranks} ranks x 1 thread / 1 process x 2 threads: "
              f"{many['tokens_per_s'] / one['tokens_per_s']:.2f}x tokens/s, "
              f"{many['tokens_per_cpu_s'] / one['tokens_per_cpu_s']:.2f}x per CPU-second")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
