"""NVRTC compilation of hand-written CUDA kernels (issue: "Proving the CuPy path on CPU", part 3).

tinygrad_llm has no hand-written CUDA kernels yet: every GPU operation is a CuPy library call.
This test keeps that statement true. If someone adds a ``RawKernel``/``RawModule`` (or an
``ElementwiseKernel``/``ReductionKernel``), it fails and asks for the compile check that must come
with it: compile the CUDA C source with NVRTC from the ``nvidia-cuda-nvrtc-cu12`` wheel, which
works without a GPU (docs/backends.md, "NVRTC compilation of hand-written kernels").
"""

import pathlib
import re

PACKAGE = pathlib.Path(__file__).parents[1] / "tinygrad_llm"
KERNEL = re.compile(r"\b(RawKernel|RawModule|ElementwiseKernel|ReductionKernel)\s*\(")


def test_no_hand_written_cuda_kernels_without_an_nvrtc_check():
    found = [f"{path.relative_to(PACKAGE.parent)}:{n}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if KERNEL.search(line)]
    assert not found, ("CUDA kernel source found at " + ", ".join(found) + ": add an NVRTC "
                       "compile test for it here (cupy_backends.cuda.libs.nvrtc.createProgram + "
                       "compileProgram(['-arch=compute_80']), skipped when the wheel is absent) "
                       "and update docs/backends.md")
