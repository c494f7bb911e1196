r"""Module, Parameter and the containers ModuleList and Sequential, as in torch.nn.

A Module holds Parameters (tensors that require grad) and sub-Modules, registered in the order
they are assigned, under the attribute name. Dotted names (``transformer.h.0.attn.c_attn.weight``)
come from that tree and match torch's, so ``state_dict`` moves weights both ways.
"""

import numpy as np

from tinygrad_llm import backend
from tinygrad_llm.tensor import Tensor

__all__ = ["Parameter", "Module", "ModuleList", "Sequential"]


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimizer updates; it always requires grad."""

    def __init__(self, data, device=None):
        data = data.data if isinstance(data, Tensor) else data
        super().__init__(data, requires_grad=True, device=device)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of every layer and model. Subclasses set attributes in ``__init__`` (after
    ``super().__init__()``) and write ``forward``; calling the module calls ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attribute {name!r}")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal ---------------------------------------------------------------------------
    def named_modules(self, prefix=""):
        """(dotted name, module) for this module and every descendant, depth first."""
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return list(self._modules.values())

    def named_parameters(self, remove_duplicate=True):
        """(dotted name, parameter) in registration order; a shared (tied) parameter once."""
        seen = set()
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                if remove_duplicate and id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device=None, dtype=None):
        """Move every parameter to ``device`` and/or cast it to ``dtype``, in place (the
        Parameter objects stay the same, so an optimizer built earlier still holds them)."""
        if device is not None:
            device = backend.check_device(device)
        for p in self.parameters():
            data = p.data
            if dtype is not None:
                data = data.astype(dtype)
            if device is not None:
                data = backend.to_device(data, device)
            p.data = data
            p.grad = None
        return self

    # ---- state dict ----------------------------------------------------------------------------
    def state_dict(self):
        """{dotted name: NumPy array}, tied parameters under each of their names (as torch)."""
        return {name: p.numpy() for name, p in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` into the parameters, in place and on their device.

        With strict=True, missing keys, unexpected keys and shape mismatches raise KeyError or
        ValueError naming every offender.
        """
        own = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        mismatched = [f"{k}: checkpoint {tuple(np.shape(state[k]))} vs model {own[k].shape}"
                      for k in own if k in state and tuple(np.shape(state[k])) != own[k].shape]
        if mismatched:
            raise ValueError(f"load_state_dict: shape mismatch for {type(self).__name__}: "
                             + "; ".join(mismatched))
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: for {type(self).__name__}, missing keys "
                           f"{missing}, unexpected keys {unexpected}")
        for k, p in own.items():
            if k in state:
                value = state[k]
                value = backend.to_numpy(value.data if isinstance(value, Tensor) else value)
                p.data = backend.to_device(value.astype(p.dtype), p.device)
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    # ---- printing ------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        n = sum(p.size for p in self.parameters())
        head = f"{type(self).__name__}({self.extra_repr()})"
        if not self._modules:
            return f"{head}  # {n:,} params" if n else head
        lines = [f"{type(self).__name__}(  # {n:,} params"]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        if self.extra_repr():
            lines.insert(1, f"  {self.extra_repr()}")
        lines.append(")")
        return "\n".join(lines)


class ModuleList(Module):
    """A list of modules, registered as '0', '1', ... (so names read ``h.0.attn``)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Modules applied in order: ``Sequential(a, b)(x) == b(a(x))``."""

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for m in self:
            x = m(x)
        return x
