r"""Benchmark the BPE tokenizer side by side with the references, on Tiny Shakespeare (1.1 MB).

Training: vocab 4096 with the GPT-4 split, our fast trainer vs our plain reference trainer
(minbpe's algorithm; timed on the first --reference-merges merges and extrapolated linearly to
3840 merges, which OVERSTATES it somewhat: later merges scan a shorter token sequence) and vs
HF tokenizers' BpeTrainer (Rust) with the same split, when it is installed.

Encoding: GPT-2's vocabulary; ours with an empty chunk cache (cold, a fresh tokenizer) and with
it filled (warm, a second pass), vs tiktoken's r50k_base on one thread. Ids are checked equal.

Times are CPU seconds of this process (time.process_time, all threads) for training and best-of-5
wall seconds for encoding. Run:  python benchmarks/bench_tokenizer.py
"""
import argparse
import os
import platform
import time
from pathlib import Path

from tinygrad_llm.tokenizer import GPT2_PATTERN, GPT4_PATTERN, BPETokenizer
from tinygrad_llm.tokenizer.train import train_reference

DATA = Path(__file__).resolve().parent.parent / "tinygrad_llm" / "datasets"


def cpu_time(fn):
    t0 = time.process_time()
    result = fn()
    return time.process_time() - t0, result


def best_wall(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bench_training(text, vocab_size, reference_merges):
    rows = []
    n_merges = vocab_size - 256
    fast_s, tok = cpu_time(lambda: BPETokenizer("gpt4").train(text, vocab_size))
    rows.append(("ours, fast trainer", fast_s, "measured (split + count + merges)"))

    # The reference trainer on the first few merges, with the same split.
    chunks = [c.encode("utf-8") for c in BPETokenizer("gpt4")._split(text)]
    ref_s, ref_merges = cpu_time(lambda: train_reference(chunks, reference_merges))
    assert ref_merges == tok.merges[:reference_merges], "fast and reference merges differ"
    ref_total = ref_s / reference_merges * n_merges
    rows.append(("ours, reference trainer", ref_total,
                 f"extrapolated: {ref_s:.1f} s for {reference_merges} merges x "
                 f"{n_merges}/{reference_merges}"))
    fast_small_s, _ = cpu_time(lambda: BPETokenizer("gpt4").train(text, 256 + reference_merges))
    rows.append((f"ours, fast trainer, {reference_merges} merges", fast_small_s,
                 f"vs reference {ref_s:.1f} s for the same merges: "
                 f"{ref_s / fast_small_s:.0f}x"))

    try:
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        rows.append(("HF tokenizers BpeTrainer", None, "not installed"))
    else:
        def hf():
            hf_tok = Tokenizer(models.BPE())
            hf_tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(GPT4_PATTERN), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            hf_tok.train_from_iterator([text], trainer)
            return hf_tok
        hf_s, hf_tok = cpu_time(hf)
        rows.append(("HF tokenizers BpeTrainer (Rust)", hf_s,
                     f"vocab {hf_tok.get_vocab_size()}, "
                     f"RAYON_RS_NUM_CPUS={os.environ.get('RAYON_RS_NUM_CPUS', 'unset')}"))
    return rows, fast_s, ref_total, (rows[-1][1] if rows[-1][1] else None)


def bench_encoding(text, repeat):
    n = len(text.encode("utf-8"))
    rows = []
    tok = BPETokenizer.gpt2()

    def cold(tok):
        tok._cache.clear()  # as a fresh tokenizer: every distinct chunk goes through BPE
        return tok.encode_ordinary(text)
    cold_s, ids = best_wall(lambda: cold(tok), repeat)
    warm_s, ids_warm = best_wall(lambda: tok.encode_ordinary(text), repeat)
    split_s, _ = best_wall(lambda: tok._split(text), repeat)
    rows.append(("ours, cold cache", cold_s, n / cold_s / 1e6))
    rows.append(("ours, warm cache", warm_s, n / warm_s / 1e6))
    rows.append(("ours: the split alone (`re`, ASCII fast path)", split_s, n / split_s / 1e6))
    # The same without the ASCII fast path: every split through the `regex` package.
    slow = BPETokenizer.gpt2()
    slow._ascii_regex = None
    slow_cold_s, slow_ids = best_wall(lambda: cold(slow), repeat)
    slow_warm_s, _ = best_wall(lambda: slow.encode_ordinary(text), repeat)
    assert slow_ids == ids
    rows.append(("ours, `regex` split only, cold cache", slow_cold_s, n / slow_cold_s / 1e6))
    rows.append(("ours, `regex` split only, warm cache", slow_warm_s, n / slow_warm_s / 1e6))
    tt = None
    try:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
    except ImportError:
        rows.append(("tiktoken", None, None))
    else:
        ranks = load_tiktoken_bpe(str(DATA / "gpt2" / "gpt2.tiktoken"))
        enc = tiktoken.Encoding(name="r50k_bench", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                special_tokens={"<|endoftext|>": 50256})
        tt_s, tt_ids = best_wall(lambda: enc.encode_ordinary(text), repeat)
        assert tt_ids == ids == ids_warm, "ids differ from tiktoken"
        rows.append(("tiktoken r50k_base (Rust, 1 thread)", tt_s, n / tt_s / 1e6))
        tt = tt_s
    return rows, cold_s, warm_s, tt, len(ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--reference-merges", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    text = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")
    print(f"# Tokenizer benchmark: Tiny Shakespeare, {len(text.encode()):,} bytes; "
          f"Python {platform.python_version()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs\n")

    rows, fast_s, ref_s, hf_s = bench_training(text, args.vocab_size, args.reference_merges)
    print(f"## Training: vocab {args.vocab_size}, GPT-4 split\n")
    print("| trainer | CPU s | note |\n|---|---:|---|")
    for name, s, note in rows:
        print(f"| {name} | {'-' if s is None else f'{s:.2f}'} | {note} |")
    print(f"\nfast vs reference (extrapolated): {ref_s / fast_s:.0f}x faster"
          + (f"; fast / HF: {fast_s / hf_s:.2f}x the time" if hf_s else ""))

    rows, cold_s, warm_s, tt_s, n_ids = bench_encoding(text, args.repeat)
    print(f"\n## Encoding with GPT-2's vocabulary ({n_ids:,} tokens, ids identical to "
          f"tiktoken)\n")
    print("| encoder | s | MB/s |\n|---|---:|---:|")
    for name, s, rate in rows:
        print(f"| {name} | {'-' if s is None else f'{s:.3f}'} | "
              f"{'-' if rate is None else f'{rate:.2f}'} |")
    if tt_s:
        print(f"\nthroughput / tiktoken's: warm {tt_s / warm_s:.2f}, cold {tt_s / cold_s:.2f}")


if __name__ == "__main__":
    main()
