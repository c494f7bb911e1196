// Shared helpers for tinygrad_llm's CUDA kernels (prepended to each .cu file by kernels/cuda.py).
//
// Row kernels run one block per row, with blockDim.x a multiple of 32 (whole warps) and at most
// 1024. A block-wide sum or max first reduces inside each warp with shuffles (no shared memory),
// then reduces the per-warp results, which every warp reads back from shared memory.

#define WARP_SIZE 32
#define FULL_MASK 0xffffffffu
// NVRTC has no math.h, so no INFINITY or NAN: spell them by their IEEE bits
#define NEG_INF __int_as_float(0xff800000)
#define QUIET_NAN __int_as_float(0x7fffffff)

// The sum of v over the 32 lanes of a warp; every lane gets the result (butterfly reduction).
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    }
    return v;
}

// The max of v over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float warp_max(float v) {
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    }
    return v;
}

// The sum of v over the whole block; every thread gets the result.
__device__ float block_sum(float v) {
    __shared__ float warp_sums[WARP_SIZE];           // one slot per warp (at most 32 warps)
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    const int n_warps = blockDim.x / WARP_SIZE;
    v = warp_sum(v);
    __syncthreads();                                 // a previous call's readers are done
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    v = (lane < n_warps) ? warp_sums[lane] : 0.0f;
    return warp_sum(v);                              // each warp sums the per-warp sums
}

// The max of v over the whole block; every thread gets the result.
__device__ float block_max(float v) {
    __shared__ float warp_maxes[WARP_SIZE];
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    const int n_warps = blockDim.x / WARP_SIZE;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) warp_maxes[warp] = v;
    __syncthreads();
    v = (lane < n_warps) ? warp_maxes[lane] : NEG_INF;
    return warp_max(v);
}
