// Layer normalisation over the last axis: x is (N, C) row-major, one block per row.
//
//     mu = mean(x),  var = mean((x - mu)^2),  rstd = 1 / sqrt(var + eps)
//     xhat = (x - mu) rstd,   y = xhat * w + b
//
// Forward saves mean and rstd (N,) for backward, which recomputes xhat from x (cheaper than
// writing and re-reading an (N, C) array). Backward, with dxhat = dy * w:
//
//     dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat * xhat))       (layer_norm_backward)
//     dw = sum over rows of dy * xhat,   db = sum over rows of dy     (layer_norm_backward_params)
//
// The derivation is in docs/gpt.md. w and b are always given (backend.py passes ones and zeros
// for a layer norm without them).

extern "C" __global__ void layer_norm_forward(const float* x, const float* w, const float* b,
                                              float* y, float* mean, float* rstd,
                                              long long n_rows, int c, float eps) {
    const long long row = blockIdx.x;
    if (row >= n_rows) return;
    const float* xr = x + row * c;
    float* yr = y + row * c;
    // two passes over the row, as the NumPy reference: the mean, then the centred variance
    float s = 0.0f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) s += xr[j];
    const float mu = block_sum(s) / c;                                 // mu = mean(x)
    float s2 = 0.0f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        const float d = xr[j] - mu;
        s2 += d * d;
    }
    const float r = 1.0f / sqrtf(block_sum(s2) / c + eps);             // rstd = 1/sqrt(var+eps)
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        yr[j] = (xr[j] - mu) * r * w[j] + b[j];                        // y = xhat w + b
    }
    if (threadIdx.x == 0) {
        mean[row] = mu;                                                // saved for backward
        rstd[row] = r;
    }
}

extern "C" __global__ void layer_norm_backward(const float* dy, const float* x, const float* w,
                                               const float* mean, const float* rstd, float* dx,
                                               long long n_rows, int c) {
    const long long row = blockIdx.x;
    if (row >= n_rows) return;
    const float* dyr = dy + row * c;
    const float* xr = x + row * c;
    float* dxr = dx + row * c;
    const float mu = mean[row], r = rstd[row];
    // the two row means backward needs: mean(dxhat) and mean(dxhat * xhat)
    float s = 0.0f, sx = 0.0f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        const float dxhat = dyr[j] * w[j];                             // y = xhat w + b
        s += dxhat;
        sx += dxhat * (xr[j] - mu) * r;
    }
    const float mean_dxhat = block_sum(s) / c;
    const float mean_dxhat_xhat = block_sum(sx) / c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        const float xhat = (xr[j] - mu) * r;
        const float dxhat = dyr[j] * w[j];
        dxr[j] = r * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
    }
}

// dw and db are sums over all N rows, for each of the C columns. Each block takes a tile of
// 32 columns (threadIdx.x) and one chunk of rows (blockIdx.y), which its 8 rows of threads
// (threadIdx.y) walk in steps of 8; the 8 partial sums per column are added in shared memory.
// The result is one partial sum per chunk, dw_partial and db_partial (n_chunks, C), which
// backend.py adds up over the chunks (a deterministic order, unlike atomicAdd).
#define PARAM_TILE 32
#define PARAM_ROWS 8

extern "C" __global__ void layer_norm_backward_params(const float* dy, const float* x,
                                                      const float* mean, const float* rstd,
                                                      float* dw_partial, float* db_partial,
                                                      long long n_rows, int c,
                                                      long long rows_per_chunk) {
    __shared__ float dw_tile[PARAM_ROWS][PARAM_TILE];
    __shared__ float db_tile[PARAM_ROWS][PARAM_TILE];
    const int col = blockIdx.x * PARAM_TILE + threadIdx.x;
    const long long chunk = blockIdx.y;
    const long long start = chunk * rows_per_chunk;
    const long long end = min(start + rows_per_chunk, n_rows);
    float dw = 0.0f, db = 0.0f;
    if (col < c) {
        for (long long n = start + threadIdx.y; n < end; n += PARAM_ROWS) {
            const float g = dy[n * c + col];
            dw += g * (x[n * c + col] - mean[n]) * rstd[n];             // dy * xhat
            db += g;                                                    // dy
        }
    }
    dw_tile[threadIdx.y][threadIdx.x] = dw;
    db_tile[threadIdx.y][threadIdx.x] = db;
    __syncthreads();
    if (threadIdx.y == 0 && col < c) {
        for (int k = 1; k < PARAM_ROWS; k++) {
            dw += dw_tile[k][threadIdx.x];
            db += db_tile[k][threadIdx.x];
        }
        dw_partial[chunk * c + col] = dw;
        db_partial[chunk * c + col] = db;
    }
}
