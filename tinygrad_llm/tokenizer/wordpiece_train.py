r"""Train a WordPiece vocabulary: BPE merges on words, with "##" marking the pieces inside a word.

This is the method of Hugging Face's ``WordPieceTrainer``, which runs its BPE trainer with the
continuing-subword prefix "##" and keeps the resulting vocabulary:

1. **Words.** Each text goes through the basic tokenizer of ``BertTokenizer`` (special tokens cut
   out, then clean, lower-case, strip accents, split on spaces and punctuation), so the trainer
   sees the words that encoding will see. Each distinct word is kept once with its count. Words
   over 100 characters are left out: encoding turns them into ``[UNK]`` anyway.
2. **Alphabet.** Every character of the words, in both forms: "c" (beginning a word) and "##c"
   (inside one). A word starts spelled as ``[c0, ##c1, ##c2, ...]``. With both forms of every
   character in the vocabulary, any word made of characters seen in training encodes without
   ``[UNK]``.
3. **Merges.** Count every adjacent pair of pieces over all words (a word's pairs count as often
   as the word occurs). Take the most frequent pair (a, b); on a tie, the smallest by string order,
   so training is deterministic. The new piece is a followed by b without its "##":
   ("th", "##e") -> "the", ("##in", "##g") -> "##ing". Rewrite every word holding the pair, left
   to right, and repeat until the vocabulary has ``vocab_size`` tokens or no pair occurs
   ``min_frequency`` times.

The vocabulary is ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0..4), the alphabet (sorted), then the
pieces in the order they were made. Only the vocabulary is kept: WordPiece encoding is greedy
longest-match and never replays the merges (unlike BPE).

Google's original WordPiece picked the pair that most raises the likelihood of the training data,
the score count(ab) / (count(a) count(b)), which prefers pairs whose parts are rare alone. Its
trainer was never released; we follow the frequency rule that Hugging Face's trainer uses.

Cost: each distinct word is stored once, and a merge rewrites only the words that hold the pair
(``where[pair]``). The next pair comes from a heap with lazy invalidation: every time a pair's
count changes a fresh entry ``(-count, a, b)`` is pushed, and an entry popped whose count is no
longer the pair's count is stale and skipped. The words of Jane Austen's six novels (about 15,000
distinct) train an 8,000-token vocabulary in seconds.
"""
import heapq
from collections import Counter

from .wordpiece import MAX_INPUT_CHARS_PER_WORD, BertTokenizer

__all__ = ["train_wordpiece", "SPECIAL_TOKENS"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def count_words(texts, tokenizer):
    r"""{word: count} over ``texts``, in order of first appearance (special tokens left out)."""
    counts = Counter()
    for text in texts:
        for k, part in enumerate(tokenizer.split_special(text)):
            if k % 2 == 0:
                counts.update(tokenizer.basic_tokenize(part))
    return counts


def _pairs(word):
    return zip(word, word[1:])


def train_wordpiece(texts, vocab_size, do_lower_case=True, strip_accents=None,
                    tokenize_chinese_chars=True, min_frequency=2, progress=None):
    r"""Learn a WordPiece vocabulary of ``vocab_size`` tokens from ``texts`` (a list of str).

    Returns a ``BertTokenizer`` over it, with the same normalization options; save it with
    ``tok.save_pretrained(folder)`` (writes ``vocab.txt`` and ``tokenizer_config.json``
    atomically). The vocabulary can be smaller than ``vocab_size`` when the texts run out of pairs
    occurring ``min_frequency`` times. ``progress`` (optional) is called once per merge.
    """
    if isinstance(texts, str):
        raise TypeError("train_wordpiece: texts must be a list of str, got a single str "
                        "(wrap it: [text])")
    normalizer = BertTokenizer(list(SPECIAL_TOKENS), do_lower_case=do_lower_case,
                               strip_accents=strip_accents,
                               tokenize_chinese_chars=tokenize_chinese_chars)
    counts = {w: n for w, n in count_words(texts, normalizer).items()
              if len(w) <= MAX_INPUT_CHARS_PER_WORD}
    if not counts:
        raise ValueError("train_wordpiece: the texts hold no words")
    alphabet = sorted({ch for w in counts for ch in w})
    vocab = [*SPECIAL_TOKENS, *alphabet, *("##" + ch for ch in alphabet)]
    if vocab_size < len(vocab):
        raise ValueError(f"train_wordpiece: vocab_size {vocab_size} is below the "
                         f"{len(SPECIAL_TOKENS)} special tokens plus both forms of the "
                         f"{len(alphabet)} characters ({len(vocab)})")
    known = set(vocab)

    # words[i]: the pieces of distinct word i; freqs[i]: how often it occurs.
    words = [[w[0], *("##" + ch for ch in w[1:])] for w in counts]
    freqs = list(counts.values())
    pair_counts = Counter()
    where = {}  # pair -> indices of the words that hold it (or held it: checked when merging)
    for i, (word, f) in enumerate(zip(words, freqs)):
        for pair in _pairs(word):
            pair_counts[pair] += f
            where.setdefault(pair, set()).add(i)
    heap = [(-n, a, b) for (a, b), n in pair_counts.items()]
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        if pair_counts.get((a, b), 0) != -neg:
            continue  # stale: the count changed since this entry was pushed
        if -neg < min_frequency:
            break     # the most frequent pair is too rare: so is every other
        new = a + b[2:]  # b is inside a word, so it starts with "##"
        changed = Counter()
        for i in sorted(where.pop((a, b))):
            word, f = words[i], freqs[i]
            merged, j = [], 0
            while j < len(word):
                if j + 1 < len(word) and word[j] == a and word[j + 1] == b:
                    merged.append(new)
                    j += 2
                else:
                    merged.append(word[j])
                    j += 1
            if len(merged) == len(word):
                continue  # the pair left this word in an earlier merge
            # Take the word's old pairs out of the counts and put its new pairs in.
            for pair in _pairs(word):
                changed[pair] -= f
            for pair in _pairs(merged):
                changed[pair] += f
                where.setdefault(pair, set()).add(i)
            words[i] = merged
        for pair, delta in changed.items():
            if delta:
                pair_counts[pair] += delta
                if pair_counts[pair] > 0:
                    heapq.heappush(heap, (-pair_counts[pair], *pair))
                else:
                    del pair_counts[pair]
        if new not in known:  # two pairs can spell the same piece ("ab"+"##c", "a"+"##bc")
            known.add(new)
            vocab.append(new)
        if progress is not None:
            progress()
    return BertTokenizer(vocab, do_lower_case=do_lower_case, strip_accents=strip_accents,
                         tokenize_chinese_chars=tokenize_chinese_chars)
