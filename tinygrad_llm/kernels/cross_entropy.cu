// Softmax cross-entropy of logits (N, V) against integer targets (N,), 'mean' reduction,
// one block per row. With p = softmax(logits) row by row and t the row's target:
//
//     m = max_c logits[c],   s = sum_c e^{logits[c] - m},   lse = m + log s
//     loss_n = log s - (logits[t] - m)  (= -log p[t]);   0 where t == ignore_index
//
// Forward writes each row's loss and lse (N,); backend.py takes the mean over the M rows whose
// target counts (M = count, a device scalar, so nothing is read back to the host). Backward
// recomputes p from the saved lse rather than keeping an (N, V) array:
//
//     dlogits[n, c] = (dloss / M) (p[n, c] - [c == t_n])      (0 for ignored rows)
//
// A target outside [0, V) that is not ignore_index gives loss NaN (the CPU path raises).

extern "C" __global__ void cross_entropy_forward(const float* logits, const long long* targets,
                                                 float* loss, float* lse, long long n_rows,
                                                 int v, long long ignore_index) {
    const long long row = blockIdx.x;
    if (row >= n_rows) return;
    const float* xr = logits + row * v;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < v; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m);                                                  // m = max logits
    float s = 0.0f;
    for (int j = threadIdx.x; j < v; j += blockDim.x) s += expf(xr[j] - m);
    s = block_sum(s);                                                  // s = sum e^{x - m}
    if (threadIdx.x == 0) {
        const long long t = targets[row];
        const float log_s = logf(s);
        if (t == ignore_index) {
            loss[row] = 0.0f;                                          // ignored: no loss
        } else if (t < 0 || t >= v) {
            loss[row] = QUIET_NAN;                                           // bad target
        } else {
            loss[row] = log_s - (xr[t] - m);                           // -log p[t]
        }
        lse[row] = m + log_s;                                          // saved for backward
    }
}

extern "C" __global__ void cross_entropy_backward(const float* logits, const long long* targets,
                                                  const float* lse, const float* dloss,
                                                  const float* count, float* dlogits,
                                                  long long n_rows, int v,
                                                  long long ignore_index) {
    const long long row = blockIdx.x;
    if (row >= n_rows) return;
    const float* xr = logits + row * v;
    float* dr = dlogits + row * v;
    const long long t = targets[row];
    // loss = sum_n loss_n / M  =>  each counted row's loss has upstream gradient dloss / M
    const float scale = (t == ignore_index) ? 0.0f : dloss[0] / count[0];
    const float l = lse[row];
    for (int j = threadIdx.x; j < v; j += blockDim.x) {
        float g = scale * expf(xr[j] - l);                             // scale * p
        if (j == t) g -= scale;                                        // minus scale * onehot
        dr[j] = g;
    }
}
