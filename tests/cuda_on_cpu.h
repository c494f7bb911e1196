// Just enough of CUDA's execution model to run tinygrad_llm's kernels on a CPU, for tests.
//
// The kernel source (tinygrad_llm/kernels/*.cu, exactly as backend.py hands it to CuPy) is
// compiled by the host C++ compiler after this header. A launch starts blockDim.x * blockDim.y
// real threads (std::thread), which run the grid's blocks one after another, all together, with
// a barrier between blocks. So __syncthreads() is a real barrier across the block and
// __shfl_xor_sync a real exchange across the 32 threads of a warp (a buffer and a barrier per
// warp). __shared__ variables become static ones: one copy, which is right because only one
// block runs at a time.
//
// What this does NOT model: the GPU's memory model and scheduling (a race that the hardware would
// expose may not show here), CUDA's own math library (erff, expf, ... come from the host's libm),
// fused multiply-add contraction, launch limits and resources (ptxas checks those: tests/
// test_nvrtc.py), and speed. See tests/cuda_on_cpu.py.
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace cuda_on_cpu {
inline dim3 grid_dim, block_dim;                  // the launch
inline thread_local dim3 block_idx, thread_idx;   // the block now running, this thread in it
inline std::unique_ptr<std::barrier<>> block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline std::vector<float> warp_buffer;            // one slot per thread of the block

inline unsigned linear_thread() { return thread_idx.x + thread_idx.y * block_dim.x; }

template <typename Kernel, typename... Args>
void launch(Kernel kernel, dim3 grid, dim3 block, Args... args) {
    const unsigned n = block.x * block.y * block.z;
    grid_dim = grid;
    block_dim = block;
    block_barrier = std::make_unique<std::barrier<>>(n);
    warp_barriers.clear();
    for (unsigned w = 0; w < (n + 31) / 32; w++) {
        warp_barriers.push_back(std::make_unique<std::barrier<>>(std::min(32u, n - 32 * w)));
    }
    warp_buffer.assign(n, 0.0f);
    std::barrier<> block_done(n);                 // no thread starts a block before all finish
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (unsigned ty = 0; ty < block.y; ty++) {
        for (unsigned tx = 0; tx < block.x; tx++) {
            threads.emplace_back([=, &block_done] {
                thread_idx = dim3{tx, ty, 0};
                for (unsigned by = 0; by < grid.y; by++) {
                    for (unsigned bx = 0; bx < grid.x; bx++) {
                        block_idx = dim3{bx, by, 0};
                        kernel(args...);          // a thread may return early: uniformly per block
                        block_done.arrive_and_wait();
                    }
                }
            });
        }
    }
    for (auto& t : threads) t.join();
}
}  // namespace cuda_on_cpu

#define threadIdx cuda_on_cpu::thread_idx
#define blockIdx cuda_on_cpu::block_idx
#define blockDim cuda_on_cpu::block_dim
#define gridDim cuda_on_cpu::grid_dim
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

inline void __syncthreads() { cuda_on_cpu::block_barrier->arrive_and_wait(); }

// Every lane writes its value, the warp waits, every lane reads its partner's, the warp waits
// again (so no lane overwrites a slot before its partner has read it).
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
    (void)mask;
    const unsigned t = cuda_on_cpu::linear_thread();
    const unsigned warp = t / 32, lane = t % 32;
    cuda_on_cpu::warp_buffer[t] = v;
    cuda_on_cpu::warp_barriers[warp]->arrive_and_wait();
    const float other = cuda_on_cpu::warp_buffer[warp * 32 + (lane ^ lane_mask)];
    cuda_on_cpu::warp_barriers[warp]->arrive_and_wait();
    return other;
}

inline float __int_as_float(unsigned bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

using std::max;
using std::min;
