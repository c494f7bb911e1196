r"""Elementwise functions y = f(x), each with its derivative dx = dy * f'(x).

Where f' is simplest in terms of the output, the output is saved instead of the input
(exp, sqrt, tanh, sigmoid).
"""

from tinygrad_llm import backend
from tinygrad_llm.autograd import Function

__all__ = ["Exp", "Log", "Sqrt", "Tanh", "Sigmoid", "Relu", "Abs", "Clip", "stable_sigmoid"]


class Exp(Function):
    r"""y = e^x  =>  dx = dy * y"""

    def forward(self, x):
        self.y = backend.get_xp(x).exp(x)  # saved: the derivative of e^x is itself
        return self.y

    def backward(self, dy):
        return (dy * self.y,)


class Log(Function):
    r"""y = log(x)  =>  dx = dy / x"""

    def forward(self, x):
        self.x = x
        return backend.get_xp(x).log(x)

    def backward(self, dy):
        return (dy / self.x,)


class Sqrt(Function):
    r"""y = sqrt(x)  =>  dx = dy / (2 y)"""

    def forward(self, x):
        self.y = backend.get_xp(x).sqrt(x)
        return self.y

    def backward(self, dy):
        return (dy / (2 * self.y),)


class Tanh(Function):
    r"""y = tanh(x)  =>  dx = dy * (1 - y^2)"""

    def forward(self, x):
        self.y = backend.get_xp(x).tanh(x)
        return self.y

    def backward(self, dy):
        return (dy * (1 - self.y * self.y),)


def stable_sigmoid(x):
    r"""sigma(x) = 1 / (1 + e^-x), computed without overflow for large |x|.

    With e = e^{-|x|} (never above 1): sigma(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0.
    """
    xp = backend.get_xp(x)
    e = xp.exp(-xp.abs(x))
    s = 1 / (1 + e)                       # sigma(|x|)
    return xp.where(x >= 0, s, e * s)     # sigma(-|x|) = e / (1 + e)


class Sigmoid(Function):
    r"""y = 1 / (1 + e^-x)  =>  dx = dy * y * (1 - y)"""

    def forward(self, x):
        self.y = stable_sigmoid(x)
        return self.y

    def backward(self, dy):
        return (dy * self.y * (1 - self.y),)


class Relu(Function):
    r"""y = max(x, 0)  =>  dx = dy * [x > 0]"""

    def forward(self, x):
        self.mask = x > 0  # saved: only the sign pattern is needed
        return x * self.mask

    def backward(self, dy):
        return (dy * self.mask,)


class Abs(Function):
    r"""y = |x|  =>  dx = dy * sign(x)   (0 at x = 0, as in torch)"""

    def forward(self, x):
        self.sign = backend.get_xp(x).sign(x)
        return x * self.sign

    def backward(self, dy):
        return (dy * self.sign,)


class Clip(Function):
    r"""y = min(max(x, lo), hi)  =>  dx = dy * [lo <= x <= hi]"""

    def forward(self, x, lo=None, hi=None):
        if lo is None and hi is None:
            raise ValueError("clip: give at least one of min and max")
        xp = backend.get_xp(x)
        inside = xp.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        self.inside = inside
        return xp.clip(x, lo, hi)

    def backward(self, dy):
        return (dy * self.inside,)
