r"""Two trainers for byte-level BPE: a plain reference one, and a fast one with the same merges.

Both follow one rule (docs/tokenizer.md has a worked example):

    repeat num_merges times:
        count every adjacent pair (a, b) of tokens inside each chunk (windows overlap, so
            "aaa" holds the pair (a, a) twice; pairs never cross chunk boundaries)
        pick the pair with the largest count; on a tie, the pair whose first occurrence comes
            earliest in the current token sequence (all chunks laid end to end, in text order)
        replace every occurrence of it, scanning left to right, by the new token 256 + k

This is the rule of karpathy's minbpe and of tiktoken's educational trainer, so for the same text,
split pattern and size, the merge lists agree with theirs.

Cost, with N the number of bytes in the text, U the number of distinct chunks and M the merges:

* ``train_reference`` recounts every pair of the whole text for each merge: O(M N).
* ``train_fast`` counts each distinct chunk once, keeps the pair counts up to date and, for each
  pair, the set of chunks that hold it. A merge then touches only the chunks holding the merged
  pair, and a heap finds the next pair in O(log P). The total is about the sum, over merges, of
  the lengths of the chunks touched, which on natural text is thousands of times less than M N.

Chunks are byte strings; token ids 0..255 are the bytes themselves while training.
"""
import heapq
from collections import defaultdict

__all__ = ["merge_pair", "train_reference", "train_fast"]


def merge_pair(ids, pair, new_id):
    r"""Replace each occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    Occurrences never overlap: in [a, a, a] the pair (a, a) is replaced once, giving [aa, a].
    """
    a, b = pair
    out = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_reference(chunks, num_merges, progress=None):
    r"""Learn up to ``num_merges`` merges by recounting every pair after each merge: O(M N).

    ``chunks`` is the list of all chunks of the text, as bytes, in text order (repeats included).
    Returns the merges in rank order, a list of pairs of token ids; merge k makes token 256 + k.
    Stops early when no pair is left. ``progress`` (optional) is called once per merge.
    """
    seqs = [list(chunk) for chunk in chunks]  # a byte string iterates as its byte values 0..255
    merges = []
    for k in range(num_merges):
        # A dict remembers insertion order, so its keys come in order of first occurrence.
        counts = {}
        for seq in seqs:
            for pair in zip(seq, seq[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        # max() returns the FIRST key with the largest count: the earliest pair wins a tie.
        best = max(counts, key=counts.get)
        seqs = [merge_pair(seq, best, 256 + k) for seq in seqs]
        merges.append(best)
        if progress is not None:
            progress()
    return merges


def train_fast(chunk_counts, num_merges, progress=None):
    r"""Learn the same merges as ``train_reference``, touching only the chunks that change.

    ``chunk_counts`` maps each distinct chunk (bytes) to how often it occurs, in order of first
    appearance (``collections.Counter`` of the chunk list keeps that order).

    State, for distinct chunks ``c = 0..U-1`` with token lists ``words[c]`` and counts ``freqs[c]``:

    * ``counts[p]``: the pair's count over the text, ``sum_c freqs[c] * (occurrences of p in c)``;
    * ``where[p]``: chunks that may hold ``p`` (a superset: stale entries are dropped when seen);
    * ``heap``: entries ``(-count, pos, p)``, so the top is the most frequent pair and, among equal
      counts, the one with the smallest ``pos``.

    ``pos`` encodes a first occurrence as ``(c << shift) | byte_offset``: the earliest chunk first,
    then the earliest place inside it. It is the tie-break of the rule. Chunk c's first
    appearance in the text is before chunk c+1's, and all copies of a chunk are tokenized alike,
    so the first occurrence of a pair over the whole text is its first occurrence inside the
    lowest-numbered chunk that holds it. Byte offsets (not token indices) never move when tokens
    merge, so an old ``pos`` stays comparable with a new one.

    Lazy invalidation. Heap entries are never updated in place. What makes that safe: a merge
    can only LOWER the count and RAISE the first position of an existing pair (it removes
    occurrences), and every pair it creates contains the new token and is pushed afterwards. So
    every live pair has an entry whose key is <= its true key. When an entry reaches the top we
    compare it with the truth: a stale count, or a first position that moved, is pushed back
    corrected; an entry that matches is the true best pair.
    """
    words = [list(chunk) for chunk in chunk_counts]
    freqs = list(chunk_counts.values())
    shift = max((len(w) for w in words), default=1).bit_length()
    tlen = [1] * 256  # tlen[t]: the length in bytes of token t, to turn indices into offsets

    counts = {}
    where = defaultdict(set)
    first = {}
    for c, (w, f) in enumerate(zip(words, freqs)):
        for j in range(len(w) - 1):
            p = (w[j], w[j + 1])
            counts[p] = counts.get(p, 0) + f
            where[p].add(c)
            if p not in first:
                first[p] = (c << shift) | j  # tokens are still single bytes: index == offset
    heap = [(-n, first[p], p) for p, n in counts.items()]
    heapq.heapify(heap)

    def first_position(p):
        # Lowest chunk that really holds p, then the byte offset of p's first occurrence in it.
        a, b = p
        chunks = where[p]
        while chunks:
            c = min(chunks)
            w = words[c]
            off = 0
            for j in range(len(w) - 1):
                if w[j] == a and w[j + 1] == b:
                    return (c << shift) | off
                off += tlen[w[j]]
            chunks.discard(c)  # a stale entry: the pair left this chunk in an earlier merge
        return None

    merges = []
    while len(merges) < num_merges and heap:
        neg_count, pos, pair = heapq.heappop(heap)
        n = counts.get(pair, 0)
        if n <= 0:
            continue  # the pair is gone
        if n != -neg_count:
            heapq.heappush(heap, (-n, pos, pair))  # count went down; pos is still a lower bound
            continue
        true_pos = first_position(pair)
        if true_pos != pos:
            heapq.heappush(heap, (-n, true_pos, pair))  # its first occurrence moved later
            continue

        # Merge `pair` into token `new` in every chunk that holds it, in chunk order, and apply
        # the count changes locally around each merge site:
        #   ... x a b y ...  ->  ... x new y ...
        #   (x, a) and (b, y) lose f occurrences; (x, new) and (new, y) gain f.
        # x is the token already written to `out`, so for "a b a b" the second site sees
        # x = new: the (new, a) credited by the first site is taken back and (new, new) gained.
        a, b = pair
        new = 256 + len(merges)
        created = {}  # pair made by this merge -> lowest chunk it appeared in
        for c in sorted(where.pop(pair)):
            w, f = words[c], freqs[c]
            out = []
            i, m = 0, len(w)
            while i < m:
                if w[i] == a and i + 1 < m and w[i + 1] == b:
                    if out:
                        x = out[-1]
                        counts[(x, a)] -= f
                        q = (x, new)
                        counts[q] = counts.get(q, 0) + f
                        if q not in created:
                            created[q] = c
                        where[q].add(c)
                    if i + 2 < m:
                        y = w[i + 2]
                        counts[(b, y)] -= f
                        q = (new, y)
                        counts[q] = counts.get(q, 0) + f
                        if q not in created:
                            created[q] = c
                        where[q].add(c)
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[c] = out
        del counts[pair]  # every occurrence is merged (a == b runs such as "aaa" leave none)
        tlen.append(tlen[a] + tlen[b])
        for q, c in created.items():
            if counts[q] > 0:
                # (c << shift) is a lower bound of q's first position (offset 0 of its first
                # chunk); it is made exact when the entry reaches the top.
                heapq.heappush(heap, (-counts[q], c << shift, q))
        merges.append(pair)
        if progress is not None:
            progress()
    return merges
