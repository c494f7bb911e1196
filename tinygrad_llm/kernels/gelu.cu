// GELU, y = x Phi(x), forward and backward: one thread per element (a grid-stride loop).
//
// exact ("none"):  Phi(x) = (1 + erf(x / sqrt 2)) / 2,   phi(x) = e^{-x^2/2} / sqrt(2 pi)
//     y  = x Phi(x)
//     dx = dy (Phi(x) + x phi(x))
// tanh:  t = tanh u,   u = sqrt(2/pi) (x + 0.044715 x^3)
//     y  = x (1 + t) / 2
//     dx = dy ((1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2)
//
// Backward recomputes Phi(x) (or t) from x rather than reading a saved array: one read of x
// costs less than writing and reading back a second array the size of x.
// erff, expf and tanhf are CUDA's single-precision math library (no header needed in NVRTC).

#define SQRT1_2 0.70710678118654752440f          // 1 / sqrt 2
#define INV_SQRT_2PI 0.39894228040143267794f     // 1 / sqrt(2 pi)
#define SQRT_2_OVER_PI 0.79788456080286535588f   // sqrt(2 / pi)
#define GELU_C 0.044715f

extern "C" __global__ void gelu_forward(const float* x, float* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float xi = x[i];
        const float cdf = 0.5f * (1.0f + erff(xi * SQRT1_2));       // Phi(x)
        y[i] = xi * cdf;                                             // y = x Phi(x)
    }
}

extern "C" __global__ void gelu_backward(const float* dy, const float* x, float* dx,
                                         long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float xi = x[i];
        const float cdf = 0.5f * (1.0f + erff(xi * SQRT1_2));       // Phi(x)
        const float pdf = expf(-0.5f * xi * xi) * INV_SQRT_2PI;      // phi(x)
        dx[i] = dy[i] * (cdf + xi * pdf);                            // dx = dy (Phi + x phi)
    }
}

extern "C" __global__ void gelu_tanh_forward(const float* x, float* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float xi = x[i];
        const float t = tanhf(SQRT_2_OVER_PI * (xi + GELU_C * xi * xi * xi));   // t = tanh u
        y[i] = 0.5f * xi * (1.0f + t);                                          // y = x (1+t)/2
    }
}

extern "C" __global__ void gelu_tanh_backward(const float* dy, const float* x, float* dx,
                                              long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float xi = x[i];
        const float t = tanhf(SQRT_2_OVER_PI * (xi + GELU_C * xi * xi * xi));   // t = tanh u
        const float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_C * xi * xi);    // du/dx
        // y = x (1 + t) / 2  =>  dx = dy ((1 + t) / 2 + x (1 - t^2) du/dx / 2)
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * xi * (1.0f - t * t) * du);
    }
}
