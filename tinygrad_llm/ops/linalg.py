r"""Matrix multiplication: 1-D, 2-D and batched N-D with broadcasting, as ``np.matmul``.

For 2-D operands, y = x @ w with x (M, K) and w (K, N):

    y[m, n] = sum_k x[m, k] w[k, n]  =>  dx = dy @ w^T  (M, N)(N, K),  dw = x^T @ dy  (K, M)(M, N)

A 1-D x is treated as a row (1, K), a 1-D w as a column (K, 1), and the added axis is dropped from
y. Batched operands broadcast over their leading axes; the gradient of a broadcast operand sums
over the axes it was stretched along.
"""

from tinygrad_llm.autograd import Function
from tinygrad_llm.ops.basic import unbroadcast

__all__ = ["MatMul"]


class MatMul(Function):
    r"""y = x @ w  =>  dx = dy @ w^T,  dw = x^T @ dy   (transposes over the last two axes)"""

    def forward(self, x, w):
        if x.ndim == 0 or w.ndim == 0:
            raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes "
                             f"{x.shape} and {w.shape}")
        k_w = w.shape[-2] if w.ndim > 1 else w.shape[0]
        if x.shape[-1] != k_w:
            raise ValueError(f"matmul: inner dimensions differ: {x.shape} @ {w.shape} "
                             f"({x.shape[-1]} != {k_w})")
        self.x, self.w = x, w  # both saved: each is the other's derivative
        if x.ndim > 2 and w.ndim == 2:  # (..., K) @ (K, N): one 2-D GEMM over all rows
            return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[1])
        try:
            return x @ w
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of {x.shape} and {w.shape} do not "
                             f"broadcast") from None

    def backward(self, dy):
        x, w = self.x, self.w
        need_x, need_w = self.needs_input_grad
        if x.ndim > 2 and w.ndim == 2:  # the 2-D GEMM path of forward
            dy2 = dy.reshape(-1, w.shape[1])                                # (M, N)
            dx = (dy2 @ w.T).reshape(x.shape) if need_x else None           # (M, K)
            dw = x.reshape(-1, x.shape[-1]).T @ dy2 if need_w else None     # (K, N)
            return dx, dw
        # Promote 1-D operands to matrices, and put back into dy the axes matmul dropped.
        x2 = x[None, :] if x.ndim == 1 else x                               # (..., M, K)
        w2 = w[:, None] if w.ndim == 1 else w                               # (..., K, N)
        if x.ndim == 1 and w.ndim == 1:
            dy = dy[..., None, None]
        elif x.ndim == 1:
            dy = dy[..., None, :]
        elif w.ndim == 1:
            dy = dy[..., None]                                              # (..., M, N)
        dx = dw = None
        if need_x:  # dx = dy @ w^T
            dx = unbroadcast(dy @ w2.swapaxes(-1, -2), x2.shape).reshape(x.shape)
        if need_w:  # dw = x^T @ dy
            dw = unbroadcast(x2.swapaxes(-1, -2) @ dy, w2.shape).reshape(w.shape)
        return dx, dw
