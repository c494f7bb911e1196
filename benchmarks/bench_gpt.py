r"""Train the GPT on Tiny Shakespeare for N steps and measure it; optionally against PyTorch.

    python benchmarks/bench_gpt.py                       # nanoGPT's CPU config, 50 steps
    python benchmarks/bench_gpt.py --compare-torch       # both, alternating, same batches
    python benchmarks/bench_gpt.py --compare-torch --steps 500 --val   # + val loss after 500
    python benchmarks/bench_gpt.py --config baby --steps 10            # the baby GPT
    python benchmarks/bench_gpt.py --profile             # time per op type, forward/backward
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gpt.py --cpu-time --steps 30   # under load
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gpt.py --cpu-time --compare-torch   # 1 core each

Reports the median ms/step after ``--warmup`` steps, tokens/s, achieved GFLOP/s and its share of
the float32 matmul ceiling (NumPy's best GFLOP/s on a 1024^3 matmul, measured at start), the BLAS
threads (from threadpoolctl when it is installed), and peak memory. With ``--compare-torch`` both
models start from the same weights, see the same batches in the same order with the same AdamW
and schedule, and their steps alternate in one process (so load from other processes hits both
alike); the ratio is ours / torch, and each side's minor page faults per step are counted.
Peak memory is measured in a separate child process per framework that trains only that one:
its high-water resident set (``VmHWM`` in /proc/self/status, which starts afresh at exec;
``ru_maxrss`` would inherit the parent's peak across fork and exec, so both children printed
the parent's 400 MiB), and the part of it added by training (the peak minus the resident set
after imports and model construction).

FLOPs per step: 6 N (B T) for the matmuls with N weights (lm_head included), plus 12 L B T^2 C
for attention's two (T, T) products, forward and backward (nanoGPT's estimate_mfu).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import tinygrad_llm  # noqa: E402
from tinygrad_llm import allocator, backend, no_grad  # noqa: E402
from tinygrad_llm.data import get_batch, tiny_shakespeare  # noqa: E402
from tinygrad_llm.models.gpt import GPT, GPTConfig  # noqa: E402
from tinygrad_llm.optim import clip_grad_norm_, set_lr, warmup_cosine_lr  # noqa: E402

# nanoGPT's shakespeare_char configs (its train.py has no biases: bias=False), as
# examples/train_shakespeare.py runs them; --bias adds GPT-2's biases.
CONFIGS = {
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0),
    "baby": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    for name in ("n-layer", "n-head", "n-embd", "block-size", "batch-size"):
        p.add_argument(f"--{name}", type=int, default=None)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--bias", action="store_true", help="biases in Linear and LayerNorm (GPT-2's)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the median")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare-torch", action="store_true")
    p.add_argument("--val", action="store_true", help="val loss of both after the steps")
    p.add_argument("--eval-iters", type=int, default=50)
    p.add_argument("--profile", action="store_true", help="per-op times, a few steps")
    p.add_argument("--profile-steps", type=int, default=5, help="steps averaged by --profile")
    p.add_argument("--unfused", action="store_true", help="attention from primitives")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--cpu-time", action="store_true",
                   help="CPU time of this thread per step and page faults, ours (and torch on "
                        "one thread with --compare-torch); robust to load; run with "
                        "OPENBLAS_NUM_THREADS=1")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="with --cpu-time: glibc's malloc keeps freed memory (no page faults)")
    p.add_argument("--memory-child", choices=("ours", "torch"), default=None,
                   help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p.parse_args(argv)


def make_config(args, vocab_size):
    c = dict(CONFIGS[args.config])
    for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "dropout"):
        if getattr(args, k) is not None:
            c[k] = getattr(args, k)
    batch_size = c.pop("batch_size")
    return GPTConfig(vocab_size=vocab_size, fused_attention=not args.unfused, bias=args.bias,
                     **c), batch_size


def flops_per_step(config, batch_size):
    n = sum(p.size for p in GPT(config).parameters()) - config.block_size * config.n_embd
    tokens = batch_size * config.block_size
    return 6 * n * tokens + 12 * config.n_layer * batch_size * config.block_size ** 2 \
        * config.n_embd


def lr_at(it):
    return warmup_cosine_lr(it, 1e-3, 100, 2000, 1e-4)  # train_shakespeare's default schedule


class Ours:
    name = "tinygrad_llm"

    def __init__(self, config, device):
        tinygrad_llm.manual_seed(0)
        self.model = GPT(config).to(device)
        self.opt = self.model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
        self.device = device

    def step(self, it, x, y):
        set_lr(self.opt, lr_at(it))
        _, loss = self.model(tinygrad_llm.Tensor(x, device=self.device), y)
        self.opt.zero_grad()
        loss.backward()
        clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        backend.synchronize(self.device)
        return loss

    @no_grad()
    def loss(self, x, y):
        self.model.eval()
        value = self.model(tinygrad_llm.Tensor(x, device=self.device), y)[1].item()
        self.model.train()
        return value


class Torch:
    name = "torch"

    def __init__(self, config, device, state_dict):
        import torch
        import torch_gpt
        self.torch = torch
        self.device = "cuda" if device == "cuda" else "cpu"
        self.model = torch_gpt.build(config, state_dict).to(self.device)
        self.opt = self.model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))

    def step(self, it, x, y):
        torch = self.torch
        for g in self.opt.param_groups:
            g["lr"] = lr_at(it)
        _, loss = self.model(torch.from_numpy(x).to(self.device),
                             torch.from_numpy(y).to(self.device))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        if self.device == "cuda":
            torch.cuda.synchronize()
        return loss

    def loss(self, x, y):
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            value = self.model(torch.from_numpy(x).to(self.device),
                               torch.from_numpy(y).to(self.device))[1].item()
        self.model.train()
        return value


def batches(ids, batch_size, block_size, seed):
    rng = np.random.default_rng(seed)
    while True:
        x, y = get_batch(ids, batch_size, block_size, rng)
        yield np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy())


def val_loss(runner, val_ids, batch_size, block_size, eval_iters, seed):
    rng = np.random.default_rng([seed, 1])
    losses = []
    for _ in range(eval_iters):
        x, y = get_batch(val_ids, batch_size, block_size, rng)
        losses.append(runner.loss(x.numpy(), y.numpy()))
    return float(np.mean(losses))


def _proc_status_mib(field):
    """A memory field of /proc/self/status in MiB (Linux), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024                      # kB
    except OSError:
        pass
    return None


def peak_rss_mib():
    """This process's peak resident set: VmHWM (per process, reset at exec), else ru_maxrss."""
    hwm = _proc_status_mib("VmHWM")
    return hwm if hwm is not None else backend.memory_stats("cpu")["peak_rss_bytes"] / 2 ** 20


def rss_mib():
    """The resident set now (VmRSS), or the peak where /proc is missing."""
    now = _proc_status_mib("VmRSS")
    return now if now is not None else peak_rss_mib()


def cpu_time(args, config, batch_size, stream, device):
    """``--cpu-time``: each step's CPU time in this thread and its page faults; with
    ``--compare-torch``, torch on one thread too (``torch.set_num_threads(1)``), steps alternating.

    ``time.thread_time`` counts only the cycles this thread ran, not the time it waited for a
    core, so on a loaded machine it still compares two versions of the code, or the two
    frameworks on one core each (run with OPENBLAS_NUM_THREADS=1, so that the BLAS work is on
    this thread too).
    """
    if args.keep_freed_memory and not allocator.keep_freed_memory():
        print("--keep-freed-memory: no glibc mallopt here; ignored")
    ours = Ours(config, device)
    runners = [ours]
    if args.compare_torch:
        import torch
        torch.set_num_threads(1)
        runners.append(Torch(config, device, ours.model.state_dict()))
    cpu = {r.name: [] for r in runners}
    faults = {r.name: [] for r in runners}
    for it in range(args.steps):
        x, y = next(stream)
        for r in (runners if it % 2 == 0 else runners[::-1]):
            f, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.thread_time()
            r.step(it, x, y)
            cpu[r.name].append(time.thread_time() - t)
            faults[r.name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)
    print(f"config {args.config}, B={batch_size}: CPU ms/step in this thread (median of "
          f"{args.steps - args.warmup}); BLAS {blas_threads()}; malloc keeps freed memory: "
          f"{args.keep_freed_memory}; {uptime()}")
    ms = {name: 1e3 * float(np.median(ts[args.warmup:])) for name, ts in cpu.items()}
    for name in cpu:
        print(f"  {name:<13} {ms[name]:9.1f} CPU ms/step  "
              f"{int(np.median(faults[name][args.warmup:]))} page faults/step")
    if args.compare_torch:
        print(f"  ratio tinygrad_llm / torch, one thread each: "
              f"{ms['tinygrad_llm'] / ms['torch']:.2f}x")
    return 0


def uptime():
    """'load average a b c', as ``uptime`` prints it."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def matmul_ceiling_gflops(n=1024, repeats=5):
    """NumPy's best float32 GFLOP/s on an (n, n) @ (n, n) matmul: the ceiling for a step."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 1):                                        # the first one warms
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def blas_threads():
    """'openblas: 2 threads'-style description of the BLAS thread pools (threadpoolctl is
    optional: without it, the OMP/OPENBLAS environment variables or 'unknown')."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import os
        env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                          "MKL_NUM_THREADS") if k in os.environ}
        return ", ".join(f"{k}={v}" for k, v in env.items()) or "unknown (no threadpoolctl)"
    pools = [f"{p['internal_api']}: {p['num_threads']} threads" for p in threadpool_info()
             if p.get("user_api") == "blas"]
    return "; ".join(pools) or "none found"


def memory_in_child(args, framework):
    """{"peak_rss_mib", "base_rss_mib"} of a fresh process that trains only ``framework`` for a
    few steps (base: after imports and model construction, before the first step)."""
    argv = [sys.executable, __file__, "--memory-child", framework, "--config", args.config,
            "--steps", str(min(args.steps, 10)), "--warmup", "0", "--device", args.device]
    for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "dropout"):
        if getattr(args, k) is not None:
            argv += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    argv += ["--bias"] if args.bias else []
    argv += ["--unfused"] if args.unfused else []
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    device = backend.check_device(args.device)
    text = tiny_shakespeare()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.int64)
    n = int(0.9 * len(ids))
    train_ids, val_ids = ids[:n], ids[n:]
    config, batch_size = make_config(args, len(chars))
    stream = batches(train_ids, batch_size, config.block_size, args.seed)

    if args.cpu_time:
        return cpu_time(args, config, batch_size, stream, device)
    if args.memory_child:
        runner = Ours(config, device) if args.memory_child == "ours" else \
            Torch(config, device, Ours(config, device).model.state_dict())
        base = rss_mib()
        for it in range(args.steps):
            runner.step(it, *next(stream))
        print(json.dumps({"peak_rss_mib": peak_rss_mib(), "base_rss_mib": base}))
        return 0

    ceiling = matmul_ceiling_gflops()
    threads = blas_threads()
    ours = Ours(config, device)
    runners = [ours]
    if args.compare_torch:
        import torch
        runners.append(Torch(config, device, ours.model.state_dict()))
        torch_threads = torch.get_num_threads()
    times = {r.name: [] for r in runners}
    faults = {r.name: [] for r in runners}                 # minor page faults per step
    t_start = time.perf_counter()
    for it in range(args.steps):
        x, y = next(stream)
        # Alternate which framework goes first, so neither always runs on a warmer cache.
        for r in (runners if it % 2 == 0 else runners[::-1]):
            f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t = time.perf_counter()
            r.step(it, x, y)
            times[r.name].append(time.perf_counter() - t)
            faults[r.name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)
    wall = time.perf_counter() - t_start

    flops = flops_per_step(config, batch_size)
    tokens = batch_size * config.block_size
    results = {"config": {**config.to_dict(), "batch_size": batch_size}, "steps": args.steps,
               "device": device, "gflop_per_step": flops / 1e9, "wall_s": wall,
               "matmul_ceiling_gflops": ceiling, "blas_threads": threads,
               "load_average": list(os.getloadavg())}
    print(f"config {args.config}: {config.n_layer} layers, {config.n_head} heads, "
          f"{config.n_embd} wide, T={config.block_size}, B={batch_size}; {args.steps} steps "
          f"(median over the last {args.steps - args.warmup}); {flops / 1e9:.2f} GFLOP/step")
    print(f"  float32 matmul ceiling {ceiling:.0f} GFLOP/s (1024^3, NumPy); BLAS {threads}; "
          f"{uptime()}")
    for name, ts in times.items():
        ms = 1e3 * float(np.median(ts[args.warmup:]))
        gflops = flops / ms / 1e6
        n_faults = int(np.median(faults[name][args.warmup:]))
        results[name] = {"median_ms": ms, "tokens_per_s": tokens / ms * 1e3,
                         "gflops": gflops, "ceiling_share": gflops / ceiling,
                         "page_faults_per_step": n_faults}
        print(f"  {name:<13} {ms:8.1f} ms/step  {tokens / ms * 1e3:9.0f} tokens/s  "
              f"{gflops:6.1f} GFLOP/s ({gflops / ceiling:.0%} of the ceiling)  "
              f"{n_faults} page faults/step")
    if args.compare_torch:
        ratio = results["tinygrad_llm"]["median_ms"] / results["torch"]["median_ms"]
        results["ratio"] = ratio
        results["torch_threads"] = torch_threads
        print(f"  ratio tinygrad_llm / torch: {ratio:.2f}x  (torch threads: {torch_threads})")
        for name in ("ours", "torch"):
            mem = memory_in_child(args, name)
            results[f"peak_rss_mib_{name}"] = mem["peak_rss_mib"]
            results[f"train_rss_mib_{name}"] = mem["peak_rss_mib"] - mem["base_rss_mib"]
        print(f"  peak RSS (a separate process each, {min(args.steps, 10)} steps): "
              f"tinygrad_llm {results['peak_rss_mib_ours']:.0f} MiB "
              f"(+{results['train_rss_mib_ours']:.0f} MiB by training), torch "
              f"{results['peak_rss_mib_torch']:.0f} MiB "
              f"(+{results['train_rss_mib_torch']:.0f} MiB by training)")
    else:
        results["peak_rss_mib"] = peak_rss_mib()
        print(f"  peak RSS {results['peak_rss_mib']:.0f} MiB")
    if args.val:
        for r in runners:
            v = val_loss(r, val_ids, batch_size, config.block_size, args.eval_iters, args.seed)
            results[r.name]["val_loss"] = v
            print(f"  {r.name:<13} val loss after {args.steps} steps: {v:.4f} "
                  f"({args.eval_iters} batches)")
        if args.compare_torch:
            diff = results["tinygrad_llm"]["val_loss"] - results["torch"]["val_loss"]
            results["val_loss_diff"] = diff
            print(f"  val loss difference: {diff:+.4f}")
    if args.profile:
        from tinygrad_llm import profiler
        n = args.profile_steps
        batch = [next(stream) for _ in range(n)]
        t = time.perf_counter()
        for i, (x, y) in enumerate(batch):
            ours.step(args.steps + i, x, y)
        whole = (time.perf_counter() - t) / n
        with profiler.profile() as prof:
            for i, (x, y) in enumerate(batch):
                ours.step(args.steps + n + i, x, y)
        print(f"tinygrad_llm per op type, averaged over {n} steps ({uptime()}):")
        print(prof.table(per=n))
        outside = 1e3 * whole - 1e3 * prof.total_seconds() / n
        print(f"a whole step, unprofiled (mean of {n}): {1e3 * whole:.1f} ms; outside the ops "
              f"(graph, optimizer, clipping): {outside:.1f} ms"
              + (" (below the noise between the two sets of steps)" if outside < 0 else ""))
        results["profile_ms_per_step"] = {f"{op} {phase}": 1e3 * s / n
                                          for op, phase, _, s in prof.rows()}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
