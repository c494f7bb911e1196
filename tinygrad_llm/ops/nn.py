r"""Fused neural-network ops, each one Function with a hand-derived backward.

Dimension letters: N rows (for example B*T tokens), C classes or channels, D embedding size,
V vocabulary size, I/O a linear layer's input/output features.

Each fused op replaces a composition of primitives (tested against it in tests/test_ops_nn.py):
one pass instead of several, fewer temporaries, and only what backward needs is saved.
"""

import math

from tinygrad_llm import backend
from tinygrad_llm.autograd import Function
from tinygrad_llm.kernels import cpu, cuda
from tinygrad_llm.kernels.cpu import column_sums, row_means
from tinygrad_llm.ops.special import normal_cdf_and_pdf
from tinygrad_llm.ops.unary import stable_sigmoid

__all__ = ["Softmax", "LogSoftmax", "CrossEntropy", "LayerNorm", "GELU", "Linear", "Embedding",
           "Dropout", "BCEWithLogits"]


def _softmax(x, axis):
    """exp(x - max) / sum exp(x - max): subtracting the max keeps exp from overflowing."""
    xp = backend.get_xp(x)
    y = xp.exp(x - x.max(axis=axis, keepdims=True))      # e^{x - max}: y's buffer, not y yet
    y /= y.sum(axis=axis, keepdims=True)                  # in place: now y = softmax(x)
    return y


def _check_axis(op, axis, x):
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for shape {x.shape}")


class Softmax(Function):
    r"""y_i = e^{x_i} / sum_j e^{x_j}   (along ``axis``)

    The Jacobian is ∂y_j/∂x_i = y_j (delta_ij - y_i), so (dy, dx the gradients of the loss)
    dx_i = sum_j dy_j ∂y_j/∂x_i = sum_j dy_j y_j (delta_ij - y_i) = y_i (dy_i - sum_j dy_j y_j)

    Reference: tinygrad_llm.reference.softmax.
    """

    def forward(self, x, axis=-1):
        _check_axis("softmax", axis, x)
        self.axis = axis
        self.y = _softmax(x, axis)  # saved: the derivative is written in terms of y
        return self.y

    def backward(self, dy):
        y = self.y
        return (y * (dy - (dy * y).sum(axis=self.axis, keepdims=True)),)


class LogSoftmax(Function):
    r"""y_i = x_i - log sum_j e^{x_j}   (along ``axis``)

    The Jacobian is ∂y_j/∂x_i = delta_ij - softmax(x)_i, so
    dx_i = sum_j dy_j ∂y_j/∂x_i = dy_i - e^{y_i} sum_j dy_j      (softmax(x) = e^y)

    Reference: tinygrad_llm.reference.log_softmax.
    """

    def forward(self, x, axis=-1):
        _check_axis("log_softmax", axis, x)
        xp = backend.get_xp(x)
        self.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        # saved: y, since softmax(x) = e^y is all backward needs
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.y

    def backward(self, dy):
        xp = backend.get_xp(dy)
        return (dy - xp.exp(self.y) * dy.sum(axis=self.axis, keepdims=True),)


class CrossEntropy(Function):
    r"""Softmax cross-entropy of logits (N, C) against integer targets (N,).

    With p = softmax(logits) row by row, t_n the target class of row n and eps the
    ``label_smoothing``, the target distribution of row n is

        q[n, c] = (1 - eps) [c == t_n] + eps / C

    and the loss is the cross-entropy -sum_c q[n, c] log p[n, c]:

        loss_n = -(1 - eps) log p[n, t_n] - (eps / C) sum_c log p[n, c]
               = lse_n - (1 - eps) logits[n, t_n] - (eps / C) sum_c logits[n, c]

    with lse_n = log sum_c e^{logits[n, c]}; eps = 0 (the default) is the plain
    loss_n = -log p[n, t_n]. Rows whose target equals ``ignore_index`` get loss 0 and no
    gradient. The reduction is 'mean' (over the M rows that count, as torch divides),
    'sum' or 'none'. Backward, with scale_n = dloss_n (divided by M for 'mean'; 0 for an
    ignored row):

        dlogits[n, c] = scale_n (p[n, c] - q[n, c])

    The fused CUDA kernel (kernels/cross_entropy.cu) runs 'mean' without smoothing only;
    every other case runs the array formulas below, on NumPy or CuPy.

    Reference: tinygrad_llm.reference.cross_entropy.
    """

    kernel = False   # set by forward when it ran the fused CUDA kernel (kernels/cuda.py)

    def forward(self, logits, targets, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        xp = backend.get_xp(logits)
        if logits.ndim != 2:
            raise ValueError(f"cross_entropy: logits must be (N, C), got shape {logits.shape}")
        if targets.shape != logits.shape[:1]:
            raise ValueError(f"cross_entropy: targets must have shape ({logits.shape[0]},) to "
                             f"match logits {logits.shape}, got {targets.shape}")
        if targets.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy: targets must be integers, got {targets.dtype}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                             f"got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], "
                             f"got {label_smoothing!r}")
        eps = float(label_smoothing)        # a Python float: keeps float32 logits float32
        # kernels/cross_entropy.cu: the mean without smoothing (the kernel has no eps)
        if reduction == "mean" and eps == 0.0 and cuda.cuda_kernels_for(logits):
            # saved: logits, targets and ignore_index, with each row's log-sum-exp lse (N,) and
            # the count M of rows that count: backward rebuilds p = e^{logits - lse} from them
            self.kernel, self.logits, self.targets = True, logits, targets
            self.ignore_index = ignore_index
            loss, self.lse, self.count = cuda.cross_entropy_forward_cuda(logits, targets,
                                                                            ignore_index)
            return loss
        n, c = logits.shape
        valid = targets != ignore_index                                    # (N,)
        safe = xp.where(valid, targets, 0)                                 # (N,)
        if backend.is_cpu(targets) and n:  # range check (skipped on GPUs: it would sync)
            bad = (safe < 0) | (safe >= c)
            if bad.any():
                raise ValueError(f"cross_entropy: target {int(targets[bad][0])} is out of "
                                 f"range for {c} classes")
        shifted = logits - logits.max(axis=1, keepdims=True)                # (N, C)
        p = xp.exp(shifted)                      # e^{shifted}: p's buffer, not p yet, (N, C)
        sum_e = p.sum(axis=1, keepdims=True)                               # (N, 1)
        rows = xp.arange(n)
        if eps == 0.0:                           # loss_n = lse_n - logits[n, t_n]
            loss = (xp.log(sum_e[:, 0]) - shifted[rows, safe]) * valid     # (N,)
        else:  # loss_n = lse_n - (1 - eps) logits[n, t_n] - eps mean_c logits[n, c]
            loss = (xp.log(sum_e[:, 0]) - (1.0 - eps) * shifted[rows, safe]
                    - eps * shifted.mean(axis=1)) * valid                  # (N,)
        p /= sum_e                               # in place: now p = softmax(logits), (N, C)
        # saved: p, the targets and eps (dlogits = p - q), which rows count, the reduction
        self.p, self.safe, self.valid, self.reduction = p, safe, valid, reduction
        self.eps = eps
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        # the count in the logits' dtype: an int64 count would promote float32 to float64
        self.count = valid.sum().astype(logits.dtype)
        return loss.sum() / self.count

    def backward(self, dy):
        if self.kernel:                                     # dlogits = (dy / M) (p - onehot)
            return cuda.cross_entropy_backward_cuda(dy, self.logits, self.targets, self.lse,
                                                       self.count, self.ignore_index), None
        xp = backend.get_xp(dy)
        if self.reduction == "mean":
            scale = (dy / self.count) * self.valid                          # (N,)
        else:  # 'sum' (dy is 0-d) and 'none' (dy is (N,))
            scale = dy * self.valid                                         # (N,)
        scale = scale.astype(self.p.dtype, copy=False)
        rows = xp.arange(self.p.shape[0])                                   # (N,)
        eps = self.eps
        if eps == 0.0:
            # dlogits = scale * (p - onehot), written as scale * p (a new array: p stays intact
            # for a second backward with retain_graph) minus scale at each row's target
            dlogits = self.p * scale[:, None]                               # (N, C)
            dlogits[rows, self.safe] -= scale
            return dlogits, None
        # q = (1 - eps) onehot + eps / C  =>  dlogits = scale * (p - eps / C) minus
        # (1 - eps) scale at each row's target (again a new array: p stays intact)
        dlogits = (self.p - eps / self.p.shape[1]) * scale[:, None]         # (N, C)
        dlogits[rows, self.safe] -= (1.0 - eps) * scale
        return dlogits, None


class LayerNorm(Function):
    r"""Layer normalisation over the last axis (size C) of x, with optional weight w and bias b:

        mu = mean(x),  var = mean((x - mu)^2),  rstd = 1 / sqrt(var + eps)
        xhat = (x - mu) rstd,   y = xhat * w + b

    Backward (the derivation is in docs/gpt.md):

        dw = sum over rows of dy * xhat,   db = sum over rows of dy,   dxhat = dy * w
        dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat * xhat))

    Reference: tinygrad_llm.reference.layer_norm.
    """

    kernel = False   # set by forward when it ran the fused CUDA kernel (kernels/cuda.py)

    def forward(self, x, w=None, b=None, eps=1e-5):
        c = x.shape[-1]
        for name, p in (("weight", w), ("bias", b)):
            if p is not None and p.shape != (c,):
                raise ValueError(f"layer_norm: {name} must have shape ({c},) for input "
                                 f"{x.shape}, got {p.shape}")
        if cuda.cuda_kernels_for(x, w, b):               # kernels/layer_norm.cu
            # saved: x, w and each row's mean and rstd (N,): backward rebuilds xhat from them
            self.kernel, self.x, self.w = True, x, w
            y, self.mean, self.rstd = cuda.layer_norm_forward_cuda(x, w, b, eps)
            return y
        xp = backend.get_xp(x)
        # Row means as BLAS gemv products (kernels/cpu.py): faster than NumPy's mean over rows.
        x2 = x.reshape(-1, c)                                               # (N, C)
        centred = x2 - row_means(x2)[:, None]                               # x - mu, (N, C)
        var = row_means(centred * centred)                                  # (N,)
        rstd = 1 / xp.sqrt(var + eps)                                       # (N,)
        xhat = centred                          # the same buffer, scaled in place into xhat:
        xhat *= rstd[:, None]                                               # (x - mu) rstd
        # saved: xhat (N, C) and rstd (N,) for dx, w for dxhat = dy * w
        self.xhat, self.rstd, self.w = xhat, rstd, w
        y = xhat * w if w is not None else xhat.copy()                      # (N, C)
        if b is not None:
            y += b
        return y.reshape(x.shape)                                           # (..., C)

    def backward(self, dy):
        _, need_w, need_b = self.needs_input_grad
        if self.kernel:                                     # recomputes xhat from mean, rstd
            return cuda.layer_norm_backward_cuda(dy, self.x, self.w, self.mean, self.rstd,
                                                    need_w, need_b)
        xhat, rstd, w = self.xhat, self.rstd, self.w
        n, c = xhat.shape
        dy2 = dy.reshape(n, c)                                              # (N, C)
        # Column sums (over the N rows) and row means (over C) as gemv products, as in forward.
        dw = column_sums(dy2 * xhat) if need_w else None                    # y = xhat*w+b
        db = column_sums(dy2) if need_b else None                           # (C,)
        dxhat = dy2 * w if w is not None else dy2.copy()                    # (N, C)
        # dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat * xhat)), built in dxhat's buffer
        xhat_term = xhat * row_means(dxhat * xhat)[:, None]                 # (N, C)
        dx = dxhat                        # the same buffer, turned into dx in place; it holds
        dx -= row_means(dxhat)[:, None]   #   dxhat - mean(dxhat)
        dx -= xhat_term                   #   dxhat - mean(dxhat) - xhat mean(dxhat * xhat)
        dx *= rstd[:, None]               #   dx
        return dx.reshape(dy.shape), dw, db


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class GELU(Function):
    r"""Gaussian error linear unit, y = x Phi(x), Phi the standard normal CDF.

    approximate='none':  Phi(x) = (1 + erf(x / sqrt 2)) / 2   (``normal_cdf_and_pdf`` in
    ops/special.py, which also gives the density phi(x) = e^{-x^2/2} / sqrt(2 pi))
        dy/dx = Phi(x) + x phi(x)
    approximate='tanh':  y = x (1 + tanh u) / 2,   u = sqrt(2/pi) (x + 0.044715 x^3)
        dy/dx = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2,   t = tanh u

    Forward computes y and its slope dy/dx together (they share Phi, phi or t), block by block
    on the CPU (cpu.blockwise: cache-sized pieces, on two threads for large arrays), and saves
    only the slope: backward is then one multiply, dx = dy * dy/dx.

    Which algorithm computes Phi (approximate='none') depends on the array:

    - float64: erf by Cody's rational approximations, Phi = (1 + erf(x / sqrt 2)) / 2, exact to
      float64 rounding (ops/special.py's ``erf``).
    - float32 (and float16, via float32) on the CPU or through CuPy without the kernels: the
      fitted Mills-ratio formula Phi(-|x|) = phi(x) R(|x|), R a degree-10 polynomial in
      t = 1 / (1 + |x|/4) (ops/special.py): within 2e-7 of the exact Phi, and within 4e-6
      relative in the negative tail; about 25 array passes where Cody's three branches take 80.
    - float32 CuPy arrays with the CUDA kernels on: kernels/gelu.cu, with CUDA's ``erff``;
      backward recomputes the slope from x instead of saving it.

    Reference: tinygrad_llm.reference.gelu (tests/test_reference.py checks the float64 and the
    float32 path against it, each in its own dtype).
    """

    kernel = False   # set by forward when it ran the fused CUDA kernel (kernels/cuda.py)

    def forward(self, x, approximate="none"):
        if approximate in ("none", "tanh") and cuda.cuda_kernels_for(x):   # kernels/gelu.cu
            # saved: x (the kernel's backward recomputes the slope from it)
            self.kernel, self.x, self.approximate = True, x, approximate
            return cuda.gelu_forward_cuda(x, approximate)
        if approximate == "none":
            y, self.slope = cpu.blockwise(_gelu_and_slope, x)          # saved: dy/dx
        elif approximate == "tanh":
            y, self.slope = cpu.blockwise(_gelu_tanh_and_slope, x)     # saved: dy/dx
        else:
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        return y

    def backward(self, dy):
        if self.kernel:                                     # recomputes the slope from x
            return (cuda.gelu_backward_cuda(dy, self.x, self.approximate),)
        return (dy * self.slope,)                                           # dx = dy dy/dx


def _gelu_and_slope(x):
    """y = x Phi(x),  dy/dx = Phi(x) + x phi(x)"""
    cdf, pdf = normal_cdf_and_pdf(x)                        # Phi(x), phi(x)
    slope = pdf                                             # phi(x)'s buffer, in place:
    slope *= x                                              #   x phi(x)
    slope += cdf                                            #   Phi(x) + x phi(x) = dy/dx
    y = cdf                                                 # Phi(x)'s buffer, in place:
    y *= x                                                  #   x Phi(x) = y
    return y, slope


def _gelu_tanh_and_slope(x):
    """t = tanh u:  y = x (1 + t) / 2,  dy/dx = (1 + t) / 2 + x (1 - t^2) du/dx / 2"""
    t = backend.get_xp(x).tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
    du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
    half_1_plus_t = 0.5 * (1 + t)
    return x * half_1_plus_t, half_1_plus_t + 0.5 * x * (1 - t * t) * du


class Linear(Function):
    r"""y = x W^T + b, for x (..., I), W (O, I), b (O,), y (..., O).

    With the rows of x flattened to X (N, I):

        dX = dY W   (N, O)(O, I),    dW = dY^T X   (O, N)(N, I),    db = sum over rows of dY

    All three are single 2-D GEMMs (or a column sum) over the N = B*T rows.
    """

    def forward(self, x, w, b=None):
        if x.shape[-1] != w.shape[1]:
            raise ValueError(f"linear: input has {x.shape[-1]} features (shape {x.shape}) but "
                             f"the weight expects {w.shape[1]} (weight shape {w.shape})")
        self.x, self.w = x, w                                               # saved for dW, dX
        x2 = x.reshape(-1, x.shape[-1])                                     # (N, I)
        y = x2 @ w.T                                                        # (N, O)
        if b is not None:
            y += b
        return y.reshape(*x.shape[:-1], w.shape[0])                         # (..., O)

    def backward(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        w = self.w
        dy2 = dy.reshape(-1, w.shape[0])                                    # (N, O)
        dx = (dy2 @ w).reshape(self.x.shape) if need_x else None            # dX = dY W
        dw = dy2.T @ self.x.reshape(-1, w.shape[1]) if need_w else None     # dW = dY^T X
        db = column_sums(dy2) if need_b else None                           # sum of dY's rows
        return dx, dw, db


class Embedding(Function):
    r"""y = W[ids]: row ids[...] of the table W (V, D), so y has shape ids.shape + (D,).

    dW[v] = sum of dy over every position whose id is v (a scatter-add: ids repeat).
    """

    def forward(self, ids, w):
        if ids.dtype.kind not in "iu":
            raise TypeError(f"embedding: ids must be integers, got {ids.dtype}")
        if backend.is_cpu(ids) and ids.size:  # range check (skipped on GPUs: it would sync)
            lo, hi = ids.min(), ids.max()
            if lo < 0 or hi >= w.shape[0]:
                bad = lo if lo < 0 else hi
                raise IndexError(f"embedding: id {int(bad)} is out of range for a table of "
                                 f"{w.shape[0]} rows")
        self.ids, self.w_shape = ids, w.shape                               # saved: ids only
        return w[ids]                                                       # (..., D)

    def backward(self, dy):
        xp = backend.get_xp(dy)
        dw = xp.zeros(self.w_shape, dtype=dy.dtype)                        # (V, D)
        cpu.scatter_add(dw, self.ids.reshape(-1), dy.reshape(-1, self.w_shape[1]))
        return None, dw


class Dropout(Function):
    r"""y = x * m / (1 - p), with m_i ~ Bernoulli(1 - p)  =>  dx = dy * m / (1 - p)

    Scaling by 1/(1-p) keeps the expected value of y equal to x, so evaluation needs no change.
    """

    def forward(self, x, p=0.5):
        if not 0 <= p < 1:
            raise ValueError(f"dropout: p must be in [0, 1), got {p}")
        rng = backend.device_rng(backend.device_of(x))
        keep = rng.random(x.shape, dtype=x.dtype) >= p                     # (same as x)
        self.scale = keep * x.dtype.type(1 / (1 - p))                       # saved: m / (1-p)
        return x * self.scale

    def backward(self, dy):
        return (dy * self.scale,)


class BCEWithLogits(Function):
    r"""Binary cross-entropy on logits x with targets t in [0, 1], elementwise:

        loss = -(t log sigma(x) + (1 - t) log(1 - sigma(x))) = max(x, 0) - x t + log(1 + e^{-|x|})

    (the right-hand form never overflows).  dx = dloss * (sigma(x) - t)
    """

    def forward(self, x, t):
        if x.shape != t.shape:
            raise ValueError(f"binary_cross_entropy_with_logits: input {x.shape} and target "
                             f"{t.shape} must have the same shape")
        xp = backend.get_xp(x)
        self.x, self.t = x, t
        return xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, dy):
        return dy * (stable_sigmoid(self.x) - self.t), None
