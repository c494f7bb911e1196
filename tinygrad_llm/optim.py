r"""Optimizers (SGD, Adam, AdamW), gradient clipping and learning-rate schedules, as in torch.optim.

An optimizer holds a list of *parameter groups*: each a dict with its own hyper-parameters and a
list of Parameters ``"params"``. ``opt.step()`` updates every parameter that has a gradient, in
place (the Parameter objects stay the same, so a model keeps its own tensors); ``opt.zero_grad()``
drops the gradients. The per-parameter state (momentum buffers, Adam's moments) is keyed by the
parameter's position in the groups (0, 1, 2, ... in order), never by ``id()``, so
``state_dict()`` / ``load_state_dict()`` carry it into a fresh process, in torch's layout:

    {"state": {0: {"step": 3, "exp_avg": array, "exp_avg_sq": array}, ...},
     "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), ..., "params": [0, 1, ...]}, ...]}

Symbols: p a parameter, g its gradient, t the step count (from 1), lr the learning rate, wd the
weight decay. All updates run in the parameter's dtype (float32 stays float32) and on its device.

``zero_grad()`` sets every ``p.grad`` to None, as torch's default (``set_to_none=True``).

Adam and AdamW take ``flat=True`` by default (the faster layout, as torch's ``foreach``/``fused``
switches): they then keep every parameter, gradient and moment in one flat buffer each
(``FlatBuffers``) and *move each parameter's storage*: ``p.data`` becomes a view into those
buffers, so a step is a few in-place vector ops per group. ``flat=False`` leaves every array where
it is and updates parameter by parameter. Both run the same update, ``adam_update_``, and give
the same numbers.
"""

import math

from tinygrad_llm import backend
from tinygrad_llm.kernels import cpu, cuda
from tinygrad_llm.ops.sparse import RowSparseGrad
from tinygrad_llm.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "FlatBuffers", "adam_update_",
           "clip_grad_norm_", "set_lr", "constant_lr", "step_lr", "warmup_cosine_lr",
           "warmup_linear_lr"]


class Optimizer:
    r"""Base class: parameter groups, ``zero_grad``, ``state_dict`` and ``load_state_dict``.

    ``params`` is an iterable of Parameters, or of dicts ``{"params": [...], "lr": ..., ...}``
    (parameter groups: keys a group leaves out take the constructor's defaults). Subclasses write
    ``_update(p, g, group, state)``, which changes ``p.data`` in place.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = []
        seen = set()
        for group in params:
            group = dict(group)
            ps = group.get("params")
            ps = [ps] if isinstance(ps, Tensor) else list(ps or [])
            for p in ps:
                if not isinstance(p, Tensor):
                    raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got "
                                    f"{type(p).__name__}")
                if not p.requires_grad:
                    raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} "
                                     "does not require grad, so it can never be updated")
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} "
                                     "appears in more than one group (or twice in one)")
                seen.add(id(p))
            unknown = set(group) - set(self.defaults) - {"params"}
            if unknown:
                raise ValueError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)} "
                                 f"in a parameter group; known: {sorted(self.defaults)}")
            for k, v in self.defaults.items():
                group.setdefault(k, v)
            group["params"] = ps
            self._check_group(group)
            self.param_groups.append(group)
        self.state = {}  # parameter index -> dict of arrays and the step count

    def _check_group(self, group):
        if group["lr"] < 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {group['lr']}")
        if group.get("weight_decay", 0) < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got "
                             f"{group['weight_decay']}")

    def _indexed_params(self):
        """(index, group, parameter) for every parameter, in order."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield i, group, p
                i += 1

    def zero_grad(self, set_to_none=True):
        """Drop every parameter's gradient (``p.grad = None``, torch's default), or with
        ``set_to_none=False`` set it to zeros in place."""
        for _, _, p in self._indexed_params():
            if set_to_none or p.grad is None or isinstance(p.grad, RowSparseGrad):
                p.grad = None
            else:
                p.grad.data.fill(0)

    def step(self):
        """Update every parameter that has a gradient, once."""
        for i, group, p in self._indexed_params():
            if p.grad is None:
                continue
            self._update(p, p.grad.data, group, self.state.setdefault(i, {}))

    def _update(self, p, g, group, state):
        raise NotImplementedError(f"{type(self).__name__}._update")

    # ---- state dict ----------------------------------------------------------------------
    def state_dict(self):
        """{"state": {index: {name: NumPy array or number}}, "param_groups": [...]} as torch's.

        Arrays are host copies; each group lists its parameters by index.
        """
        state = {i: {k: (backend.to_numpy(v).copy() if backend.is_array(v) else v)
                     for k, v in s.items()} for i, s in self.state.items()}
        groups, start = [], 0
        for group in self.param_groups:
            g = {k: v for k, v in group.items() if k != "params"}
            g["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(g)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state from ``state_dict()``, onto each parameter's device.

        The groups must have the same sizes as this optimizer's, and every array the shape of its
        parameter; otherwise a ValueError says what differs.
        """
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state has "
                             f"{len(groups)} parameter groups, this optimizer "
                             f"{len(self.param_groups)}")
        for n, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: group {n} has "
                                 f"{len(saved['params'])} parameters in the state, "
                                 f"{len(own['params'])} here")
        params = {i: p for i, _, p in self._indexed_params()}
        new_state = {}
        for i, s in state_dict["state"].items():
            i = int(i)
            if i not in params:
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for parameter "
                                 f"{i}, but there are only {len(params)}")
            p, entry = params[i], {}
            for k, v in s.items():
                if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0:
                    if tuple(v.shape) != p.shape:
                        raise ValueError(f"{type(self).__name__}.load_state_dict: {k!r} of "
                                         f"parameter {i} has shape {tuple(v.shape)}, the "
                                         f"parameter {p.shape}")
                    v = backend.to_device(backend.to_numpy(v).astype(p.dtype), p.device)
                elif hasattr(v, "item"):
                    v = v.item()
                entry[k] = v
            new_state[i] = entry
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = tuple(v) if isinstance(v, list) else v
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__}("]
        for n, group in enumerate(self.param_groups):
            opts = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {n}: {len(group['params'])} params, {opts}")
        return "\n".join(lines + [")"])


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay (torch's).

        g <- g + wd p                                   (weight decay, as an L2 penalty)
        buf <- g  (first step),  buf <- momentum buf + (1 - dampening) g  (later steps)
        d <- g + momentum buf  (nesterov),  d <- buf  (momentum > 0),  d <- g  (otherwise)
        p <- p - lr d
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    def _update(self, p, g, group, state):
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        if isinstance(g, RowSparseGrad):  # Embedding(sparse=True): update the touched rows only
            if momentum or wd:
                raise ValueError("SGD: a row-sparse gradient (Embedding(sparse=True)) needs "
                                 "momentum=0 and weight_decay=0; use sparse=False otherwise")
            cpu.scatter_add(p.data, g.indices, g.values, -lr)   # p[i] <- p[i] - lr g_i
            return
        if wd:
            g = g + wd * p.data                                    # g <- g + wd p
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()          # buf <- g
            else:
                buf *= momentum                                    # buf <- m buf + (1-d) g
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= lr * g                                           # p <- p - lr d


class FlatBuffers:
    r"""One flat array per role over all of an optimizer's parameters; each parameter a view.

    Parameter i owns the slice ``offsets[i]:offsets[i + 1]`` of every buffer, and the groups are
    contiguous (the parameters are numbered group after group), so group k is one slice too:

        buffers["param"]     p.data of every parameter, back to back    (n,)
        buffers["grad"]      p.grad.data                                (n,)
        buffers[name]        optimizer state, e.g. exp_avg, exp_avg_sq  (n,)
        buffers["scratch"]   room for the temporaries of an update      (n,)

    Built once the parameters share a device and a dtype (``build`` gives None otherwise). After
    it, ``p.data`` is a view of "param". Gradients reach "grad" in one of two ways. Backward
    accumulates into ``p.grad.data`` in place when ``p.grad`` exists, so after ``zero_grad`` (one
    fill that points every ``p.grad`` at its view, as torch's ``set_to_none=False``) they land
    there directly. After ``p.grad = None`` (``set_to_none=True``, ``model.zero_grad()``) backward
    makes new arrays, and ``adopt`` copies them into "grad" before the step, as it copies any
    gradient the user assigned (``p.grad = ...``); those ``p.grad`` stay the user's arrays. A
    rebound ``p.data`` (``Module.load_state_dict``) is copied in and pointed back at its view.
    """

    def __init__(self, params, state_names):
        self.params = params
        first = params[0].data
        xp = backend.get_xp(first)
        self.device, self.dtype = backend.device_of(first), first.dtype
        sizes = [p.size for p in params]
        self.offsets = [0]
        for n in sizes:
            self.offsets.append(self.offsets[-1] + n)
        total = self.offsets[-1]
        self.buffers = {name: xp.zeros(total, dtype=self.dtype)                 # (n,) each
                        for name in ("param", "grad", "scratch", *state_names)}
        self.views = {name: [self.slice(name, i, i + 1).reshape(p.shape)
                             for i, p in enumerate(params)]
                      for name in self.buffers}
        for p, view in zip(params, self.views["param"]):
            view[...] = p.data
            p.data = view

    @classmethod
    def build(cls, params, state_names):
        first = params[0].data
        same = all(type(p.data) is type(first) and p.dtype == first.dtype
                   and backend.device_of(p.data) == backend.device_of(first) for p in params)
        return cls(params, state_names) if same else None

    def slice(self, name, start, stop):
        """Parameters start..stop-1 of buffer ``name``: one contiguous (n,) view."""
        return self.buffers[name][self.offsets[start]:self.offsets[stop]]

    def zero_grad(self):
        """One fill; every ``p.grad`` is (again) a view of the zeroed "grad" buffer (the
        optimizer's ``zero_grad(set_to_none=False)``)."""
        self.buffers["grad"].fill(0)
        for p, view in zip(self.params, self.views["grad"]):
            if p.grad is None or p.grad.data is not view:
                p.grad = Tensor._wrap(view)

    def fits(self):
        """True while every parameter keeps this device and dtype (``Module.to`` may change
        them)."""
        return all(backend.device_of(p.data) == self.device and p.dtype == self.dtype
                   for p in self.params)

    def adopt(self, start, stop):
        """Before a step of parameters start..stop-1: copy a rebound ``p.data`` into "param" and
        point it back at its view (the step writes there), and copy each gradient that is not
        a view of "grad" into it (``p.grad`` itself is left as it is: the step only reads it).
        False if a gradient is missing or row-sparse (that group then takes the per-parameter
        path)."""
        for i in range(start, stop):
            p, data_view, grad_view = self.params[i], self.views["param"][i], self.views["grad"][i]
            if p.grad is None or isinstance(p.grad, RowSparseGrad):
                return False
            if p.data is not data_view:
                data_view[...] = p.data
                p.data = data_view
            if p.grad.data is not grad_view:
                grad_view[...] = p.grad.data
        return True


def adam_update_(p, g, m, v, scratch=None, *, lr, beta1, beta2, eps, weight_decay, step,
                 decoupled):
    r"""One Adam (``decoupled=False``) or AdamW (``decoupled=True``) step, in place on p, m, v.

        p <- p (1 - lr weight_decay)                 (AdamW: decay the weights directly)
        g <- g + weight_decay p                      (Adam: an L2 penalty; a new array, so the
                                                      caller's gradient stays as it was)
        m <- beta1 m + (1 - beta1) g                 (exp_avg: the first moment)
        v <- beta2 v + (1 - beta2) g^2               (exp_avg_sq: the second moment)
        p <- p - (m / (sqrt(v) (1 / sqrt(1 - beta2^step)) + eps)) (lr / (1 - beta1^step))

    The scalars (``1 - beta1``, ``1 / sqrt(1 - beta2^step)``, ``lr / (1 - beta1^step)``) are
    Python floats, rounded once to the arrays' dtype; every array operation rounds once, in the
    order of the code below. kernels/adamw.cu (compiled without fused multiply-add) follows the
    same order, so that a float32 step gives the same bits on the NumPy, CuPy and kernel paths.

    Reference: tinygrad_llm.reference.adam_update

    Parameters
    ----------
    p, g, m, v : arrays of one shape and dtype on one device: a parameter, its gradient and its
        two moments; a flat buffer's slice (``flat=True``) or one parameter's arrays.
    scratch : array like p, or None
        Room for the temporaries (so a step allocates nothing); None allocates one.
    lr, beta1, beta2, eps, weight_decay : Python floats; ``step`` the step count, from 1.
    """
    # kernels/adamw.cu in one pass: float32 CuPy arrays in C order (a flat buffer's slices are)
    if cuda.cuda_kernels_for(p, g, m, v) and all(a.flags.c_contiguous for a in (p, g, m, v)):
        cuda.adamw_step_cuda(p, g, m, v, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                weight_decay=weight_decay, step=step, decoupled=decoupled)
        return
    xp = backend.get_xp(p)
    if scratch is None:
        scratch = xp.empty_like(p)
    if weight_decay and decoupled:
        p *= 1 - lr * weight_decay                      # p <- p (1 - lr weight_decay)
    elif weight_decay:
        g = g + weight_decay * p                        # g <- g + weight_decay p (a new array)
    xp.multiply(g, 1 - beta1, out=scratch)              # m <- beta1 m + (1 - beta1) g
    m *= beta1
    m += scratch
    xp.multiply(g, g, out=scratch)                      # v <- beta2 v + (1 - beta2) g^2
    scratch *= 1 - beta2
    v *= beta2
    v += scratch
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step     # bias corrections, Python floats
    xp.sqrt(v, out=scratch)                             # denom = sqrt(v) (1 / sqrt(bias2)) + eps
    scratch *= 1 / math.sqrt(bias2)
    scratch += eps
    xp.divide(m, scratch, out=scratch)                  # m / denom
    scratch *= lr / bias1
    p -= scratch                                        # p <- p - (m / denom) lr / bias1


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015) with torch's L2-style weight decay (added to the gradient).

        g <- g + wd p
        m <- beta1 m + (1 - beta1) g              (exp_avg: the first moment)
        v <- beta2 v + (1 - beta2) g^2            (exp_avg_sq: the second moment)
        p <- p - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    The two divisions undo the zero initialisation of m and v (bias correction). Every path runs
    ``adam_update_``, whose docstring gives the exact order of the float operations.

    ``flat`` chooses where the arrays live, as torch's ``foreach`` / ``fused`` switches do; the
    numbers are the same either way.

    - ``flat=True`` (the default; the faster): **the optimizer moves each parameter's storage.**
      At construction every ``p.data`` is copied into one flat buffer and rebound to a view of
      it (``opt.flat``, a ``FlatBuffers``, also holds the moments and a gradient buffer). So an
      array taken before is no longer the parameter: ``w = p.data`` taken before the optimizer
      was built does not change when it steps, and writing into ``w`` does not reach the model.
      Read ``p.data`` again after building the optimizer (or after ``Module.to``, which makes
      it rebuild the buffers). Rebinding ``p.data`` yourself (``Module.load_state_dict`` does)
      is fine: the next step copies the new array in and points ``p.data`` back at its view.
      Before each step the gradients are copied into the gradient buffer, unless backward
      already summed into it (after ``zero_grad(set_to_none=False)``, below); ``p.grad`` is only
      read. A group whose parameters all have dense gradients and the same step count is then
      updated by one ``adam_update_`` call on its slices, any other group parameter by
      parameter on the same views. Parameters that differ in device or dtype keep their own
      arrays (``opt.flat`` is then None), as with ``flat=False``.
    - ``flat=False``: nothing moves. ``p.data`` is updated in place, ``p.grad`` is only read, the
      moments are one array per parameter (``opt.flat`` is None), and the step goes parameter
      by parameter.

    ``zero_grad()`` sets ``p.grad = None`` (torch's default); ``zero_grad(set_to_none=False)``
    leaves zeros, as torch's: with flat buffers that is one fill which points every ``p.grad``
    at its (zeroed) view of the gradient buffer, so backward then sums straight into it and
    ``clip_grad_norm_`` takes one pass over it (a little faster).
    ``state_dict()`` has torch's layout (host copies of the moments) in both modes, and either
    mode loads the other's.
    """

    decoupled = False
    _state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 flat=True):
        betas = tuple(float(b) for b in betas)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{type(self).__name__}: betas must be two numbers in [0, 1), "
                             f"got {betas}")
        if eps < 0:
            raise ValueError(f"{type(self).__name__}: eps must be >= 0, got {eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        params = [p for _, _, p in self._indexed_params()]
        self.flat = FlatBuffers.build(params, self._state_names) if flat else None

    def zero_grad(self, set_to_none=True):
        """``p.grad = None`` for every parameter (torch's default), or with ``set_to_none=False``
        zeros: with flat buffers one fill of the gradient buffer, every ``p.grad`` a view of it."""
        if set_to_none or self.flat is None:
            super().zero_grad(set_to_none)
        else:
            self.flat.zero_grad()

    def _new_state(self, i, p):
        """State of parameter i at its first step: moments are zeros (views of the buffers)."""
        if self.flat is not None and self.flat.fits():
            moments = {name: self.flat.views[name][i] for name in self._state_names}
        else:
            xp = backend.get_xp(p.data)
            moments = {name: xp.zeros_like(p.data) for name in self._state_names}
        return {"step": 0, **moments}

    def step(self):
        """Update every parameter that has a gradient, once: a whole group at a time if it can."""
        flat = self.flat
        if flat is not None and not flat.fits():   # moved or cast by Module.to: rebuild
            flat = self.flat = self._rebuild_flat()
        start = 0
        for group in self.param_groups:
            stop = start + len(group["params"])
            states = [self.state.get(i) for i in range(start, stop)]
            steps = {s["step"] if s else 0 for s in states}
            if flat is not None and stop > start and len(steps) == 1 and flat.adopt(start, stop):
                for i, p, s in zip(range(start, stop), group["params"], states):
                    if not s:
                        s = self.state[i] = self._new_state(i, p)
                    s["step"] += 1
                (beta1, beta2), t = group["betas"], steps.pop() + 1
                adam_update_(*(flat.slice(name, start, stop) for name in
                               ("param", "grad", "exp_avg", "exp_avg_sq", "scratch")),
                             lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                             weight_decay=group["weight_decay"], step=t,
                             decoupled=self.decoupled)
            else:
                for i, p in zip(range(start, stop), group["params"]):
                    if p.grad is not None:
                        if i not in self.state:
                            self.state[i] = self._new_state(i, p)
                        self._update(p, p.grad.data, group, self.state[i])
            start = stop

    def _rebuild_flat(self):
        """New buffers on the parameters' current device and dtype, state copied across."""
        params = self.flat.params
        flat = FlatBuffers.build(params, self._state_names)
        if flat is not None:
            for i, s in self.state.items():
                for name in self._state_names:
                    view = flat.views[name][i]
                    view[...] = backend.to_device(backend.to_numpy(s[name]), flat.device)
                    s[name] = view
        return flat

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self.flat is not None and self.flat.fits():
            for i, s in self.state.items():       # the loaded moments go into the buffers
                for name in self._state_names:
                    if name in s:
                        view = self.flat.views[name][i]
                        view[...] = s[name]
                        s[name] = view

    def _update(self, p, g, group, state):
        """One parameter's step: ``adam_update_`` on its own arrays (g in p's dtype, as the flat
        buffer would hold it)."""
        if isinstance(g, RowSparseGrad):            # Embedding(sparse=True): SGD only
            raise TypeError(f"{type(self).__name__}: a row-sparse gradient (from Embedding(..., "
                            "sparse=True)) supports only plain SGD (no momentum or weight "
                            "decay); call .to_dense() or use sparse=False")
        beta1, beta2 = group["betas"]
        state["step"] += 1
        adam_update_(p.data, g.astype(p.dtype, copy=False), state["exp_avg"],
                     state["exp_avg_sq"], lr=group["lr"], beta1=beta1, beta2=beta2,
                     eps=group["eps"], weight_decay=group["weight_decay"], step=state["step"],
                     decoupled=self.decoupled)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as torch.optim.AdamW:

        p <- p (1 - lr wd)            (decay the weights directly, not through the gradient)
        then Adam's update with wd = 0.
    """

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, *,
                 flat=True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         flat=flat)


def clip_grad_norm_(params, max_norm, eps=1e-6):
    r"""Scale all gradients together so their global L2 norm is at most ``max_norm`` (torch's).

        total = sqrt(sum over every parameter of sum(g^2))
        g <- g * min(1, max_norm / (total + eps))

    Returns the norm before clipping as a 0-d Tensor (no host sync on a GPU; ``.item()`` gives
    the number). Parameters without a gradient are skipped. Gradients that are views covering
    one flat buffer (an Adam optimizer's, see ``FlatBuffers``) take one pass over that buffer. A
    row-sparse gradient (``Embedding(sparse=True)``) counts each row once, its repeated indices
    summed first (``coalesce``), and is scaled in place.
    """
    if isinstance(params, Tensor):
        params = [params]
    grads, seen = [], set()
    for p in params:
        if p.grad is not None and id(p) not in seen:
            seen.add(id(p))
            grads.append(p.grad)
    if not grads:
        return Tensor(0.0)
    for n, g in enumerate(grads):
        if isinstance(g, RowSparseGrad):          # replaced by its coalesced form, in p.grad too
            grads[n] = g.coalesce()
            for p in params:
                if p.grad is g:
                    p.grad = grads[n]
    arrays = [g.values if isinstance(g, RowSparseGrad) else g.data for g in grads]
    xp = backend.get_xp(arrays[0])
    total = xp.sqrt(sum(xp.vdot(a.ravel(), a.ravel()) for a in _whole_buffers(arrays)))
    coef = xp.minimum(max_norm / (total + eps), 1.0).astype(arrays[0].dtype)
    for a in _whole_buffers(arrays):
        a *= coef
    return Tensor._wrap(xp.asarray(total))


def _whole_buffers(arrays):
    """``arrays`` with every set of views that exactly tiles one flat buffer replaced by that
    buffer (one pass instead of one per view); other arrays as they are."""
    by_base = {}
    for a in arrays:
        if a.base is not None and a.base.ndim == 1 and a.base.flags.c_contiguous:
            by_base.setdefault(id(a.base), []).append(a)
    whole = {key for key, views in by_base.items()
             if sum(v.size for v in views) == views[0].base.size}
    out = [views[0].base for key, views in by_base.items() if key in whole]
    return out + [a for a in arrays if a.base is None or id(a.base) not in whole]


# ---- learning-rate schedules -----------------------------------------------------------------
# A schedule maps the iteration number (from 0) to a learning rate; set it before each step:
#     set_lr(opt, warmup_cosine_lr(it, 1e-3, 100, 2000, 1e-4))

def set_lr(optimizer, lr):
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def constant_lr(it, lr):
    r"""lr(it) = lr."""
    return lr


def step_lr(it, lr, step_size, gamma=0.1):
    r"""lr(it) = lr * gamma^floor(it / step_size)   (torch's StepLR)."""
    return lr * gamma ** (it // step_size)


def warmup_cosine_lr(it, lr, warmup_iters, decay_iters, min_lr):
    r"""Linear warm-up, then cosine decay to ``min_lr``, then ``min_lr`` (nanoGPT's get_lr):

        lr(it) = lr (it + 1) / (warmup_iters + 1)                      it < warmup_iters
        lr(it) = min_lr + (lr - min_lr) (1 + cos(pi r)) / 2,           warmup_iters <= it <= decay
                 r = (it - warmup_iters) / (decay_iters - warmup_iters)
        lr(it) = min_lr                                                it > decay_iters
    """
    if it < warmup_iters:
        return lr * (it + 1) / (warmup_iters + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / max(decay_iters - warmup_iters, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def warmup_linear_lr(it, lr, warmup_iters, total_iters):
    r"""Linear warm-up from 0, then linear decay to 0 at ``total_iters`` (BERT's schedule;
    Hugging Face's get_linear_schedule_with_warmup):

        lr(it) = lr it / warmup_iters                                   it < warmup_iters
        lr(it) = lr max(0, (total_iters - it) / (total_iters - warmup_iters))   otherwise
    """
    if it < warmup_iters:
        return lr * it / max(warmup_iters, 1)
    return lr * max(0.0, (total_iters - it) / max(total_iters - warmup_iters, 1))
