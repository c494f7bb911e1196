// Adam / AdamW over one flat float32 buffer: one thread per element (a grid-stride loop).
// Compiled with --fmad=false and written in the same operation order as tinygrad_llm/optim.py
// (optim.adam_update_), so each float32 rounding step matches the NumPy update:
//
//     p <- p decay                          (AdamW: decay = 1 - lr wd;  Adam: decay = 1)
//     g <- g + l2 p                          (Adam: l2 = wd;  AdamW: l2 = 0)
//     m <- beta1 m + (1 - beta1) g           (exp_avg)
//     v <- beta2 v + (1 - beta2) g^2         (exp_avg_sq)
//     p <- p - (m / (sqrt(v) / sqrt(1 - beta2^t) + eps)) lr / (1 - beta1^t)
//
// The scalars that depend on the step t (inv_sqrt_bias2 = 1 / sqrt(1 - beta2^t), step_size =
// lr / (1 - beta1^t)) are computed on the host in double and passed as float32, as NumPy does.

extern "C" __global__ void adamw_step(float* p, const float* g, float* m, float* v,
                                      float decay, float l2, float beta1, float one_minus_beta1,
                                      float beta2, float one_minus_beta2,
                                      float inv_sqrt_bias2, float eps, float step_size,
                                      long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float pi = p[i];
        float gi = g[i];
        if (l2 != 0.0f) gi = gi + l2 * pi;                  // Adam: g <- g + wd p
        if (decay != 1.0f) pi = pi * decay;                 // AdamW: p <- p (1 - lr wd)
        const float mi = m[i] * beta1 + one_minus_beta1 * gi;           // m <- b1 m + (1-b1) g
        const float vi = v[i] * beta2 + one_minus_beta2 * (gi * gi);    // v <- b2 v + (1-b2) g^2
        const float denom = sqrtf(vi) * inv_sqrt_bias2 + eps;           // sqrt(v / b2c) + eps
        p[i] = pi - (mi / denom) * step_size;                           // p <- p - lr m^ / denom
        m[i] = mi;
        v[i] = vi;
    }
}
