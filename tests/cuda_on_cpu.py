r"""Run tinygrad_llm's CUDA kernels on the CPU, for tests (no GPU here, ever).

``kernel(name)`` returns a callable ``f(grid, block, args)`` that runs kernel ``name`` from
tinygrad_llm/kernels/ -- the CUDA C source exactly as kernels/cuda.py hands it to CuPy
(``cuda.kernel_source``) -- compiled by the host C++ compiler on top of cuda_on_cpu.h, which
supplies threadIdx/blockIdx, a real __syncthreads() barrier and a real warp shuffle (one OS
thread per CUDA thread, one block at a time). Arrays are NumPy arrays (or the CuPy stand-in's,
unwrapped), passed as raw pointers, as CuPy passes device arrays.

So the kernels' indexing, reductions, barriers and launch geometry really execute. Each array
is handed to the kernel inside a larger buffer whose 4 KiB on either side hold float NaNs: a
write outside the array fails the launch (the guard changed), and a read outside it brings a
NaN into the result. What it does not model is listed in cuda_on_cpu.h: the GPU's memory model
and scheduling, CUDA's math library, FMA contraction, resources, speed. ``available()`` is
False without g++ (tests skip).
"""

import ctypes
import hashlib
import pathlib
import re
import shutil
import subprocess
import tempfile

import numpy as np

from tinygrad_llm.kernels import cuda

HEADER = pathlib.Path(__file__).with_name("cuda_on_cpu.h")
COMPILER = shutil.which("g++")
CACHE = pathlib.Path(tempfile.gettempdir()) / "tinygrad_llm_cuda_on_cpu"
C_ARGS = {"float*": ctypes.c_void_p, "long long*": ctypes.c_void_p, "float": ctypes.c_float,
          "int": ctypes.c_int, "long long": ctypes.c_longlong}
KERNEL = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')

GUARD = 4096                                     # bytes of NaNs on either side of each array
# a signalling NaN: reading it as a float gives NaN, and any float the kernel writes over it
# (even a NaN computed from it, which comes out quiet: 0x7fe5a5a5) changes its bits
NAN_BYTES = np.full(GUARD // 4, 0x7FA5A5A5, dtype=np.uint32).view(np.uint8)

_libraries = {}


def available():
    return COMPILER is not None


def signatures(source):
    """kernel name -> list of (C type without const, parameter name, parameter text)."""
    out = {}
    for name, params in KERNEL.findall(source):
        out[name] = []
        for param in params.split(","):
            text = " ".join(param.split())
            words = text.replace("const ", "")
            ctype, pname = words.rsplit(" ", 1)
            if pname.startswith("*"):
                ctype, pname = ctype + "*", pname[1:]
            out[name].append((ctype.replace(" *", "*"), pname, text))
    return out


def _library(file):
    """Compile ``file`` (with a launch_<kernel> wrapper per kernel) once; cached by content."""
    if file in _libraries:
        return _libraries[file]
    source = cuda.kernel_source(file)
    wrappers = []
    for name, params in signatures(source).items():
        declared = ", ".join(text for _, _, text in params)
        passed = ", ".join(pname for _, pname, _ in params)
        wrappers.append(
            f'extern "C" void launch_{name}(unsigned gx, unsigned gy, unsigned bx, unsigned by, '
            f"{declared}) {{\n    cuda_on_cpu::launch({name}, dim3{{gx, gy, 1}}, "
            f"dim3{{bx, by, 1}}, {passed});\n}}\n")
    program = (f'#include "{HEADER.name}"\n{source}\n' + "\n".join(wrappers))
    digest = hashlib.sha256((program + HEADER.read_text()).encode()).hexdigest()[:16]
    CACHE.mkdir(exist_ok=True)
    so = CACHE / f"{file}.{digest}.so"
    if not so.exists():
        cpp = CACHE / f"{file}.{digest}.cpp"
        cpp.write_text(program)
        tmp = so.with_suffix(f".{id(program)}.tmp")
        subprocess.run([COMPILER, "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC",
                        "-w", f"-I{HEADER.parent}", str(cpp), "-o", str(tmp)],
                       check=True, capture_output=True, text=True)
        tmp.replace(so)                       # atomic: a parallel run never loads half a file
    lib = ctypes.CDLL(str(so))
    _libraries[file] = (lib, signatures(source))
    return _libraries[file]


def kernel(name):
    """A callable ``f(grid, block, args)`` running kernel ``name`` on the CPU."""
    lib, sigs = _library(cuda._KERNEL_FILE[name])
    params = sigs[name]
    function = getattr(lib, f"launch_{name}")
    function.argtypes = [ctypes.c_uint] * 4 + [C_ARGS[ctype] for ctype, _, _ in params]
    function.restype = None

    def run(grid, block, args):
        grid, block = tuple(grid) + (1,), tuple(block) + (1,)
        values, guarded = [], []
        for (ctype, pname, _), a in zip(params, args):
            if ctype.endswith("*"):
                a = getattr(a, "_a", a)                     # the stand-in's array, unwrapped
                assert isinstance(a, np.ndarray) and a.flags.c_contiguous
                raw = a.reshape(-1).view(np.uint8)          # the array's bytes (a view)
                buffer = np.concatenate([NAN_BYTES, raw, NAN_BYTES])   # NaN | array | NaN
                guarded.append((pname, raw, buffer))
                values.append(buffer.ctypes.data + GUARD)
            else:
                values.append(a.item())
        function(grid[0], grid[1], block[0], block[1], *values)
        for pname, raw, buffer in guarded:
            if not (np.array_equal(buffer[:GUARD], NAN_BYTES)
                    and np.array_equal(buffer[GUARD + raw.size:], NAN_BYTES)):
                raise AssertionError(f"{name} wrote outside its argument {pname!r}")
            raw[...] = buffer[GUARD:GUARD + raw.size]       # the kernel's writes, back
    return run
