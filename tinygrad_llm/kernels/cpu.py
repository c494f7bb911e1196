r"""Array kernels tuned for the CPU: a scatter-add for table rows, formulas in cache-sized blocks,
and row means and column sums as BLAS products.

Each function takes arrays of either backend. On the CPU it runs a NumPy algorithm that is faster
than the obvious call; on a GPU it runs the obvious call (``backend.add_at``, the formula on the
whole array, the same products), which there is the fast one. The ops call these; their math is
unchanged by them.

Shapes: N rows, C columns (or channels), V rows of a table, D its width.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tinygrad_llm import backend

__all__ = ["scatter_add", "blockwise", "row_means", "column_sums", "BLOCK", "THREADS"]

LIGHT = 8  # ids repeated at most this often are added rank by rank; more often, summed first


def scatter_add(table, indices, values, scale=1.0):
    r"""In place: ``table[indices[n]] += scale * values[n]`` for every n; repeated indices add up.

    A plain ``table[indices] += values`` keeps only the last of repeated indices; ``np.add.at``
    adds them all but is slow. For the common case, rows of a table picked by a 1-D integer id
    array (an embedding's backward, a sparse gradient's update), the CPU path sorts the ids and
    then:

    - when every id is distinct, one fancy-indexed ``+=`` is already exact;
    - when ids repeat more than ``LIGHT`` times on average (characters of a small alphabet), it
      sums the rows of each id with ``np.add.reduceat`` and adds the sums to distinct rows;
    - otherwise (words of a large vocabulary, which follow a Zipf-like law: most repeat a few
      times, a few very often) it gives each row its rank among the rows with the same id. For
      rank r = 0, 1, ..., ``LIGHT`` - 1 it adds all rows of rank r with one fancy-indexed
      ``+=`` (no id repeats within a rank, so nothing is lost). Ids that repeat more than
      ``LIGHT`` times are summed per id with ``np.add.reduceat`` first.

    Any other index (a tuple, a boolean mask, a GPU array) goes to ``backend.add_at``.
    Reference: ``np.add.at(table, indices, scale * values)``.
    """
    idx = np.asarray(indices) if isinstance(indices, list) else indices
    if not (backend.is_cpu(table) and isinstance(idx, np.ndarray) and idx.dtype.kind in "iu"
            and idx.ndim == 1 and table.ndim >= 1 and values.ndim == table.ndim
            and values.shape[0] == idx.size):
        return backend.add_at(table, indices, values * scale if scale != 1 else values)
    if idx.size == 0:
        return table
    if idx.dtype.kind == "i" and idx.min() < 0:            # -1 and V-1 name one row
        idx = np.where(idx < 0, idx + table.shape[0], idx)
    order = np.argsort(idx, kind="stable")                  # equal ids side by side
    ids = idx[order]                                        # sorted (N,)
    first = np.empty(len(ids), bool)                        # (N,) where a new id starts
    first[0], first[1:] = True, ids[1:] != ids[:-1]
    if first.all():                                         # every id once
        table[idx] += values * scale if scale != 1 else values
        return table
    starts = np.flatnonzero(first)                          # (U,) one per distinct id
    if len(ids) > LIGHT * len(starts):                      # ids repeat often on average
        sums = np.add.reduceat(values[order], starts, axis=0)        # (U, D) one sum per id
        if scale != 1:
            sums *= scale
        table[ids[starts]] += sums                          # distinct ids: plain += is exact
        return table
    segment = np.cumsum(first) - 1                          # (N,) which distinct id
    rank = np.arange(len(ids)) - starts[segment]            # (N,) place among equal ids
    counts = np.diff(np.append(starts, len(ids)))           # (U,) repeats of each id
    heavy_row = (counts > LIGHT)[segment]                   # (N,)
    for r in range(min(LIGHT, int(counts.max()))):
        rows = np.flatnonzero((rank == r) & ~heavy_row)     # distinct ids
        if len(rows) == 0:
            break
        chunk = values[order[rows]]                         # (R, D) a copy
        if scale != 1:
            chunk *= scale
        table[ids[rows]] += chunk
    rows = np.flatnonzero(heavy_row)
    if len(rows):
        heavy_ids = ids[rows]
        heads = np.flatnonzero(np.append(True, heavy_ids[1:] != heavy_ids[:-1]))
        sums = np.add.reduceat(values[order[rows]], heads, axis=0)   # one sum per heavy id
        if scale != 1:
            sums *= scale
        table[heavy_ids[heads]] += sums
    return table


def row_means(x2):
    r"""The mean of each row of ``x2`` (N, C), as the BLAS product ``x2 @ (1/C, ..., 1/C)``.

    BLAS's gemv is several times faster than NumPy's ``mean(axis=1)`` over short rows.
    Reference: ``x2.mean(axis=1)``.
    """
    xp = backend.get_xp(x2)
    return x2 @ xp.full(x2.shape[1], 1 / x2.shape[1], dtype=x2.dtype)  # (N,)


def column_sums(x2):
    r"""The sum of each column of ``x2`` (N, C), as the BLAS product ``(1, ..., 1) @ x2``.

    Faster than a column sum over many rows. Reference: ``x2.sum(axis=0)``.
    """
    xp = backend.get_xp(x2)
    return xp.ones(x2.shape[0], dtype=x2.dtype) @ x2                    # (C,)


BLOCK = 1 << 15  # elements per block in blockwise(): 128 KiB of float32; a formula's three
                 # or four live temporaries stay inside a 512 KiB L2


THREADS = 2  # worker threads for blockwise() on the CPU, for arrays of more than THREADED
             # elements (NumPy's ufuncs release the GIL, so they run on both cores)
THREADED = 1 << 20  # 4 MiB of float32: below this, starting the threads costs more than it saves


def blockwise(f, *arrays, threads=None):
    r"""``f(*arrays)`` for an elementwise ``f`` of same-shaped arrays, block by block on the CPU.

    ``f`` returns one array or a tuple of arrays (for example a value and its derivative), each
    shaped like its inputs; ``blockwise`` returns the same. A formula such as the GELU's normal
    CDF is about 30 NumPy passes, each of which writes a temporary as large as the input. On a
    big array every pass then goes out to main memory (and a fresh multi-MiB temporary costs
    page faults); on a 32K-element block all 30 stay in cache. On the GPU each pass is a kernel
    launch, so there ``f`` runs once on the whole array. Reference: ``f(*arrays)``.

    ``threads`` (default ``THREADS``, for arrays of more than ``THREADED`` elements; 1 below)
    > 1 hands runs of ``RUN_BLOCKS`` blocks to that many threads, which take the next run as
    they finish one (NumPy's ufuncs release the GIL, so they run in parallel); every block gets
    the same bits as with one thread.
    """
    x = arrays[0]
    if not backend.is_cpu(x) or x.size <= 2 * BLOCK:
        return f(*arrays)
    if threads is None:
        threads = THREADS if x.size > THREADED else 1
    flats = [a.reshape(-1) for a in arrays]                   # (N,) each
    first = f(*[a[:BLOCK] for a in flats])
    single = not isinstance(first, tuple)
    first = (first,) if single else first
    outs = tuple(np.empty(x.size, dtype=r.dtype) for r in first)  # (N,) each
    for out, r in zip(outs, first):
        out[:BLOCK] = r

    def run(start, stop):                                     # blocks in [start, stop)
        for i in range(start, stop, BLOCK):
            results = f(*[a[i:i + BLOCK] for a in flats])
            for out, r in zip(outs, (results,) if single else results):
                out[i:i + BLOCK] = r

    if threads > 1:
        run_size = RUN_BLOCKS * BLOCK
        starts = range(BLOCK, x.size, run_size)
        list(_pool(threads).map(lambda i: run(i, min(i + run_size, x.size)), starts))
    else:
        run(BLOCK, x.size)
    outs = tuple(out.reshape(x.shape) for out in outs)
    return outs[0] if single else outs


RUN_BLOCKS = 8   # blocks a thread takes at a time: small enough to share the work evenly
_POOLS = {}      # threads -> a ThreadPoolExecutor, started on first use


def _pool(threads):
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="blockwise")
    return _POOLS[threads]
