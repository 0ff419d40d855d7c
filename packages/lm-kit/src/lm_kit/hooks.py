"""Capture and edit activations with context managers that always remove their hooks.

* :class:`capture` records site tensors (module outputs, or inputs for ``*_in``/``resid_pre``...).
* :class:`edit` rewrites them with :class:`Add`, :class:`Ablate`, :class:`Replace`,
  :class:`Scale` or :class:`Fn`, optionally only at some absolute positions.
* :func:`run` runs a forward pass and stops right after the last captured site (early stop).
* :func:`assert_no_hooks` checks that no lm-kit hook is left on a model.

Outputs may be tensors (transformers 5.x blocks) or tuples (4.x blocks, attention modules):
``out[0]`` is read when the output is a tuple, and edits are written back into the same
container type.
"""

from __future__ import annotations

import contextvars
import inspect
import math
import numbers
import operator
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from lm_kit.errors import EditError, SiteError
from lm_kit.hookpoints import Site, resolve, resolve_many
from lm_kit.positions import PositionContext, _tag, check_positions

PositionSpec = Any  # None | int | slice | Iterable[int] | "prompt" | "response"


class _StopForward(Exception):
    """Raised by a hook to end a forward pass early; caught by :func:`run`."""


# --------------------------------------------------------------------------- containers
def _unwrap_out(out: Any) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """Return the hidden-state tensor of a module output and a function writing it back."""
    if isinstance(out, torch.Tensor):
        return out, lambda new: new
    if isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
        return out[0], lambda new: (new, *out[1:])
    if isinstance(out, list) and out and isinstance(out[0], torch.Tensor):
        return out[0], lambda new: [new, *out[1:]]
    if isinstance(out, Mapping) and hasattr(out, "to_tuple"):  # transformers ModelOutput
        key = next(iter(out.keys()))

        def _set(new: torch.Tensor) -> Any:
            out[key] = new  # type: ignore[index]
            return out

        return out[key], _set
    raise TypeError(
        f"cannot find a hidden-state tensor in a module output of type {type(out).__name__}"
    )


def _unwrap_in(args: tuple, kwargs: dict) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """Return the hidden-state input (``args[0]`` or ``kwargs['hidden_states']``) and a writer."""
    if args and isinstance(args[0], torch.Tensor):
        return args[0], lambda new: ((new, *args[1:]), kwargs)
    key = "hidden_states" if isinstance(kwargs.get("hidden_states"), torch.Tensor) else None
    if key is None:
        key = next((k for k, v in kwargs.items() if isinstance(v, torch.Tensor)), None)
    if key is None:
        raise TypeError("cannot find a hidden-state tensor among the module inputs")

    def _write(new: torch.Tensor) -> Any:
        kw = dict(kwargs)
        kw[key] = new
        return args, kw

    return kwargs[key], _write


def _register(site: Site, fn_in: Callable, fn_out: Callable) -> Any:
    module = site.module
    assert module is not None
    if site.direction == "in":
        return module.register_forward_pre_hook(_tag(fn_in), with_kwargs=True)
    return module.register_forward_hook(_tag(fn_out))


# --------------------------------------------------------------------------- run state
@dataclass
class _RunState:
    model: nn.Module
    captures: list[capture] = field(default_factory=list)


_RUN: contextvars.ContextVar[_RunState | None] = contextvars.ContextVar("lm_kit_run", default=None)
_ACTIVE_CAPTURES: list[capture] = []


# --------------------------------------------------------------------------- capture
class Captured(Mapping[str, torch.Tensor]):
    """Tensors captured per site name. One forward -> that tensor; several forwards (e.g.
    ``generate``) -> concatenated along the sequence dim (use :meth:`calls` for the list)."""

    def __init__(self, sites: Sequence[Site], aliases: dict[str, str]):
        self.sites = {s.name: s for s in sites}
        self._store: dict[str, list[torch.Tensor]] = {s.name: [] for s in sites}
        self._aliases = aliases
        self.transform: str | None = None

    def _key(self, name: str) -> str:
        if name in self._store:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise KeyError(f"site {name!r} was not captured; captured: {', '.join(self._store)}")

    def __getitem__(self, name: str) -> torch.Tensor:
        key = self._key(name)
        calls = self._store[key]
        if not calls:
            raise KeyError(
                f"site {key!r} was captured but no forward pass reached it (early stop, or no forward)"
            )
        if len(calls) == 1:
            return calls[0]
        if all(c.dim() >= 2 for c in calls):
            return torch.cat(calls, dim=1)
        return torch.stack(calls)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._store or name in self._aliases)

    def calls(self, name: str) -> list[torch.Tensor]:
        """The tensors of every forward pass, in order."""
        return list(self._store[self._key(name)])

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        for v in self._store.values():
            v.clear()

    def __repr__(self) -> str:
        shapes = {k: [tuple(t.shape) for t in v] for k, v in self._store.items()}
        return f"Captured({shapes})"


class capture:  # noqa: N801 - used like a function: ``with capture(model, sites) as acts``
    """Record activations at ``sites`` during every forward pass inside the ``with`` block.

    Args:
        model: the model the sites are resolved on.
        sites: one name or a list (canonical, ``module:...``, TL names, or :class:`Site`).
        inputs: raw ``module:`` names without ``:in``/``:out`` record the module *input*.
        to: device the copies go to (``None`` keeps the device).
        dtype: cast copies to this dtype.
        clone: copy even when ``to``/``dtype`` change nothing (so later in-place ops can't alter them).
        stop_at: ``"auto"``: inside :func:`run`, end the forward once every site was recorded;
            a site name or layer int: end after that site; ``None``: never stop early.
        transform: ``"center"`` subtracts each vector's mean over the last dim, which reproduces
            TransformerLens' residual under its default ``center_writing_weights`` processing
            (LayerNorm models); recorded in ``acts.transform``.
    """

    def __init__(
        self,
        model: nn.Module,
        sites: Any,
        *,
        inputs: bool = False,
        to: str | torch.device | None = "cpu",
        dtype: torch.dtype | None = None,
        clone: bool = True,
        stop_at: str | int | None = "auto",
        transform: str | None = None,
    ):
        if transform not in (None, "center"):
            raise ValueError(f"transform={transform!r} unknown; use None or 'center'")
        self.model = model
        self.transform = transform
        if isinstance(sites, (str, Site)):
            names = [sites]
        elif isinstance(sites, Iterable):
            names = list(sites)
        else:
            raise SiteError(
                f"capture() needs a site name, a Site, or a list of them (e.g. 'resid_post.3' or "
                f"['resid_post.*', 'mlp_out.1']), got {type(sites).__name__}"
            )
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise ValueError(
                f"capture(dtype={dtype!r}) must be a torch.dtype such as torch.float16, or None"
            )
        try:
            to_device = torch.device(to) if to is not None else None
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"capture(to={to!r}) is not a device; use 'cpu', 'cuda', 'cuda:<index>', a "
                "torch.device, or None to keep the tensors where they are"
            ) from exc
        resolved: list[Site] = []
        aliases: dict[str, str] = {}
        for n in names:
            got = resolve(model, n, inputs=inputs)
            for s in got:
                if all(s.name != r.name for r in resolved):
                    resolved.append(s)
                if s.tl_name:
                    aliases.setdefault(s.tl_name, s.name)
            if isinstance(n, str) and len(got) == 1:
                aliases.setdefault(n, got[0].name)
        if not resolved:
            raise SiteError("capture() needs at least one site")
        self.sites = resolved
        self.to = to_device
        self.dtype = dtype
        self.clone = clone
        self.stop_at = stop_at
        self._stop_site: Site | None = None
        if stop_at not in (None, "auto", False):
            stop_name = f"resid_post.{stop_at}" if isinstance(stop_at, int) else stop_at
            self._stop_site = resolve(model, stop_name)[0]
        self.acts = Captured(resolved, aliases)
        self.acts.transform = transform
        self._handles: list[Any] = []
        self._seen: set[str] = set()

    # -- recording
    def _store(self, site: Site, t: torch.Tensor) -> None:
        x = t.detach()
        if self.transform == "center":
            x = x - x.mean(dim=-1, keepdim=True)
        if self.dtype is not None:
            x = x.to(self.dtype)
        if self.to is not None:
            x = x.to(self.to)
        if self.clone and x.data_ptr() == t.data_ptr():
            x = x.clone()
        self.acts._store[site.name].append(x)
        self._seen.add(site.name)
        self._maybe_stop()

    def _maybe_stop(self) -> None:
        state = _RUN.get()
        if state is None or self not in state.captures or self.stop_at in (None, False):
            return
        if self._stop_site is not None:
            return
        if all(c._complete() for c in state.captures):
            raise _StopForward

    def _complete(self) -> bool:
        if self.stop_at in (None, False):
            return False
        if self._stop_site is not None:
            return False
        return len(self._seen) == len(self.sites)

    def _begin_pass(self) -> None:
        self._seen = set()

    def _hooks_for(self, site: Site) -> tuple[Callable, Callable]:
        def _in(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            t, _ = _unwrap_in(args, kwargs)
            self._store(site, t)

        def _out(_m: nn.Module, _args: tuple, out: Any) -> None:
            t, _ = _unwrap_out(out)
            self._store(site, t)

        return _in, _out

    def _stop_hook(self, _m: nn.Module, _args: tuple, _out: Any) -> None:
        state = _RUN.get()
        if state is not None and self in state.captures:
            raise _StopForward

    def __enter__(self) -> Captured:
        try:
            for s in self.sites:
                self._handles.append(_register(s, *self._hooks_for(s)))
            if self._stop_site is not None:
                mod = self._stop_site.module
                assert mod is not None
                self._handles.append(mod.register_forward_hook(_tag(self._stop_hook)))
        except BaseException:
            self._remove()
            raise
        _ACTIVE_CAPTURES.append(self)
        return self.acts

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self in _ACTIVE_CAPTURES:
            _ACTIVE_CAPTURES.remove(self)

    def __exit__(self, *exc: object) -> None:
        self._remove()


# --------------------------------------------------------------------------- edits
def _check_tensor(op: str, name: str, t: Any) -> None:
    if not isinstance(t, torch.Tensor):
        raise EditError(
            f"{op}.{name} must be a torch.Tensor, got {type(t).__name__}; convert it with "
            "torch.as_tensor(...)"
        )
    if t.is_complex():
        raise EditError(f"{op}.{name} is complex ({t.dtype}); pass a real (floating) tensor")


def _check_number(op: str, name: str, x: Any) -> None:
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise EditError(f"{op}.{name} is complex ({x.dtype}); pass a real number or tensor")
        return
    if not isinstance(x, numbers.Real):
        raise EditError(f"{op}.{name} must be a real number or a tensor, got {type(x).__name__}")
    if not math.isfinite(x):
        raise EditError(f"{op}.{name} must be finite, got {x}")


def _check_finite(op: str, name: str, t: torch.Tensor) -> None:
    # one check when the op is built (never inside a hook, where it would force a device sync)
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise EditError(
            f"{op}.{name} contains NaN or inf values; every edited activation would too"
        )


@dataclass(frozen=True)
class Add:
    """``h + coef * v`` (at ``positions``, absolute, KV-cache aware)."""

    v: torch.Tensor
    coef: float = 1.0
    positions: PositionSpec = None

    def __post_init__(self) -> None:
        _check_tensor("Add", "v", self.v)
        _check_finite("Add", "v", self.v)
        _check_number("Add", "coef", self.coef)
        check_positions("Add", self.positions)

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.coef * self.v.to(h.device, h.dtype)


@dataclass(frozen=True)
class Ablate:
    """Remove the component along ``v``: ``h - (h . v_hat) v_hat``."""

    v: torch.Tensor
    positions: PositionSpec = None

    def __post_init__(self) -> None:
        _check_tensor("Ablate", "v", self.v)
        if self.v.dim() != 1:
            raise EditError(
                f"Ablate.v must be one direction of shape [d], got shape {tuple(self.v.shape)}; "
                "to remove several directions use one Ablate per direction (orthonormalised)"
            )
        norm = float(torch.linalg.vector_norm(self.v.detach().double()))
        if not math.isfinite(norm) or norm == 0.0:
            raise EditError(
                f"Ablate.v has norm {norm}; a direction to ablate needs a finite, non-zero norm "
                "(a zero vector would turn every edited activation into NaN)"
            )
        check_positions("Ablate", self.positions)

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        v = self.v.to(h.device, h.dtype)
        vh = v / v.norm()
        return h - (h @ vh).unsqueeze(-1) * vh


@dataclass(frozen=True)
class Replace:
    """Replace the activation by ``t`` (broadcast to the activation's shape)."""

    t: torch.Tensor
    positions: PositionSpec = None

    def __post_init__(self) -> None:
        _check_tensor("Replace", "t", self.t)
        check_positions("Replace", self.positions)

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        return self.t.to(h.device, h.dtype).expand_as(h).clone()


@dataclass(frozen=True)
class Scale:
    """``c * h``."""

    c: float
    positions: PositionSpec = None

    def __post_init__(self) -> None:
        _check_number("Scale", "c", self.c)
        check_positions("Scale", self.positions)

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.c


@dataclass(frozen=True)
class Fn:
    """Any function ``f(h) -> h'`` (or ``f(h, site) -> h'``) of the same shape and dtype."""

    f: Callable[..., torch.Tensor]
    positions: PositionSpec = None

    def __post_init__(self) -> None:
        if not callable(self.f):
            raise EditError(
                f"Fn.f must be a function f(h) or f(h, site), got {type(self.f).__name__}"
            )
        check_positions("Fn", self.positions)

    def apply(self, h: torch.Tensor, site: Site | None = None) -> torch.Tensor:
        try:
            n = len(inspect.signature(self.f).parameters)
        except (TypeError, ValueError):
            n = 1
        return self.f(h, site) if n >= 2 else self.f(h)


EditOp = Add | Ablate | Replace | Scale | Fn


def _op_width(op: EditOp) -> int | None:
    """Last-dim width an activation must have for ``op`` (``None``: any width broadcasts)."""
    t = (
        op.v
        if isinstance(op, (Add, Ablate))
        else op.t
        if isinstance(op, Replace)
        else op.c
        if isinstance(op, Scale)
        else None
    )
    if not isinstance(t, torch.Tensor) or t.dim() == 0:
        return None
    w = int(t.shape[-1])
    return None if w == 1 and not isinstance(op, Ablate) else w


class edit:  # noqa: N801
    """Apply ``{site: op}`` edits during every forward pass inside the ``with`` block.

    Position-selective ops (``positions=``) select by absolute token position (``int``,
    ``slice(p0, None)`` for ``pos >= p0``, a set, ``"prompt"`` or ``"response"``), also during
    KV-cache decoding. Editing a read-only site (``resid_mid``) is refused; an op returning another
    shape or dtype raises :class:`EditError` naming the site. Yields the :class:`PositionContext`.
    """

    def __init__(self, model: nn.Module, edits: Mapping[Any, EditOp]):
        if not isinstance(edits, Mapping):
            raise TypeError(
                f"edit() needs a dict {{site: op}}, e.g. {{'resid_post.3': Add(v)}}, got "
                f"{type(edits).__name__}"
            )
        self.model = model
        self.plan: list[tuple[Site, EditOp]] = []
        for name, op in edits.items():
            if not isinstance(op, (Add, Ablate, Replace, Scale, Fn)):
                raise TypeError(
                    f"edit for {name!r} must be Add, Ablate, Replace, Scale or Fn, got {type(op).__name__}"
                )
            for s in resolve(model, name):
                if not s.editable:
                    raise SiteError(
                        f"{s.name!r} is read-only: it is the input of a norm, and changing a norm's "
                        f"input in a pre-hook does not change the residual stream. Edit "
                        f"'attn_out.{s.layer}' (added to the residual just before) instead"
                    )
                self.plan.append((s, op))
        self.positions = PositionContext(model)
        self._need_positions = any(op.positions is not None for _, op in self.plan)
        self._handles: list[Any] = []

    def _apply(
        self, site: Site, op: EditOp, h: torch.Tensor, width: int | None = None
    ) -> torch.Tensor:
        if isinstance(op, Fn):
            new = op.apply(h, site)
        else:
            if width is not None and h.shape[-1] != width:
                raise EditError(
                    f"{type(op).__name__} at site {site.name!r} has a vector of width {width}, but "
                    f"the activation there has width {h.shape[-1]} (shape {tuple(h.shape)}); "
                    f"pass a vector of shape [{h.shape[-1]}] (see resolve(model, name, probe=True))"
                )
            try:
                new = op.apply(h)
            except RuntimeError as exc:
                if isinstance(exc, torch.OutOfMemoryError):
                    raise
                raise EditError(
                    f"{type(op).__name__} at site {site.name!r} cannot be applied to an activation "
                    f"of shape {tuple(h.shape)} {h.dtype}: {exc}; its tensor must broadcast to "
                    f"that shape (usually shape [{h.shape[-1]}])"
                ) from exc
        if not isinstance(new, torch.Tensor) or new.shape != h.shape or new.dtype != h.dtype:
            got = (
                f"{tuple(new.shape)} {new.dtype}"
                if isinstance(new, torch.Tensor)
                else type(new).__name__
            )
            raise EditError(
                f"edit at site {site.name!r} returned {got}, expected {tuple(h.shape)} {h.dtype}; "
                "return a tensor of the same shape and dtype"
            )
        if op.positions is not None:
            sel = self.positions.select(op.positions, h)
            if sel is not None:
                shape = sel.shape + (1,) * (h.dim() - sel.dim())
                new = torch.where(sel.reshape(shape), new, h)
        return new

    def _hooks_for(self, site: Site, op: EditOp) -> tuple[Callable, Callable]:
        width = _op_width(op)

        def _in(_m: nn.Module, args: tuple, kwargs: dict) -> Any:
            t, write = _unwrap_in(args, kwargs)
            return write(self._apply(site, op, t, width))

        def _out(_m: nn.Module, _args: tuple, out: Any) -> Any:
            t, write = _unwrap_out(out)
            return write(self._apply(site, op, t, width))

        return _in, _out

    def __enter__(self) -> PositionContext:
        try:
            if self._need_positions:
                self.positions.__enter__()
            for s, op in self.plan:
                self._handles.append(_register(s, *self._hooks_for(s, op)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.positions

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.positions.__exit__()
        if self._need_positions and (not exc or exc[0] is None):
            self._warn_unmatched_positions()

    def _warn_unmatched_positions(self) -> None:
        """Warn (host-side only, no device sync) about positions beyond every sequence seen."""
        bound = self.positions.max_len
        if not self.positions.forwards or bound is None:
            return
        for site, op in self.plan:
            lo = _first_position(op.positions)
            if lo is not None and lo >= bound:
                warnings.warn(
                    f"{type(op).__name__}(positions={op.positions!r}) at site {site.name!r} never "
                    f"applied: the longest sequence in this edit block had {bound} tokens "
                    f"(positions 0..{bound - 1}); positions are absolute, counted from 0",
                    stacklevel=3,
                )


def _first_position(spec: Any) -> int | None:
    """Smallest absolute position an int/slice/set spec can select (``None`` for str/None)."""
    if spec is None or isinstance(spec, str):
        return None
    if isinstance(spec, int):
        return spec
    if isinstance(spec, slice):
        return spec.start or 0
    items = spec.tolist() if isinstance(spec, torch.Tensor) else list(spec)
    return min(operator.index(x) for x in items) if items else None


# --------------------------------------------------------------------------- run / leak check
def _owns(model: nn.Module, other: nn.Module) -> bool:
    return other is model or any(m is other for m in model.modules())


def run(model: nn.Module, *, grad: bool = False, **batch: Any) -> Any:
    """Forward ``model(**batch)``; returns its output, or ``None`` when a capture stopped it early.

    Early stop happens when every active :class:`capture` on this model has ``stop_at`` set and
    got all its sites (or reached its ``stop_at`` site); the KV cache is off in that mode. The
    model is never mutated.
    """
    caps = [c for c in _ACTIVE_CAPTURES if _owns(model, c.model) or _owns(c.model, model)]
    early = bool(caps) and all(c.stop_at not in (None, False) for c in caps)
    state = _RunState(model=model, captures=caps if early else [])
    for c in caps:
        c._begin_pass()
    if early:
        batch.setdefault("use_cache", False)
    token = _RUN.set(state)
    try:
        with torch.set_grad_enabled(grad):
            return model(**batch)
    except _StopForward:
        return None
    finally:
        _RUN.reset(token)


def lm_kit_hooks(model: nn.Module) -> list[str]:
    """Names (``module_path:kind``) of lm-kit hooks still registered on ``model``."""
    found = []
    for name, mod in model.named_modules():
        for kind in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        ):
            for fn in getattr(mod, kind, {}).values():
                if getattr(fn, "_lm_kit_hook", False):
                    found.append(f"{name or '<root>'}:{kind.strip('_')}")
    return found


def assert_no_hooks(model: nn.Module) -> None:
    """Raise ``AssertionError`` naming every lm-kit hook still on ``model`` (leak check).

    Hooks that transformers installs itself (e.g. for ``output_hidden_states``) are ignored.
    """
    left = lm_kit_hooks(model)
    if left:
        raise AssertionError(f"{len(left)} lm-kit hook(s) left on the model: {', '.join(left)}")


__all__ = [
    "Ablate",
    "Add",
    "Captured",
    "Fn",
    "Replace",
    "Scale",
    "assert_no_hooks",
    "capture",
    "edit",
    "lm_kit_hooks",
    "resolve_many",
    "run",
]
