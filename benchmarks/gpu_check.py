"""The check that only a real GPU can make: every op on CuPy against NumPy, and a timed step.

The test suite runs the "cuda" device through a NumPy stand-in for CuPy (tests/fake_cupy.py):
that proves the code calls CuPy's API correctly and makes no hidden host syncs, but it runs no
GPU kernel. Run this script whenever a machine with an NVIDIA GPU and CuPy is available:

    pip install -e ".[gpu]" && python benchmarks/gpu_check.py

It

1. probes CUDA (``backend.cuda_status()``) and exits cleanly with the reason if it is unusable;
2. runs every primitive and fused op forward and backward on "cpu" and on "cuda" from the same
   inputs and upstream gradient, in float64 (must agree to ~1e-10) and float32 (TF32 matmuls
   and reduction order allow ~1e-2 relative on matmuls, ~1e-4 elsewhere), under
   ``cupyx.allow_synchronize(False)``, which raises if a step syncs with the host;
   With the fused CUDA kernels on (the default), the float32 GELU, layer norm and cross-entropy
   rows run the kernels of tinygrad_llm/kernels/; float64 always runs plain CuPy. An AdamW step
   on flat buffers (its kernel) is compared with the CPU's too;
3. times a training step of a small MLP and a small attention block on both devices;
4. times the baby GPT's training step (6 layers, 6 heads, 384 wide, T=256, B=64, AdamW, TF32)
   with the fused kernels on and off, and PyTorch's on the same GPU when torch with CUDA is
   installed (the target: ours <= 1.2x PyTorch eager);
5. prints CuPy's memory-pool statistics.

Exit status: 0 when every op agrees (or CUDA is unusable), 1 otherwise. See docs/backends.md.
"""

import argparse
import contextlib
import statistics
import sys
import time

import numpy as np

import tinygrad_llm as tg
import tinygrad_llm.nn.functional as F
from tinygrad_llm import Tensor, backend
from tinygrad_llm.kernels import cuda


def _constants(rng):
    """Integer inputs (ids, targets), made once and moved to each device before timing."""
    targets = rng.integers(0, 48, 32)
    targets[::5] = -100                                  # some rows ignored
    return {"ids": rng.integers(0, 32, (4, 8)), "targets": targets}


def _cases(rng):
    """name -> (function of (constants, *tensors), list of float64 input arrays)."""
    sq = rng.standard_normal((32, 48))
    pos = rng.uniform(0.5, 2.0, (32, 48))
    vec = rng.standard_normal(48)
    w = rng.standard_normal((24, 48))
    batch = rng.standard_normal((4, 32, 16))
    return {
        "add (broadcast)": (lambda c, a, b: a + b, [sq, vec]),
        "sub": (lambda c, a, b: a - b, [sq, pos]),
        "mul (broadcast)": (lambda c, a, b: a * b, [sq, vec]),
        "div": (lambda c, a, b: a / b, [sq, pos]),
        "pow": (lambda c, a, b: a ** b, [pos, sq * 0.3]),
        "neg": (lambda c, a: -a, [sq]),
        "exp": (lambda c, a: a.exp(), [sq]),
        "log": (lambda c, a: a.log(), [pos]),
        "sqrt": (lambda c, a: a.sqrt(), [pos]),
        "tanh": (lambda c, a: a.tanh(), [sq]),
        "sigmoid": (lambda c, a: a.sigmoid(), [sq * 10]),
        "relu": (lambda c, a: a.relu(), [sq]),
        "abs": (lambda c, a: a.abs(), [sq]),
        "clip": (lambda c, a: a.clip(-0.5, 0.5), [sq]),
        "sum": (lambda c, a: a.sum(axis=1), [sq]),
        "mean": (lambda c, a: a.mean(axis=(0, 1), keepdims=True), [sq]),
        "max": (lambda c, a: a.max(axis=0), [sq]),
        "min": (lambda c, a: a.min(), [sq]),
        "var": (lambda c, a: a.var(axis=1, ddof=1), [sq]),
        "reshape/transpose": (lambda c, a: a.reshape(8, 4, 48).transpose(2, 0, 1), [sq]),
        "swapaxes/expand/squeeze": (lambda c, a: a.swapaxes(0, 1).expand_dims(0).squeeze(0), [sq]),
        "broadcast_to": (lambda c, a: a.broadcast_to((32, 48)), [vec]),
        "getitem (slice, None)": (lambda c, a: a[2:20:3, None, ::-1], [sq]),
        "getitem (int array)": (lambda c, a: a[c["ids"]], [sq]),
        "getitem (bool mask)": (lambda c, a: a[a > 0], [sq]),
        "concatenate/stack": (lambda c, a, b: tg.stack([tg.concatenate([a, b], axis=0)] * 2),
                              [sq, pos]),
        "where": (lambda c, a, b: tg.where(a > 0, a, b), [sq, pos]),
        "matmul 2-D": (lambda c, a, b: a @ b.T, [sq, w]),
        "matmul batched": (lambda c, a, b: a @ b.swapaxes(-1, -2), [batch, batch]),
        "softmax": (lambda c, a: F.softmax(a, axis=-1), [sq * 3]),
        "log_softmax": (lambda c, a: F.log_softmax(a, axis=0), [sq * 3]),
        "cross_entropy": (lambda c, a: F.cross_entropy(a, c["targets"]), [sq * 3]),
        "layer_norm": (lambda c, a, g, b: F.layer_norm(a, g, b), [sq, vec, vec]),
        "gelu": (lambda c, a: F.gelu(a), [sq * 3]),
        "gelu (tanh)": (lambda c, a: F.gelu(a, approximate="tanh"), [sq * 3]),
        "linear": (lambda c, a, w_, b: F.linear(a, w_, b), [sq, w, vec[:24]]),
        "embedding": (lambda c, w_: F.embedding(c["ids"], w_), [sq]),
        "bce_with_logits": (lambda c, a, t: F.binary_cross_entropy_with_logits(a, t),
                            [sq, rng.uniform(0, 1, (32, 48))]),
        "mse_loss": (lambda c, a, b: F.mse_loss(a, b), [sq, pos]),
    }


def _run(f, consts, arrays, dtype, device, upstream, guard):
    """Forward + backward on ``device``. Inputs are moved before and results read after the
    guarded block, so a sync inside it is the op's own."""
    xs = [Tensor(a.astype(dtype), requires_grad=True, device=device) for a in arrays]
    g = Tensor(upstream.astype(dtype), device=device)
    with guard:
        y = f(consts, *xs)
        y.backward(g)
    return y.numpy(), [x.grad.numpy() for x in xs if x.grad is not None]


def _rel_err(a, b):
    scale = max(float(np.abs(b).max()), 1e-30) if np.size(b) else 1.0
    return float(np.abs(a - b).max()) / scale if np.size(b) else 0.0


# Ops whose output shape depends on the data must ask the GPU for it: a sync is expected.
EXPECTED_SYNC = {"getitem (bool mask)"}


def check_ops(no_sync):
    import cupyx  # noqa: PLC0415 - present whenever cuda_status() is ok
    rng = np.random.default_rng(0)
    host = _constants(rng)
    consts = {d: {k: Tensor(v, device=d) for k, v in host.items()} for d in ("cpu", "cuda")}
    failures = 0
    print(f"| {'op':<24} | {'f64 fwd':>8} | {'f64 bwd':>8} | {'f32 fwd':>8} | {'f32 bwd':>8} "
          f"| ok |")
    print(f"|{'-' * 26}|{'-' * 10}:|{'-' * 10}:|{'-' * 10}:|{'-' * 10}:|----|")
    for name, (f, arrays) in _cases(rng).items():
        with tg.no_grad():  # the output's shape, for the upstream gradient
            shape = f(consts["cpu"], *[Tensor(a) for a in arrays]).shape
        upstream = rng.standard_normal(shape)
        strict = no_sync and name not in EXPECTED_SYNC
        errs = []
        try:
            for dtype in (np.float64, np.float32):
                cpu = _run(f, consts["cpu"], arrays, dtype, "cpu", upstream,
                           contextlib.nullcontext())
                guard = cupyx.allow_synchronize(False) if strict else contextlib.nullcontext()
                gpu = _run(f, consts["cuda"], arrays, dtype, "cuda", upstream, guard)
                errs.append(_rel_err(gpu[0], cpu[0]))
                errs.append(max((_rel_err(a, b) for a, b in zip(gpu[1], cpu[1])), default=0.0))
        except Exception as e:  # a host sync inside the step (DeviceSynchronized), or an error
            failures += 1
            print(f"| {name:<24} | {type(e).__name__}: {e} | NO |")
            continue
        f32_tol = 1e-2 if "matmul" in name or name == "linear" else 1e-4
        ok = max(errs[:2]) < 1e-10 and max(errs[2:]) < f32_tol
        failures += not ok
        print(f"| {name:<24} | " + " | ".join(f"{e:8.1e}" for e in errs)
              + f" | {'ok' if ok else 'NO'} |")
    return failures


def check_adamw():
    """AdamW steps on "cuda" (the flat-buffer update; its kernel when kernels are on) against
    the same steps on "cpu": the max relative difference of the parameters after 3 steps."""
    from tinygrad_llm.optim import AdamW  # noqa: PLC0415
    rng = np.random.default_rng(0)
    shapes = [(48, 32), (32,), (1000,)]
    inits = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    out = {}
    for device in ("cpu", "cuda"):
        ps = [Tensor(a.copy(), requires_grad=True, device=device) for a in inits]
        opt = AdamW([{"params": ps[:1], "weight_decay": 0.1},
                     {"params": ps[1:], "weight_decay": 0.0}], lr=1e-2, betas=(0.9, 0.99))
        for step_grads in grads:
            for p, g in zip(ps, step_grads):
                p.grad = Tensor(g, device=device)
            opt.step()
        out[device] = [p.numpy() for p in ps]
    err = max(_rel_err(a, b) for a, b in zip(out["cuda"], out["cpu"]))
    ok = err < 1e-5
    print(f"| {'adamw, 3 steps (params)':<24} | {'-':>8} | {'-':>8} | {err:8.1e} | {'-':>8} "
          f"| {'ok' if ok else 'NO'} |")
    return 0 if ok else 1


def _timed(step, iters, device, warmup=1):
    for _ in range(warmup):
        step()
    backend.synchronize(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        backend.synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


SIZES = {"full": dict(batch=256, width=512, attention=(16, 6, 128, 64)),
         "tiny": dict(batch=8, width=16, attention=(2, 2, 8, 4))}   # tiny: a smoke test
# nanoGPT's baby GPT (config/train_shakespeare_char.py), and a tiny one for the smoke test
GPT_SIZES = {"full": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64),
             "tiny": dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4)}


def _step_times(device, iters, batch, width, attention):
    """(MLP step ms, attention step ms) on ``device``."""
    import tinygrad_llm.nn as nn  # noqa: PLC0415
    tg.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(width, 2 * width, device=device), nn.GELU(),
                        nn.Linear(2 * width, width, device=device))
    x = tg.randn(batch, width, device=device)                          # (B, C)
    t = Tensor(np.random.default_rng(0).integers(0, width, batch), device=device)

    def mlp_step():
        loss = F.cross_entropy(mlp(x), t)
        for p in mlp.parameters():
            p.grad = None
        loss.backward()
        with tg.no_grad():
            for p in mlp.parameters():
                p.data -= 1e-3 * p.grad.data

    q = tg.randn(*attention, device=device, requires_grad=True)       # (B, nh, T, hs)

    def attention_step():
        att = F.softmax((q @ q.swapaxes(-1, -2)) * 0.125, axis=-1)   # (B, nh, T, T)
        y = att @ q                                                   # (B, nh, T, hs)
        q.grad = None
        (y * y).mean().backward()

    return _timed(mlp_step, iters, device), _timed(attention_step, iters, device)


def training_steps(iters, size="full"):
    sizes = SIZES[size]
    w = sizes["width"]
    mlp = f"MLP {w}-{2 * w}-{w}, batch {sizes['batch']} (ms)"
    att = f"attention {sizes['attention']} (ms)"
    print(f"\n| device | {mlp} | {att} |")
    print(f"|--------|{'-' * (len(mlp) + 1)}:|{'-' * (len(att) + 1)}:|")
    for device in ("cpu", "cuda"):
        a, b = _step_times(device, iters, **sizes)
        print(f"| {device:<6} | {a:{len(mlp)}.2f} | {b:{len(att)}.2f} |")


def _gpt_batches(block_size, batch_size, vocab_size, n):
    """n (x, y) batches of random ids, as host int64 arrays (the same for every framework)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab_size, batch_size * block_size * 8)
    out = []
    for _ in range(n):
        starts = rng.integers(0, len(ids) - block_size - 1, batch_size)
        x = np.stack([ids[s:s + block_size] for s in starts])                   # (B, T)
        y = np.stack([ids[s + 1:s + block_size + 1] for s in starts])           # (B, T)
        out.append((x, y))
    return out


def _gpt_step_ms(config, batch_size, iters, warmup):
    """Median ms per training step of our GPT on "cuda" (forward, backward, clip, AdamW)."""
    from tinygrad_llm.models.gpt import GPT  # noqa: PLC0415
    from tinygrad_llm.optim import clip_grad_norm_  # noqa: PLC0415
    tg.manual_seed(0)
    model = GPT(config).to("cuda")
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    batches = [(Tensor(x, device="cuda"), Tensor(y, device="cuda"))
               for x, y in _gpt_batches(config.block_size, batch_size, config.vocab_size, 4)]
    state = {"i": 0}

    def step():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    ms = _timed(step, iters, "cuda", warmup)
    return ms, model.state_dict()


def _torch_step_ms(config, batch_size, iters, warmup, state_dict):
    """The same step in PyTorch eager on the same GPU (TF32 matmuls, as ours), or None with
    the reason when torch or its CUDA build is missing."""
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} has no usable CUDA here"
    import pathlib  # noqa: PLC0415
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    try:
        import torch_gpt  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    torch.backends.cuda.matmul.allow_tf32 = backend.matmul_precision() == "tf32"
    torch.manual_seed(0)
    model = torch_gpt.build(config, state_dict).to("cuda")
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    batches = [(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda())
               for x, y in _gpt_batches(config.block_size, batch_size, config.vocab_size, 4)]
    state = {"i": 0}

    def step():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), None


def gpt_steps(iters, size="full"):
    """The baby GPT's ms/step on cuda: fused kernels on, off, and PyTorch's."""
    from tinygrad_llm.models.gpt import GPTConfig  # noqa: PLC0415
    sizes = dict(GPT_SIZES[size])
    batch_size = sizes.pop("batch_size")
    config = GPTConfig(vocab_size=65, dropout=0.2, bias=False, **sizes)
    warmup = 3 if size == "full" else 1
    print(f"\nGPT {sizes}, batch {batch_size}, vocab 65, dropout 0.2, AdamW; "
          f"{backend.matmul_precision()} matmuls; median of {iters} steps after {warmup}")
    print("| run                        | ms/step |\n|----------------------------|--------:|")
    results, state_dict = {}, None
    for enabled in (True, False):
        previous = cuda.use_cuda_kernels(enabled)
        try:
            results[enabled], state_dict = _gpt_step_ms(config, batch_size, iters, warmup)
        finally:
            cuda.use_cuda_kernels(previous)
    print(f"| tinygrad_llm, kernels on   | {results[True]:7.2f} |")
    print(f"| tinygrad_llm, kernels off  | {results[False]:7.2f} |")
    if not cuda.cuda_kernels_for(backend.to_device(np.zeros(1, np.float32), "cuda")):
        print("(this CuPy cannot compile kernels: both rows ran plain CuPy)")
    torch_ms, why = _torch_step_ms(config, batch_size, iters, warmup, state_dict)
    if torch_ms is None:
        print(f"\nPyTorch: not measured ({why})")
    else:
        print(f"| PyTorch eager              | {torch_ms:7.2f} |")
        print(f"\nratio tinygrad_llm (kernels on) / PyTorch: {results[True] / torch_ms:.2f}x "
              f"(target <= 1.2x)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iters", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--tiny", action="store_true",
                        help="time tiny models (a smoke test of this script)")
    parser.add_argument("--allow-sync", action="store_true",
                        help="do not run the ops under cupyx.allow_synchronize(False)")
    args = parser.parse_args(argv)

    ok, reason = backend.cuda_status()
    if not ok:
        print(f"CUDA is not usable here ({reason}); nothing to check. "
              f"{backend.INSTALL_HINT[0].upper()}{backend.INSTALL_HINT[1:]}.")
        return 0
    import cupy  # noqa: PLC0415 - only after cuda_status() said it works
    device = cupy.cuda.Device()
    name = cupy.cuda.runtime.getDeviceProperties(device.id)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    print(f"# {reason}; device 0: {name}, compute capability {device.compute_capability}")
    print("# ops: max relative difference, cuda vs cpu, of the output and of every gradient\n")
    print(f"# fused CUDA kernels: {'on' if cuda.cuda_kernels_enabled() else 'off'} "
          f"(float32 GELU, layer norm, cross-entropy, AdamW)\n")
    failures = check_ops(no_sync=not args.allow_sync)
    failures += check_adamw()
    size = "tiny" if args.tiny else "full"
    training_steps(args.iters, size)
    gpt_steps(args.iters, size)
    print(f"\nmemory pool: {backend.memory_stats('cuda')}")
    print(f"\n{failures} op(s) disagree" if failures else "\nevery op agrees")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
