"""Array kernels: the faster algorithms behind some ops, apart from the ops' math.

- ``cpu``: NumPy algorithms tuned for the CPU (a sorted scatter-add for table rows, formulas in
  cache-sized blocks, row means and column sums as BLAS products); on a GPU each falls back to the
  plain array call.
- ``cuda``: the launchers of the fused CUDA kernels, beside their CUDA C source (``*.cu``).

Both import only ``tinygrad_llm.backend``; the ops import them.
"""
