"""Word2Vec against gensim, side by side in one process: quality (kNN overlap) and words/s.

Quality: for the 1000 most frequent words, the average overlap of their 10 nearest neighbours
(cosine) between our vectors and gensim's, as a fraction of the overlap between two gensim runs
with different seeds (the ceiling: two correct trainings disagree that much by chance alone).
Speed: raw corpus words per second of training (train() only, vocabulary excluded), gensim with
one worker thread; also per CPU-second, since the machine may be shared.

Needs gensim for the comparison (without it, only our speed and neighbours are printed). If
gensim lives in another virtual environment, run this script with that environment's python;
the repository root is put on sys.path so tinygrad_llm imports from the checkout:

    /work/venv-gensim/bin/python benchmarks/bench_word2vec.py --epochs 10 --sg 1
    python benchmarks/bench_word2vec.py --batch-sizes 128,256,512,1024   # a batch-size sweep

Results: docs/performance.md.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinygrad_llm.models import Word2Vec  # noqa: E402
from tinygrad_llm.models.word2vec_eval import knn_overlap, neighbours_by_key  # noqa: E402
from tinygrad_llm.tokenizer import text_to_sentences  # noqa: E402


def run_gensim(sentences, args, seed):
    from gensim.models import Word2Vec as GensimWord2Vec  # noqa: PLC0415 - optional
    model = GensimWord2Vec(vector_size=args.vector_size, window=args.window,
                           min_count=args.min_count, sg=args.sg, negative=args.negative,
                           sample=args.sample, alpha=0.025, min_alpha=1e-4, seed=seed, workers=1)
    model.build_vocab(sentences)
    wall, cpu = time.perf_counter(), time.process_time()
    model.train(sentences, total_examples=model.corpus_count, epochs=args.epochs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return model.wv, wall, cpu


def run_ours(sentences, args, seed, batch_size):
    model = Word2Vec(vector_size=args.vector_size, window=args.window, min_count=args.min_count,
                     sg=args.sg, negative=args.negative, sample=args.sample, epochs=args.epochs,
                     batch_size=batch_size, seed=seed, progress=False)
    model.build_vocab(sentences)
    wall, cpu = time.perf_counter(), time.process_time()
    model.train(sentences)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return model.wv, wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "tinygrad_llm/datasets/tinyshakespeare.txt"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sg", type=int, default=1, choices=(0, 1))
    parser.add_argument("--vector-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--batch-sizes", default="256", help="comma-separated, ours only")
    parser.add_argument("--top", type=int, default=1000, help="how many frequent words to score")
    parser.add_argument("--no-gensim", action="store_true")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    sentences = text_to_sentences(Path(args.data).read_text(encoding="utf-8"))
    raw = sum(map(len, sentences))
    print(f"{Path(args.data).name}: {raw:,} raw words; {'skip-gram' if args.sg else 'CBOW'}, "
          f"{args.epochs} epochs; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    try:
        if args.no_gensim:
            raise ImportError
        import gensim  # noqa: F401, PLC0415
        have_gensim = True
    except ImportError:
        have_gensim = False
        print("gensim is not importable: printing our side only")

    results = {"data": Path(args.data).name, "raw_words": raw, "sg": args.sg,
               "epochs": args.epochs, "runs": []}
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    gensim_runs = []
    # Interleave the two sides so that a change in the machine's load hits both alike.
    for i, batch_size in enumerate(batch_sizes):
        if have_gensim and i < 2:
            wv, wall, cpu = run_gensim(sentences, args, seed=1 + i)
            gensim_runs.append(wv)
            print(f"gensim seed {1 + i}: {args.epochs * raw / wall:,.0f} raw words/s "
                  f"({args.epochs * raw / cpu:,.0f} per CPU-s), {wall:.1f} s")
            results["runs"].append({"side": "gensim", "seed": 1 + i, "wall_s": wall,
                                    "cpu_s": cpu, "words_per_s": args.epochs * raw / wall})
        wv, wall, cpu = run_ours(sentences, args, seed=1, batch_size=batch_size)
        print(f"ours batch {batch_size}: {args.epochs * raw / wall:,.0f} raw words/s "
              f"({args.epochs * raw / cpu:,.0f} per CPU-s), {wall:.1f} s; load "
              f"{os.getloadavg()[0]:.2f}")
        results["runs"].append({"side": "ours", "batch_size": batch_size, "wall_s": wall,
                                "cpu_s": cpu, "words_per_s": args.epochs * raw / wall, "wv": wv})
    if have_gensim and len(gensim_runs) < 2:
        wv, wall, cpu = run_gensim(sentences, args, seed=2)
        gensim_runs.append(wv)
        results["runs"].append({"side": "gensim", "seed": 2, "wall_s": wall, "cpu_s": cpu,
                                "words_per_s": args.epochs * raw / wall})

    ours_runs = [r for r in results["runs"] if r["side"] == "ours"]
    if have_gensim:
        g1, g2 = gensim_runs
        top = g1.index_to_key[:args.top]
        n1, n2 = neighbours_by_key(g1, top), neighbours_by_key(g2, top)
        ceiling = knn_overlap(n1, n2)
        gensim_speed = np.mean([r["words_per_s"] for r in results["runs"]
                                if r["side"] == "gensim"])
        gensim_cpu_speed = np.mean([args.epochs * raw / r["cpu_s"] for r in results["runs"]
                                    if r["side"] == "gensim"])
        results.update(ceiling=ceiling, gensim_words_per_s=gensim_speed)
        print(f"\nceiling (gensim seed 1 vs seed 2): {ceiling:.4f}")
        for r in ours_runs:
            wv = r["wv"]
            ours = neighbours_by_key(wv, top)
            score = (knn_overlap(ours, n1) + knn_overlap(ours, n2)) / 2
            r.update(overlap=score, quality_ratio=score / ceiling,
                     speed_ratio=r["words_per_s"] / gensim_speed,
                     cpu_speed_ratio=(args.epochs * raw / r["cpu_s"]) / gensim_cpu_speed)
            print(f"ours batch {r['batch_size']}: overlap {score:.4f} = "
                  f"{score / ceiling:.3f} x ceiling; speed {r['speed_ratio']:.2f} x gensim "
                  f"(per CPU-s {r['cpu_speed_ratio']:.2f} x)")
    for word in ("king", "love", "death"):
        wv = ours_runs[0]["wv"]
        if word in wv:
            print(f"ours: {word} -> {', '.join(w for w, _ in wv.most_similar(word, topn=8))}")
    if args.out:
        for r in results["runs"]:
            r.pop("wv", None)
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
