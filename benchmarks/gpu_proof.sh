#!/usr/bin/env bash
# The checks that need a real NVIDIA GPU, in one run of about 8 minutes, for a machine that has
# CuPy and torch already installed and no package index (so nothing is installed here):
#
#   OUT=/some/dir bash benchmarks/gpu_proof.sh
#
# 1. the GPU tests (python -m pytest -m gpu): the fused kernels against the NumPy formulas and the
#    CPU, on the device;
# 2. benchmarks/gpu_check.py: every op on cuda against cpu, and the baby GPT's step with the
#    kernels on and off against PyTorch eager;
# 3. a short examples/train_shakespeare.py --device cuda (the baby GPT, 300 iterations).
#
# Each writes its output under $OUT (default: ./gpu-proof), with nvidia-smi, the versions and
# each step's exit status; a failing step does not stop the next. Results go in
# docs/performance.md.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-proof}"
mkdir -p "$OUT"
rm -f "$OUT/summary.txt"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "$name: exit $rc in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

{
    date -u
    nvidia-smi || true
    python -c "import sys, numpy, cupy; print(sys.version); print('numpy', numpy.__version__, \
'cupy', cupy.__version__)" || true
    python -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())" || true
    python -c "from tinygrad_llm import backend; print(backend.cuda_status())"
} > "$OUT/machine.txt" 2>&1

step pytest_gpu 180 python -m pytest -m gpu -p no:cacheprovider -q -rs
step gpu_check 150 python benchmarks/gpu_check.py
step train_cuda 150 python examples/train_shakespeare.py --device cuda --max-iters 300 \
    --eval-interval 150 --eval-iters 20 --out-dir "$OUT/out-shakespeare-cuda" --no-progress
