"""Steering: ``with steer(model, [SteerSpec(...)], positions="response"): model.generate(...)``.

Every edit is an lm-kit ``edit(model, {site: Fn(...)})`` hook returning new tensors (the model
is never mutated). Write masks come from lm-kit's :class:`PositionContext` (absolute positions
of real tokens), so ``prompt``/``response`` stay right during ``generate`` with a KV cache and
pads are never steered. ``response`` includes the last prompt token (it produces the first
sampled token) unless ``include_last_prompt=False``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import LayerError, RepeError, unknown
from ..io.vector_file import check_compatible
from ..sites import normalise_layers, num_layers
from ..vector import ReadingVector
from .conditional import (
    COMPARATORS,
    AllOf,
    AnyOf,
    Condition,
    Gate,
    Not,
    condition_similarity,
    evaluate_gate,
    gate_leaves,
)
from .operators import OPERATORS, OperatorParams, apply_operator
from .schedule import ScheduleLike, layer_coefficients

POSITIONS = ("all", "prompt", "response")
__all__ = ["AllOf", "AnyOf", "Condition", "Not", "SteerSpec", "directional_ablation", "steer"]


@dataclass
class SteerSpec:
    """One vector applied at some layers with one operator.

    ``alpha_l = coeff * schedule(l) * unit(l)``; ``units`` in unit|diff|resid|sigma|raw.
    """

    vector: ReadingVector
    coeff: float = 1.0
    layers: int | str | Sequence[int] | None = None
    schedule: ScheduleLike = None
    operator: str | Callable[..., torch.Tensor] = "add"  # a name, or op(h, v, a, m) -> h'
    units: str = "unit"
    normalize: bool = False
    norm_cap: bool = False
    condition: Gate | None = None  # a Condition, or AnyOf/AllOf/Not of Conditions
    component: int = 0
    strict: bool = True
    _layers: list[int] = field(default_factory=list, repr=False)


@dataclass
class _Op:
    spec_index: int
    name: str | Callable[..., torch.Tensor]
    params: OperatorParams
    alpha: float
    normalize: bool
    norm_cap: bool
    gate: Gate | None  # a condition expression; its leaves index ``conditions``


class _SteerState:
    """Per-``steer`` runtime state: masks per forward, CAST gates, cast caches."""

    def __init__(self, pc: Any, positions: str, include_last_prompt: bool, n_conditions: int):
        self.pc = pc
        self.positions = positions
        self.include_last_prompt = include_last_prompt
        self.prompt_len: torch.Tensor | None = None
        self.prompt_ids: torch.Tensor | None = None
        self.gates: list[torch.Tensor | None] = [None] * n_conditions
        self._forward = -1
        self._mask: torch.Tensor | None = None
        self.is_prefill = False
        self.right_padded = False

    def mask(self, h: torch.Tensor) -> torch.Tensor:
        pc = self.pc
        if pc.forwards != self._forward:
            self._forward = pc.forwards
            pos, real = pc.positions, pc.real
            if pos is None or pos.shape[:2] != h.shape[:2]:
                raise RepeError(
                    "steering could not read token positions for this forward; call the model "
                    "with input_ids (and attention_mask) rather than a wrapper that bypasses it"
                )
            pos, real = pos.to(h.device), real.to(h.device)
            prefill = bool(((pos == 0) & real).any(-1).all())
            ids = getattr(pc, "current_ids", None)
            continuation = (
                prefill
                and ids is not None
                and self.prompt_ids is not None
                and ids.shape[0] == self.prompt_ids.shape[0]
                and ids.shape[1] > self.prompt_ids.shape[1]
                and torch.equal(
                    ids[:, : self.prompt_ids.shape[1]].to(self.prompt_ids.device), self.prompt_ids
                )
            )  # uncached generate: the prompt plus generated tokens, re-run from scratch
            self.is_prefill = prefill and not continuation
            if self.is_prefill:
                self.right_padded = bool((~real[:, -1] & real.any(-1)).any())
            elif self.right_padded:
                raise RepeError(
                    "generate() on a right-padded batch: generated tokens would follow the pads, "
                    "so steered positions are wrong; set tokenizer.padding_side='left' (or pad "
                    "with repe.positions.left_pad)"
                )
            if self.is_prefill:
                self.prompt_len = real.sum(-1)
                self.prompt_ids = ids.detach().clone() if ids is not None else None
                self.gates = [None] * len(self.gates)
            if self.positions == "all":
                sel = real
            else:
                if self.prompt_len is None:
                    raise RepeError("positions='prompt'/'response' need the prompt forward first")
                plen = self.prompt_len.to(h.device)[:, None]
                start = plen - 1 if self.include_last_prompt else plen
                sel = (pos >= start) if self.positions == "response" else (pos < plen)
                sel = sel & real
            self._mask = sel
        assert self._mask is not None
        return self._mask


def check_compatible_direction(cond: Condition, model: Any) -> None:
    """A condition direction must have the model's hidden size."""
    if isinstance(cond.vector, ReadingVector):
        check_compatible(cond.vector, model)
        return
    d = int(np.asarray(cond.vector).size)
    hidden = int(model.config.hidden_size)
    if d != hidden:
        from ..errors import VectorMismatchError

        raise VectorMismatchError(
            f"condition direction has hidden size {d} but the model's hidden size is {hidden}; "
            "fit the condition vector on this model"
        )
    cond.direction()  # raises on a zero or non-finite direction


def _condition_gate(
    cond: Condition, h: torch.Tensor, mask: torch.Tensor, prompt: torch.Tensor
) -> torch.Tensor:
    c = torch.as_tensor(cond.direction(), device=h.device, dtype=torch.float32)
    hf = h.float()
    sel = prompt & mask
    if cond.aggregate == "last":
        idx = (sel.long() * torch.arange(sel.shape[1], device=h.device)).argmax(-1)
        hbar = hf[torch.arange(h.shape[0], device=h.device), idx]
    else:
        w = sel.float()[..., None]
        hbar = (hf * w).sum(1) / w.sum(1).clamp_min(1.0)
    sim = condition_similarity(hbar, c)
    return (sim > cond.threshold) if cond.comparator == ">" else (sim < cond.threshold)


def _resolve_specs(
    model: Any, specs: Sequence[SteerSpec]
) -> tuple[str, dict[int, list[_Op]], list[Condition]]:
    if isinstance(specs, SteerSpec):
        specs = [specs]
    if not specs:
        raise RepeError("steer() needs at least one SteerSpec")
    for i, spec in enumerate(specs):
        if not isinstance(spec, SteerSpec):
            raise RepeError(
                f"steer() spec {i} is a {type(spec).__name__}; wrap each vector as "
                "repe.SteerSpec(vector, coeff=..., layers=...)"
            )
        if not isinstance(spec.vector, ReadingVector):
            raise RepeError(
                f"SteerSpec {i}: vector is a {type(spec.vector).__name__}, not a ReadingVector; "
                "load one with repe.load_vector or fit one with repe.fit_reading_vector"
            )
    n_layers = num_layers(model)
    sites = {s.vector.site for s in specs}
    if len(sites) > 1:
        raise RepeError(
            f"vectors for different sites {sorted(sites)} cannot share one steer(); nest two"
        )
    site = sites.pop()
    per_layer: dict[int, list[_Op]] = {}
    conditions: list[Condition] = []
    for i, spec in enumerate(specs):
        if not callable(spec.operator) and spec.operator not in OPERATORS:
            raise unknown("operator", spec.operator, OPERATORS)
        v = spec.vector
        check_compatible(v, model, strict=spec.strict)
        layers = normalise_layers(spec.layers if spec.layers is not None else v.layers, n_layers)
        missing = [layer for layer in layers if layer not in v.write]
        if missing:
            raise LayerError(f"the vector has no direction for layers {missing}; it has {v.layers}")
        bad = [layer for layer in layers if not np.isfinite(v.write[layer]).all()]
        if bad:
            raise RepeError(f"the vector has NaN or Inf at layers {bad}; refit or reload it")
        alphas = layer_coefficients(v, spec.coeff, layers, spec.schedule, spec.units)
        gate = spec.condition
        if gate is not None:
            for cond in gate_leaves(gate):
                if any(cond is c for c in conditions):
                    continue
                if cond.comparator not in COMPARATORS:
                    raise unknown("comparator", cond.comparator, COMPARATORS)
                if cond.aggregate not in ("mean", "last"):
                    raise unknown("condition aggregate", cond.aggregate, ("mean", "last"))
                try:
                    thr = float(cond.threshold)
                except (TypeError, ValueError):
                    thr = float("nan")
                if not np.isfinite(thr):
                    raise RepeError(
                        f"condition threshold must be a finite number, got {cond.threshold!r}; "
                        "pick one with repe.control.find_best_condition_point"
                    )
                check_compatible_direction(cond, model)
                cond.layer = normalise_layers([cond.layer], n_layers)[0]
                conditions.append(cond)
            for cond in gate_leaves(gate):
                if cond.layer > min(layers):
                    raise RepeError(
                        f"condition layer {cond.layer} comes after steered layer {min(layers)}; "
                        "the gate must be known before the first steered block (pick a "
                        "condition layer <= the steered ones)"
                    )
        for layer in layers:
            if spec.operator == "subspace_ablate":
                q, _ = np.linalg.qr(v.write[layer].astype(np.float64).T)
                params = OperatorParams(v=torch.as_tensor(q, dtype=torch.float32))
            elif spec.operator == "leace":
                cal = v.calibration.get(layer, {})
                if "eraser_b" not in cal:
                    raise RepeError(
                        "operator 'leace' needs a vector fitted with method='leace' (it stores the "
                        "eraser); refit or use operator='ablate'"
                    )
                params = OperatorParams(
                    v=torch.as_tensor(v.direction(layer)),
                    b=torch.as_tensor(np.asarray(cal["eraser_b"], np.float32)),
                    f=torch.as_tensor(np.asarray(cal["eraser_f"], np.float32)),
                    mu=torch.as_tensor(np.asarray(cal["eraser_mu"], np.float32)),
                )
            else:
                params = OperatorParams(v=torch.as_tensor(v.direction(layer, spec.component)))
            per_layer.setdefault(layer, []).append(
                _Op(i, spec.operator, params, alphas[layer], spec.normalize, spec.norm_cap, gate)
            )
    return site, per_layer, conditions


def _position_context(model: Any) -> Any:
    """lm-kit's PositionContext, also keeping the current ``input_ids`` so that uncached
    decoding (prompt + generated tokens re-run from scratch) is told apart from a new prompt."""
    from lm_kit.positions import PositionContext

    class _Ctx(PositionContext):
        current_ids: torch.Tensor | None = None

        def _pre(self, module: Any, args: tuple, kwargs: dict) -> None:
            super()._pre(module, args, kwargs)
            ids = kwargs.get("input_ids")
            if ids is None and args and isinstance(args[0], torch.Tensor):
                ids = args[0]
            self.current_ids = ids

    return _Ctx(model)


@contextlib.contextmanager
def steer(
    model: Any,
    specs: SteerSpec | Sequence[SteerSpec],
    positions: str = "all",
    *,
    include_last_prompt: bool = True,
) -> Iterator[_SteerState]:
    """Apply ``specs`` (in list order at each layer) while the block is active."""
    from lm_kit.hooks import Fn, edit

    if positions not in POSITIONS:
        raise unknown("positions value", positions, POSITIONS)
    site, per_layer, conditions = _resolve_specs(
        model, specs if isinstance(specs, Sequence) else [specs]
    )
    cond_layers = {c.layer for c in conditions}
    pc = _position_context(model)
    state = _SteerState(pc, positions, include_last_prompt, len(conditions))

    def leaf_gate(cond: Condition) -> torch.Tensor:
        i = next(i for i, c in enumerate(conditions) if c is cond)
        g = state.gates[i]
        if g is None:
            raise RepeError(
                "CAST gate is unset: the prompt forward did not reach the condition layer"
            )
        return g

    def make_fn(layer: int):
        ops = per_layer.get(layer, [])
        conds = [(i, c) for i, c in enumerate(conditions) if c.layer == layer]

        def fn(h: torch.Tensor) -> torch.Tensor:
            mask = state.mask(h)
            if conds and state.is_prefill:
                plen = state.prompt_len
                assert plen is not None
                prompt = (pc.positions.to(h.device) < plen.to(h.device)[:, None]) & pc.real.to(
                    h.device
                )
                for i, c in conds:
                    state.gates[i] = _condition_gate(c, h, mask | prompt, prompt)
            out = h
            for op in ops:
                m = mask
                if op.gate is not None:
                    g = evaluate_gate(op.gate, leaf_gate)
                    m = m & g.to(h.device)[:, None]
                out = apply_operator(
                    op.name,
                    out,
                    op.params,
                    op.alpha,
                    m,
                    normalize=op.normalize,
                    norm_cap=op.norm_cap,
                )
            return out

        return fn

    hook_layers = sorted(set(per_layer) | cond_layers)
    cond_site = "resid_post"
    edits = {}
    for layer in hook_layers:
        name = f"{site}.{layer}" if layer in per_layer else f"{cond_site}.{layer}"
        edits[name] = Fn(make_fn(layer))
    if cond_layers and site != cond_site and cond_layers & set(per_layer):
        raise RepeError("CAST conditions are read at resid_post; steer that site too")
    with pc, edit(model, edits):
        yield state


def directional_ablation(
    model: Any, vector: ReadingVector, layer: int
) -> contextlib.AbstractContextManager[Any]:
    """Ablate ``vector``'s direction at ``layer`` from every block input and the final-norm input
    (= the last block's output), as in refusal-direction ablation."""
    from lm_kit.hooks import Fn, edit

    n = num_layers(model)
    check_compatible(vector, model)
    v = torch.as_tensor(vector.direction(layer))
    params = OperatorParams(v=v)

    def fn(h: torch.Tensor) -> torch.Tensor:
        return apply_operator("ablate", h, params, 0.0, None)

    edits: dict[str, Any] = {f"resid_pre.{i}": Fn(fn) for i in range(n)}
    edits[f"resid_post.{n - 1}"] = Fn(fn)
    return edit(model, edits)
