r"""NVRTC compilation of the hand-written CUDA kernels, with no GPU (docs/backends.md, "Proving
the CUDA path without a GPU", part 3).

Every kernel file in tinygrad_llm/kernels/ is compiled exactly as kernels/cuda.py hands it to CuPy
(``cuda.kernel_source``, with the file's NVRTC options) by NVRTC itself, loaded with ctypes
from the ``nvidia-cuda-nvrtc-cu12`` wheel: no cupy, no driver, no GPU needed. For sm_80 (A100)
and sm_90 (H100) it must compile without an error or a warning, to PTX and to a CUBIN (the
second step runs ptxas, the assembler, which checks registers and shared memory), and every
``extern "C"`` kernel that kernels/cuda.py launches (``cuda.KERNELS``) must be an entry point of
the PTX. Two planted faults show the check can fail: a typo, and a kernel name the launcher
asks for that the source does not define.

This proves the CUDA C is valid and complete. It does not run a kernel: whether the kernels
compute the right numbers is tests/test_cuda_kernels.py's job, on the CPU (the same source built
by g++ over tests/cuda_on_cpu.h) and on a real GPU (``-m gpu``).
The tests skip when the wheel is absent (``pip install nvidia-cuda-nvrtc-cu12``).
"""

import ctypes
import importlib.util
import pathlib
import re

import pytest

from tinygrad_llm.kernels import cuda

ARCHS = ("sm_80", "sm_90")


def _load_nvrtc():
    """libnvrtc.so.12 from the nvidia-cuda-nvrtc-cu12 wheel, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    except ModuleNotFoundError:      # no "nvidia" namespace package at all
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = pathlib.Path(folder) / "lib" / "libnvrtc.so.12"
        if path.exists():
            lib = ctypes.CDLL(str(path))
            lib.nvrtcGetErrorString.restype = ctypes.c_char_p
            return lib
    return None


NVRTC = _load_nvrtc()
needs_nvrtc = pytest.mark.skipif(NVRTC is None, reason="the nvidia-cuda-nvrtc-cu12 wheel is not "
                                 "installed (pip install nvidia-cuda-nvrtc-cu12)")


class CompileError(Exception):
    """NVRTC rejected a source: the message is its log."""


def nvrtc_compile(source, name, options):
    r"""Compile CUDA C ``source`` with NVRTC; return (ptx text, cubin bytes, log text).

    The NVRTC C API: nvrtcCreateProgram, nvrtcCompileProgram, nvrtcGetProgramLogSize /
    nvrtcGetProgramLog, nvrtcGetPTXSize / nvrtcGetPTX, nvrtcGetCUBINSize / nvrtcGetCUBIN
    (CUBIN only for a real architecture, ``-arch=sm_XX``), nvrtcDestroyProgram.
    """
    lib = NVRTC
    program = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(),
                                       0, None, None), "nvrtcCreateProgram")
    try:
        argv = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        result = lib.nvrtcCompileProgram(program, len(options), argv)
        size = ctypes.c_size_t()
        _check(lib, lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)), "log size")
        log = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
        log = log.value.decode(errors="replace")
        if result != 0:
            raise CompileError(f"{lib.nvrtcGetErrorString(result).decode()}:\n{log}")
        _check(lib, lib.nvrtcGetPTXSize(program, ctypes.byref(size)), "nvrtcGetPTXSize")
        ptx = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetPTX(program, ptx), "nvrtcGetPTX")
        _check(lib, lib.nvrtcGetCUBINSize(program, ctypes.byref(size)), "nvrtcGetCUBINSize")
        cubin = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetCUBIN(program, cubin), "nvrtcGetCUBIN")
        return ptx.value.decode(), cubin.raw, log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def _check(lib, result, what):
    if result != 0:
        raise RuntimeError(f"{what}: {lib.nvrtcGetErrorString(result).decode()}")


def entry_points(ptx):
    """The kernels a PTX module defines (``.visible .entry name(``): what CuPy can look up."""
    return set(re.findall(r"\.visible\s+\.entry\s+(\w+)\s*\(", ptx))


def compile_kernel_file(file, arch, source=None):
    names, options = cuda.KERNELS[file]
    source = cuda.kernel_source(file) if source is None else source
    return nvrtc_compile(source, file, [f"-arch={arch}", *options])


def test_every_kernel_file_is_listed():
    """A .cu file that cuda.KERNELS forgets would never be compiled here (nor launched)."""
    on_disk = {p.name for p in cuda.KERNEL_DIR.glob("*.cu")}
    assert on_disk == set(cuda.KERNELS), on_disk ^ set(cuda.KERNELS)
    launched = set(cuda._KERNEL_FILE)
    assert len(launched) == sum(len(names) for names, _ in cuda.KERNELS.values())


@needs_nvrtc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", sorted(cuda.KERNELS))
def test_kernel_compiles_with_nvrtc_and_defines_what_the_launcher_calls(file, arch):
    ptx, cubin, log = compile_kernel_file(file, arch)
    assert "warning" not in log.lower(), log
    assert f".target {arch}" in ptx
    assert cubin[:4] == b"\x7fELF"                          # ptxas made a device binary
    names = cuda.KERNELS[file][0]
    missing = set(names) - entry_points(ptx)
    assert not missing, f"{file}: the launcher calls {sorted(missing)}, which it does not define"
    for name in names:
        assert name.encode() in cubin                       # and the binary exports it


@needs_nvrtc
def test_a_planted_typo_fails_with_the_file_and_line():
    source = cuda.kernel_source("gelu.cu").replace("erff(", "erfff(", 1)
    with pytest.raises(CompileError) as info:
        compile_kernel_file("gelu.cu", "sm_80", source)
    message = str(info.value)
    assert "NVRTC_ERROR_COMPILATION" in message
    assert re.search(r'gelu\.cu\(\d+\): error: identifier "erfff" is undefined', message)


@needs_nvrtc
def test_a_kernel_the_launcher_calls_but_the_source_lacks_is_caught():
    source = cuda.kernel_source("adamw.cu").replace("void adamw_step(", "void adam_step(")
    ptx, _, _ = compile_kernel_file("adamw.cu", "sm_90", source)   # valid C, wrong name
    assert "adamw_step" not in entry_points(ptx) and "adam_step" in entry_points(ptx)


@needs_nvrtc
def test_without_extern_c_the_name_is_mangled_and_would_not_be_found():
    source = cuda.kernel_source("adamw.cu").replace('extern "C" __global__', "__global__")
    ptx, _, _ = compile_kernel_file("adamw.cu", "sm_90", source)
    assert "adamw_step" not in entry_points(ptx)            # C++ mangles it: _Z10adamw_step...
