r"""Train word vectors on Shakespeare (or Jane Austen) and look at the neighbours they give.

What this teaches: skip-gram with negative sampling, end to end, on the engine (the math:
docs/word2vec.md).

1. Tokenize: lowercase letter runs, apostrophes kept inside words ("o'er", "king's").
2. Vocabulary: words seen at least --min-count times, most frequent first.
3. Train: for every centre word and every context word within a randomly shrunk window, push
   the context word's vector towards the centre word's output vector and away from the output
   vectors of 5 noise words drawn from counts^0.75; frequent words are subsampled; the learning
   rate falls linearly to nearly zero. Each mini-batch of 256 centre words is one step of the
   engine: ``loss = model.module.window_loss(...)``, ``loss.sum().backward()`` (row-sparse
   gradients), ``SGD.step()``. The script prints each epoch's loss, then takes one such step
   by hand on a fresh batch and shows what backward produced.
4. Look: cosine nearest neighbours, analogies (b - a + c), a 2-D PCA map of a few words.

    python examples/word2vec_shakespeare.py                      # Tiny Shakespeare, ~30 s
    python examples/word2vec_shakespeare.py --data tinygrad_llm/datasets/austen.txt \
        --words emma,elizabeth,darcy,love,happy,sister --analogy he,his,she

Output: the neighbours and analogies on stdout; in --out-dir, ``vectors.txt`` (word2vec text
format, readable by gensim), ``model.npz`` and ``pca.png`` (with matplotlib), in out-word2vec/.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinygrad_llm.data import dataset_path  # noqa: E402
from tinygrad_llm.models import Word2Vec  # noqa: E402
from tinygrad_llm.models.word2vec_trainer import epoch_plan  # noqa: E402
from tinygrad_llm.optim import SGD  # noqa: E402
from tinygrad_llm.tokenizer import text_to_sentences  # noqa: E402
from tinygrad_llm.viz import headless_pyplot  # noqa: E402


def pca_2d(vectors):
    """Project rows onto their two main directions: the top right-singular vectors of the
    centred matrix (X - mean) = U S V^T, so coordinates = (X - mean) @ V[:2]^T."""
    centred = vectors - vectors.mean(axis=0)                          # (n, D)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)            # vt (D, D)
    return centred @ vt[:2].T                                         # (n, 2)


def one_step_by_hand(model, sentences, batch_size):
    """One training step on the engine, spelled out: a batch of centre words with their windows
    and noise words (the trainer's ``epoch_plan``), the loss, backward, and SGD on the rows."""
    index = model.wv.key_to_index
    ids = np.array([index[w] for w in sentences[0] if w in index])              # (N,)
    rng = np.random.default_rng(model.seed)
    pad_ids, ctx_mask, out_ids, neg_keep = epoch_plan(
        ids, np.zeros_like(ids), model.keep_prob, model.noise_cdf, model.window,
        model.negative, rng)
    W, B = model.window, min(batch_size, len(out_ids))
    batch = (pad_ids[:B + 2 * W], out_ids[:B], ctx_mask[:B], neg_keep[:B])
    module = model.module
    optimizer = SGD(module.parameters(), lr=model.alpha)
    loss = module.window_loss(*batch).sum()          # SkipGramLoss (CBOW: the true gradient)
    loss.backward()
    w_in, w_out = module.in_embed.weight, module.out_embed.weight
    print(f"one step by hand: {B} centre words, {int(ctx_mask[:B].sum())} pairs, loss "
          f"{float(loss.data):.2f}; backward gave {w_in.grad} and {w_out.grad}")
    optimizer.step()                                 # W[rows] -= lr * gradient rows
    optimizer.zero_grad()
    print(f"after SGD (lr {optimizer.param_groups[0]['lr']:g}): loss "
          f"{float(module.window_loss(*batch).sum().data):.2f}")


def save_pca_plot(wv, words, path):
    try:
        plt = headless_pyplot()
    except ImportError:
        print("matplotlib is not installed: no PCA plot")
        return
    xy = pca_2d(wv[words])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(xy[:, 0], xy[:, 1], s=12)
    for (x, y), word in zip(xy, words):
        ax.annotate(word, (x, y), fontsize=9, xytext=(3, 3), textcoords="offset points")
    ax.set_title("word vectors, first two principal components")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a text file (default: the shipped Tiny Shakespeare)")
    parser.add_argument("--sg", type=int, default=1, choices=(0, 1), help="1 skip-gram, 0 CBOW")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--vector-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--words", default="king,queen,love,death,rome,lord",
                        help="comma-separated words whose neighbours to print")
    parser.add_argument("--analogy", action="append",
                        help="a,b,c: print the words closest to b - a + c (repeatable)")
    parser.add_argument("--out-dir", default="out-word2vec",
                        help="save vectors.txt, model.npz and pca.png here (\"\" for none)")
    args = parser.parse_args()

    path = Path(args.data) if args.data else dataset_path("tinyshakespeare.txt")
    sentences = text_to_sentences(path.read_text(encoding="utf-8"))
    print(f"{path.name}: {sum(map(len, sentences)):,} words")
    start = time.perf_counter()
    model = Word2Vec(sentences, vector_size=args.vector_size, window=args.window,
                     min_count=args.min_count, sg=args.sg, epochs=args.epochs,
                     batch_size=args.batch_size, seed=args.seed)
    print(f"{model}: trained in {time.perf_counter() - start:.1f} s "
          f"({model.train_stats['raw_words_per_second']:,.0f} words/s)")
    print("loss per centre word, by epoch: "
          + ", ".join(f"{x:.3f}" for x in model.train_stats["epoch_loss"]))
    one_step_by_hand(model, sentences, args.batch_size)
    wv = model.wv

    words = [w for w in args.words.split(",") if w]
    for word in words:
        if word not in wv:
            print(f"{word}: not in the vocabulary (fewer than {args.min_count} occurrences)")
            continue
        near = ", ".join(f"{w} {s:.2f}" for w, s in wv.most_similar(word, topn=8))
        print(f"{word:>8} -> {near}")

    analogies = args.analogy or ["man,king,woman", "he,his,she", "brother,sister,father"]
    for analogy in analogies:
        a, b, c = analogy.split(",")
        missing = [w for w in (a, b, c) if w not in wv]
        if missing:
            print(f"{b} - {a} + {c}: {', '.join(missing)} not in the vocabulary")
            continue
        answer = wv.most_similar(positive=[b, c], negative=[a], topn=5)
        print(f"{b} - {a} + {c} = {', '.join(w for w, _ in answer)}")

    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        wv.save_word2vec_format(out / "vectors.txt")
        model.save(out / "model.npz")
        print(f"wrote {out / 'vectors.txt'} and {out / 'model.npz'}")
        shown = [w for w in words if w in wv]
        shown += [w for word in shown for w, _ in wv.most_similar(word, topn=3)]
        save_pca_plot(wv, list(dict.fromkeys(shown)), out / "pca.png")


if __name__ == "__main__":
    main()
