r"""A strict, NumPy-backed stand-in for the ``cupy`` module, so the CUDA code path runs on a CPU.

No machine here has a GPU. This module lets the whole op and autograd suite run through
tinygrad_llm's "cuda" device anyway: ``install()`` puts a fake ``cupy`` (and ``cupyx``) into
``sys.modules``; backend.py then imports it as it would import CuPy, and every tensor on "cuda"
holds a ``ndarray`` from here: a WRAPPER around a NumPy array (not a subclass of it, since a
subclass cannot stop ``np.asarray`` from reading its buffer).

Like CuPy 14, the wrapper (research: shared/research/cupy_backend.md, sections 2 and 4c):

- refuses implicit conversion to NumPy (``np.asarray(a)``, ``np.exp(a)``) with CuPy's TypeError;
- rejects host ``numpy.ndarray`` operands in operators, functions and ``a[...] = host``
  (``TypeError: Unsupported type <class 'numpy.ndarray'>``); Python and NumPy scalars are fine;
- returns 0-d arrays, never NumPy scalars, from reductions and scalar indexing;
- has no ``__index__`` (a 0-d CuPy int is not a Python int);
- gives a view's ``base`` as the device array it views, the same object every time
  (``buffer[2:5].base is buffer``), as CuPy does;
- serves only names that exist in the real CuPy API (``cupy_api_names.json`` beside this file:
  ``dir()`` of cupy, ``cupy.ndarray``, ``cupy.random``, ``cupy.random.Generator`` and ``cupyx``).

It is stricter than CuPy in two ways, on purpose: ``numpy.*`` functions called on a device array
raise (CuPy would dispatch them, but our rule is ``xp = get_xp(x)``), and out-of-bounds indices
raise (CuPy wraps them silently).

It counts what costs time on a real GPU: ``COUNTS["sync"]`` for every device -> host read
(``float``, ``int``, ``bool``, ``item``, ``tolist``, ``get``, ``asnumpy``, ``repr``/``format``)
and ``COUNTS["h2d"]`` for every host -> device copy (``asarray`` of host data, host index arrays).
``forbid_float64()`` raises at the first float64 array made (float64 is slow on most GPUs).

What a green run here does NOT prove: see docs/backends.md.
"""

import contextlib
import json
import operator
import pathlib
import sys
import types
import weakref

import numpy as np

__all__ = ["install", "uninstall", "COUNTS", "reset_counts", "counting", "forbid_float64",
           "ndarray", "API_NAMES"]

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")
API_NAMES = {k: frozenset(v) for k, v in json.loads(
    (pathlib.Path(__file__).with_name("cupy_api_names.json")).read_text()).items()
    if isinstance(v, list)}

COUNTS = {"sync": 0, "h2d": 0}
_STATE = {"forbid_float64": False, "allow_synchronize": True}


def reset_counts():
    COUNTS["sync"] = COUNTS["h2d"] = 0


@contextlib.contextmanager
def counting():
    """``with counting() as c:`` resets the counters; ``c`` is the live COUNTS dict."""
    reset_counts()
    yield COUNTS


class forbid_float64:
    """Raise at the first float64 device array made from now on: inside a ``with`` block, or,
    called plainly, until the stand-in is uninstalled at the end of the test."""

    def __init__(self):
        self.previous, _STATE["forbid_float64"] = _STATE["forbid_float64"], True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _STATE["forbid_float64"] = self.previous


class DeviceSynchronized(RuntimeError):
    """``cupyx.DeviceSynchronized``: raised by a sync inside ``allow_synchronize(False)``."""


def _sync():
    COUNTS["sync"] += 1
    if not _STATE["allow_synchronize"]:
        raise DeviceSynchronized("device synchronization was detected while disallowed")


@contextlib.contextmanager
def allow_synchronize(allow):
    """``cupyx.allow_synchronize``: with False, any device -> host sync raises."""
    previous, _STATE["allow_synchronize"] = _STATE["allow_synchronize"], allow
    try:
        yield
    finally:
        _STATE["allow_synchronize"] = previous


def _wrap(x):
    """NumPy results become device arrays (scalars become 0-d arrays, as in CuPy)."""
    if isinstance(x, np.ndarray):
        if _STATE["forbid_float64"] and x.dtype == np.float64:
            raise AssertionError("fake cupy: a float64 array was made under forbid_float64()")
        return ndarray(x)
    if isinstance(x, np.generic):
        return _wrap(np.asarray(x))
    if isinstance(x, (list, tuple)) and x and all(isinstance(i, np.ndarray) for i in x):
        return type(x)(_wrap(i) for i in x)
    return x


def _reject_host(x, what):
    raise TypeError(f"Unsupported type {type(x)!r} ({what}: a host numpy.ndarray mixed with "
                    "device arrays; CuPy refuses implicit host-to-device transfers)")


def _operand(x, what="operand"):
    """The NumPy value of an operator's other side, or NotImplemented."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (bool, int, float, complex, np.generic)):
        return x
    if isinstance(x, np.ndarray):
        _reject_host(x, what)
    return NotImplemented


def _unwrap(x, what):
    """Arguments of a cupy function: device arrays unwrap, host arrays are refused."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        _reject_host(x, what)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(i, what) for i in x)
    return x


def _index(index):
    """An index: device arrays unwrap; host index arrays and lists are copied (counted)."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, ndarray):
        return index._a
    if isinstance(index, (np.ndarray, list)):
        COUNTS["h2d"] += 1
        return np.asarray(index)
    return index


def _binary(op, reflected=False):
    def method(self, other):
        b = _operand(other)
        if b is NotImplemented:
            return NotImplemented
        return _wrap(op(b, self._a) if reflected else op(self._a, b))
    return method


def _inplace(op):
    def method(self, other):
        b = _operand(other)
        if b is NotImplemented:
            return NotImplemented
        op(self._a, b)
        return self
    return method


# id(NumPy array) -> the first live device array wrapping it, so that ``view.base`` is that
# device array (CuPy keeps a view's base as an attribute: the same object on every access)
_OWNERS = weakref.WeakValueDictionary()


class ndarray:
    """A device array: a NumPy array that can only be read back explicitly (``.get()``)."""

    __slots__ = ("_a", "__weakref__")
    __array_ufunc__ = None   # NumPy's binary operators defer to ours, and np.exp(a) raises
    __hash__ = None

    def __init__(self, a):
        if not isinstance(a, np.ndarray):
            raise TypeError("fake cupy: ndarray wraps a numpy.ndarray; use cupy.asarray")
        self._a = a
        _OWNERS.setdefault(id(a), self)

    @property
    def base(self):
        """The device array this one is a view of (None if it owns its memory)."""
        b = self._a.base
        if b is None:
            return None
        owner = _OWNERS.get(id(b))
        return owner if owner is not None and owner._a is b else ndarray(b)

    # ---- the conversions CuPy refuses, or counts as device -> host syncs ----------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"fake cupy: numpy.{func.__name__} called on a device array; use "
                        f"xp = backend.get_xp(x) and xp.{func.__name__}")

    def get(self, stream=None):
        _sync()
        return self._a.copy()

    def item(self):
        _sync()
        return self._a.item()

    def tolist(self):
        _sync()
        return self._a.tolist()

    def __float__(self):
        _sync()
        return float(self._a)

    def __int__(self):
        _sync()
        return int(self._a)

    def __complex__(self):
        _sync()
        return complex(self._a)

    def __bool__(self):
        _sync()
        return bool(self._a)

    def __repr__(self):
        _sync()
        return repr(self._a).replace("array(", "fakecupy.array(", 1)

    __str__ = __repr__

    def __format__(self, spec):
        _sync()
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(a) for a in self._a)

    # ---- attributes and methods served from NumPy, limited to CuPy's names -----------------------
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(self._a.mT))
    device = property(lambda self: "fake-cuda:0")

    def __getattr__(self, name):
        if name.startswith("_") or name not in API_NAMES["ndarray"]:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}"
                                 + ("" if name.startswith("_") else " (not in the CuPy API)"))
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            return _wrap(attr(*_unwrap(args, f"ndarray.{name}"),
                              **{k: _unwrap(v, f"ndarray.{name}") for k, v in kwargs.items()}))
        return method

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        return _wrap(self._a.astype(dtype, order=order, copy=copy))

    def copy(self, order="C"):
        return _wrap(self._a.copy(order=order))

    # ---- indexing ------------------------------------------------------------------------------
    def __getitem__(self, index):
        return _wrap(self._a[_index(index)])

    def __setitem__(self, index, value):
        if isinstance(value, np.ndarray):
            _reject_host(value, "__setitem__ (gh-2079: refuse assignment from CPU arrays)")
        self._a[_index(index)] = value._a if isinstance(value, ndarray) else value

    # ---- operators -----------------------------------------------------------------------------
    __add__, __radd__ = _binary(operator.add), _binary(operator.add, True)
    __sub__, __rsub__ = _binary(operator.sub), _binary(operator.sub, True)
    __mul__, __rmul__ = _binary(operator.mul), _binary(operator.mul, True)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv), _binary(operator.floordiv, True)
    __mod__, __rmod__ = _binary(operator.mod), _binary(operator.mod, True)
    __pow__, __rpow__ = _binary(operator.pow), _binary(operator.pow, True)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __and__, __rand__ = _binary(operator.and_), _binary(operator.and_, True)
    __or__, __ror__ = _binary(operator.or_), _binary(operator.or_, True)
    __xor__, __rxor__ = _binary(operator.xor), _binary(operator.xor, True)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __iadd__, __isub__ = _inplace(operator.iadd), _inplace(operator.isub)
    __imul__, __itruediv__ = _inplace(operator.imul), _inplace(operator.itruediv)
    __ipow__, __iand__ = _inplace(operator.ipow), _inplace(operator.iand)
    __ior__, __ixor__ = _inplace(operator.ior), _inplace(operator.ixor)

    def __neg__(self):
        return _wrap(-self._a)

    def __pos__(self):
        return _wrap(+self._a)

    def __abs__(self):
        return _wrap(abs(self._a))

    def __invert__(self):
        return _wrap(~self._a)


# ----------------------------------------------------------------------------------------------
# Module-level functions
# ----------------------------------------------------------------------------------------------
def asarray(a, dtype=None, order=None, *, blocking=False):
    """Host data -> device (an H2D copy, counted); a device array passes through."""
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    if isinstance(a, (list, tuple)) and any(isinstance(i, ndarray) for i in a):
        return _wrap(np.asarray(_unwrap(a, "asarray"), dtype=dtype))
    COUNTS["h2d"] += 1
    return _wrap(np.array(a, dtype=dtype))


def array(a, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(a, ndarray):
        return _wrap(np.array(a._a, dtype=dtype, copy=copy, ndmin=ndmin))
    COUNTS["h2d"] += 1
    return _wrap(np.array(a, dtype=dtype, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """Device -> host (a sync, counted). Host input comes back as is, as in CuPy."""
    if isinstance(a, ndarray):
        return a.get()
    return np.asarray(a)


class _Ufunc:
    """A CuPy ufunc: call, ``.at`` (scatter, host indices counted) and ``.reduce``."""

    def __init__(self, name):
        self._f = getattr(np, name)
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"], self.__name__)
        return _wrap(self._f(*_unwrap(args, f"cupy.{self.__name__}"), **kwargs))

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise TypeError(f"cupy.{self.__name__}.at: the target must be a cupy.ndarray")
        if isinstance(b, np.ndarray):
            COUNTS["h2d"] += 1  # CuPy copies host values silently
        else:
            b = _unwrap(b, f"{self.__name__}.at")
        self._f.at(a._a, _index(indices), b)

    def reduce(self, a, axis=0, dtype=None, out=None, keepdims=False):
        return _wrap(self._f.reduce(_unwrap(a, "reduce"), axis=axis, dtype=dtype,
                                    keepdims=keepdims))


def _function(name):
    f = getattr(np, name)

    def wrapped(*args, **kwargs):
        return _wrap(f(*_unwrap(args, f"cupy.{name}"),
                       **{k: _unwrap(v, f"cupy.{name}") for k, v in kwargs.items()}))
    wrapped.__name__ = name
    return wrapped


class _Generator:
    """``cupy.random.Generator``: only its methods (no ``normal``, ``choice``, ``permutation``)."""

    def __init__(self, seed):
        self._g = np.random.default_rng(seed)

    def __getattr__(self, name):
        if name.startswith("_") or name not in API_NAMES["generator"]:
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r}")
        f = getattr(self._g, name)

        def method(*args, **kwargs):
            return _wrap(np.asarray(f(*args, **kwargs)))
        return method


class _Pool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


class _Device:
    def __init__(self, device=0):
        self.id = device

    def synchronize(self):
        pass

    def use(self):
        pass

    compute_capability = "90"


def _make_module():
    """Build the fake ``cupy`` and ``cupyx`` modules."""
    cupy = types.ModuleType("cupy", "fake cupy (tests/fake_cupy.py): NumPy behind CuPy's API")
    specials = {
        "ndarray": ndarray, "asarray": asarray, "array": array, "asnumpy": asnumpy,
        "get_array_module": lambda *args: cupy if any(
            isinstance(a, ndarray) for a in args) else np,
        "get_default_memory_pool": lambda: _POOL, "is_available": lambda: True,
        "__version__": "14.2.0-fake",
    }
    for name, value in specials.items():
        setattr(cupy, name, value)

    def module_getattr(name):
        if name.startswith("__") or name not in API_NAMES["cupy"]:
            raise AttributeError(f"module 'cupy' has no attribute {name!r} (not in the CuPy API)")
        value = getattr(np, name, None)
        if value is None:
            raise AttributeError(f"fake cupy: cupy.{name} exists in CuPy but is not faked here")
        if isinstance(value, np.ufunc):
            value = _Ufunc(name)
        elif callable(value) and not isinstance(value, type):
            value = _function(name)
        setattr(cupy, name, value)  # cache: the next lookup is a plain attribute
        return value

    cupy.__getattr__ = module_getattr

    random = types.ModuleType("cupy.random")
    random.default_rng = _Generator
    random.Generator = _Generator
    cupy.random = random

    cuda = types.ModuleType("cupy.cuda")
    cuda.runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDeviceProperties=lambda device: {"name": b"fake_cupy (NumPy on the CPU)"})
    cuda.Device = _Device
    cuda.is_available = lambda: True
    cupy.cuda = cuda

    cupyx = types.ModuleType("cupyx", "fake cupyx (tests/fake_cupy.py)")

    def scatter_add(a, slices, value):
        _Ufunc("add").at(a, slices, value)
    cupyx.scatter_add = scatter_add
    cupyx.allow_synchronize = allow_synchronize
    cupyx.DeviceSynchronized = DeviceSynchronized
    return cupy, cupyx


_POOL = _Pool()
_saved = {}


def install():
    """Put the fake ``cupy``/``cupyx`` into ``sys.modules`` and reset backend.py's CUDA state."""
    from tinygrad_llm import backend
    cupy, cupyx = _make_module()
    for name, module in (("cupy", cupy), ("cupyx", cupyx)):
        _saved[name] = sys.modules.get(name)
        sys.modules[name] = module
    _reset_backend(backend)
    reset_counts()
    return cupy


def uninstall():
    """Remove the fake modules (restoring whatever was there) and reset backend.py again."""
    from tinygrad_llm import backend
    for name in ("cupy", "cupyx"):
        previous = _saved.pop(name, None)
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    _reset_backend(backend)


def _reset_backend(backend):
    _STATE.update(forbid_float64=False, allow_synchronize=True)
    backend._cupy = None
    backend._cuda_checked = None
    backend._device_rngs.pop("cuda", None)
