r"""Tuning of the C allocator for training loops: ``keep_freed_memory``.

Not part of the device seam: it changes how this process's ``malloc`` hands memory back to the
system, which matters only for a long NumPy training loop. It is a call you make, never a side
effect of an import.
"""

__all__ = ["keep_freed_memory"]


def keep_freed_memory():
    """Ask the C allocator (glibc's malloc) to keep freed memory for reuse. Returns True if it did.

    A NumPy training step allocates and frees the same few hundred temporaries every step. By
    default glibc serves blocks over 128 KiB-32 MiB (its threshold adapts) with fresh ``mmap``s
    and gives freed heap tops back to the system, so the next step takes those pages again: up to
    ~10,000 page faults and 20 ms per step of the GPT example, depending on the allocation
    history. Serving blocks up to 32 MiB from the heap and trimming it only past 512 MiB free
    removes them: the pages stay mapped and are reused. Peak memory does not grow (what is kept
    was in use a moment before). It changes the whole process, so it is a call you make
    (examples/train_shakespeare.py and benchmarks/bench_gpt.py do), never a side effect of an
    import. Linux with glibc only; elsewhere it does nothing and returns False.
    """
    import ctypes  # noqa: PLC0415 - only here
    import ctypes.util  # noqa: PLC0415
    m_trim_threshold, m_mmap_threshold = -1, -3  # the option numbers in glibc's malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)
                    and libc.mallopt(m_trim_threshold, 512 << 20))
    except (OSError, AttributeError):  # not glibc: no mallopt
        return False
