r"""Arithmetic with broadcasting: + - * / ** and negation; dtype casts and device moves.

NumPy broadcasting stretches a size-1 (or missing leading) axis to match the other operand. In
backward, the gradient of a stretched input is the sum of the output gradient over the stretched
axes (``unbroadcast``): every copy of the input element contributed to the loss.

Either operand may be a Python scalar; it then stays a scalar (so float32 tensors stay float32)
and gets no gradient.
"""

import math

from tinygrad_llm import backend
from tinygrad_llm.autograd import Function

__all__ = ["unbroadcast", "Add", "Sub", "Mul", "Div", "Pow", "Neg", "Cast", "ToDevice"]


def unbroadcast(dx, shape):
    r"""Sum ``dx`` down to ``shape``: the adjoint of broadcasting ``shape`` up to ``dx.shape``.

    Leading axes that broadcasting added are summed away; axes where ``shape`` has 1 are summed
    with keepdims.
    """
    if dx.shape == shape:
        return dx
    lead = dx.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and dx.shape[lead + i] != 1)
    if axes:
        dx = dx.sum(axis=axes, keepdims=True)
    return dx.reshape(shape)


def _shape(x):
    return getattr(x, "shape", ())


def _binary(op, f, x, y):
    """Apply ``f(x, y)``, turning NumPy's broadcast error into one that names the op."""
    try:
        return f(x, y)
    except ValueError as e:
        raise ValueError(f"{op}: shapes {_shape(x)} and {_shape(y)} do not broadcast") from e


class Add(Function):
    r"""y = x + z  =>  dx = dy,  dz = dy   (each summed over its broadcast axes)"""

    def forward(self, x, z):
        self.x_shape, self.z_shape = _shape(x), _shape(z)  # only shapes are needed
        return _binary("add", lambda a, b: a + b, x, z)

    def backward(self, dy):
        need_x, need_z = self.needs_input_grad
        return (unbroadcast(dy, self.x_shape) if need_x else None,
                unbroadcast(dy, self.z_shape) if need_z else None)


class Sub(Function):
    r"""y = x - z  =>  dx = dy,  dz = -dy"""

    def forward(self, x, z):
        self.x_shape, self.z_shape = _shape(x), _shape(z)
        return _binary("sub", lambda a, b: a - b, x, z)

    def backward(self, dy):
        need_x, need_z = self.needs_input_grad
        return (unbroadcast(dy, self.x_shape) if need_x else None,
                unbroadcast(-dy, self.z_shape) if need_z else None)


class Mul(Function):
    r"""y = x * z  =>  dx = dy * z,  dz = dy * x"""

    def forward(self, x, z):
        self.x, self.z = x, z  # each is the other's derivative
        return _binary("mul", lambda a, b: a * b, x, z)

    def backward(self, dy):
        need_x, need_z = self.needs_input_grad
        return (unbroadcast(dy * self.z, _shape(self.x)) if need_x else None,
                unbroadcast(dy * self.x, _shape(self.z)) if need_z else None)


class Div(Function):
    r"""y = x / z  =>  dx = dy / z,  dz = -dy * x / z^2 = -dy * y / z"""

    def forward(self, x, z):
        self.x_shape = _shape(x)
        self.z = z
        self.y = _binary("div", lambda a, b: a / b, x, z)
        return self.y

    def backward(self, dy):
        need_x, need_z = self.needs_input_grad
        dy_over_z = dy / self.z
        return (unbroadcast(dy_over_z, self.x_shape) if need_x else None,
                unbroadcast(-dy_over_z * self.y, _shape(self.z)) if need_z else None)


class Pow(Function):
    r"""y = x ** z  =>  dx = dy * z * x^(z-1),  dz = dy * y * log(x)"""

    def forward(self, x, z):
        self.x, self.z = x, z
        self.y = _binary("pow", lambda a, b: a ** b, x, z)
        return self.y

    def backward(self, dy):
        need_x, need_z = self.needs_input_grad
        x, z = self.x, self.z
        dx = unbroadcast(dy * z * x ** (z - 1), _shape(x)) if need_x else None
        dz = None
        if need_z:  # a Python-scalar base takes math.log: a NumPy scalar would be float64
            log_x = backend.get_xp(self.y).log(x) if hasattr(x, "dtype") else _log(x)
            dz = unbroadcast(dy * self.y * log_x, _shape(z))
        return dx, dz


def _log(x):
    """log of a Python number, with NumPy's answers where math.log would raise."""
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


class Neg(Function):
    r"""y = -x  =>  dx = -dy"""

    def forward(self, x):
        return -x

    def backward(self, dy):
        return (-dy,)


class Cast(Function):
    r"""y = x as another dtype  =>  dx = dy cast back to x's dtype"""

    def forward(self, x, dtype):
        self.x_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, dy):
        return (dy.astype(self.x_dtype) if self.x_dtype.kind == "f" else None,)


class ToDevice(Function):
    r"""y = x copied to ``device``  =>  dx = dy copied back to x's device"""

    def forward(self, x, device):
        self.x_device = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, dy):
        return (backend.to_device(dy, self.x_device),)
