r"""Generation speed at GPT-2 small's shape: ours with and without the KV cache, and Hugging Face
transformers' generate on PyTorch with the same weights, side by side in one run.

    python benchmarks/bench_generate.py                      # 124M, prompt 32, 128 new tokens
    python benchmarks/bench_generate.py --new-tokens 32 --skip-uncached       # a quick look
    python benchmarks/bench_generate.py --repeats 3          # best of 3 per measurement

The model is GPT-2 small (12 layers, 12 heads, 768 wide, vocabulary 50257, 1024 positions,
tanh GELU: 124M parameters) with random weights in float32, batch 1, a 32-token prompt, greedy
decoding. Our weights are written with ``save_pretrained`` and read by transformers'
``GPT2LMHeadModel.from_pretrained``, so both models are the same function; the run checks that
both decode the same tokens. Each measurement is the best of ``--repeats`` wall-clock runs of
``generate`` (the prompt's forward included) after a 2-token warm-up; the measurements alternate
between the frameworks, so load from other processes hits both alike. tokens/s counts the new
tokens; the ratio is ours / Hugging Face (> 1: we are faster).

Per token with the cache, both read every weight once: 124M float32 = 0.5 GB per step, so on a
CPU the cached step is bound by memory bandwidth and BLAS's matrix-vector speed; without the
cache each step is a full forward over the context.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinygrad_llm  # noqa: E402
from tinygrad_llm.models.gpt import GPT, GPTConfig  # noqa: E402

GPT2_SMALL = dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768,
                  activation="gelu_new")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=1, help="best of N timed runs (default 1)")
    p.add_argument("--skip-uncached", action="store_true", help="only the cached runs")
    p.add_argument("--no-torch", action="store_true", help="only ours")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def best_time(fn, n, repeats):
    r"""(best wall-clock seconds over ``repeats`` calls fn(n) after a short warm-up fn(2), the
    last result)."""
    fn(2)                                                                   # warm-up
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(n)
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv=None):
    args = parse_args(argv)
    tinygrad_llm.manual_seed(args.seed)
    model = GPT(GPTConfig(**GPT2_SMALL)).eval()                             # GPT-2's init
    prompt = np.random.default_rng(args.seed).integers(0, 50257, size=(1, args.prompt_tokens))
    n = args.new_tokens
    print(f"GPT-2 small shape: {model.num_parameters(non_embedding=False) / 1e6:.1f}M "
          f"parameters, float32, batch 1, prompt {args.prompt_tokens}, {n} new tokens, greedy; "
          f"{os.cpu_count()} CPUs")

    runs = {"ours, cache": lambda k: model.generate(prompt, k, temperature=0, use_cache=True)}
    if not args.skip_uncached:
        runs["ours, no cache"] = lambda k: model.generate(prompt, k, temperature=0,
                                                          use_cache=False)
    if not args.no_torch:
        import torch
        from transformers import GPT2LMHeadModel
        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d)
            hf = GPT2LMHeadModel.from_pretrained(d, dtype=torch.float32).eval()
        ids = torch.from_numpy(prompt)
        mask = torch.ones_like(ids)

        def hf_generate(k, use_cache):
            with torch.no_grad():
                return hf.generate(ids, attention_mask=mask, max_new_tokens=k, do_sample=False,
                                   use_cache=use_cache, pad_token_id=0).numpy()

        runs["transformers, cache"] = lambda k: hf_generate(k, True)
        if not args.skip_uncached:
            runs["transformers, no cache"] = lambda k: hf_generate(k, False)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    order = [k for pair in zip([k for k in runs if k.startswith("ours")],
                               [k for k in runs if k.startswith("transformers")])
             for k in pair] or list(runs)
    order += [k for k in runs if k not in order]
    seconds, outputs = {}, {}
    for name in order:
        seconds[name], outputs[name] = best_time(runs[name], n, args.repeats)
        print(f"  {name:24s} {n / seconds[name]:8.1f} tokens/s   ({seconds[name]:.2f} s)",
              flush=True)
    first = outputs[order[0]]
    same = all(np.array_equal(out, first) for out in outputs.values())
    print(f"same tokens from every run: {same}")
    for kind in ("cache", "no cache"):
        ours, theirs = f"ours, {kind}", f"transformers, {kind}"
        if ours in seconds and theirs in seconds:
            print(f"ratio ours / transformers, {kind}: {seconds[theirs] / seconds[ours]:.2f}x "
                  f"tokens/s")
    if "ours, no cache" in seconds:
        print(f"our cache's speed-up: {seconds['ours, no cache'] / seconds['ours, cache']:.1f}x")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
