"""Conditional steering (CAST): conditions, rules and condition-point search.

- :class:`Condition` gates a :class:`~repe.control.steer.SteerSpec` per batch row: on the
  prompt forward, ``sim`` of the prompt's mean (or last) hidden state to a condition direction
  is compared with a threshold, and the result holds for the whole ``generate``.
- Conditions combine with :class:`AnyOf`, :class:`AllOf` and :class:`Not` (or ``|``, ``&``,
  ``~``); rule strings such as ``"if C1 or C2 then B1 else B2"`` are parsed to that AST by
  :func:`parse_rule` and applied by :func:`multisteer`.
- :func:`find_best_condition_point` grid-searches layer x threshold x comparator for F1.

``sim = cos(hbar, tanh(P hbar))`` with ``P = c c^T / c^T c`` and ``hbar`` the mean (or last)
hidden state over the real prompt tokens at ``resid_post.layer`` -- the same formula the
steering gate uses (:func:`condition_similarity` is shared).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.pairs import Stimulus
from ..data.templates import ChatFormat
from ..errors import PairDataError, RepeError
from ..vector import ReadingVector

COMPARATORS = (">", "<")


class _GateOps:
    """``&``, ``|`` and ``~`` build gate expressions."""

    def __and__(self, other: Gate) -> AllOf:
        return AllOf((self, other))  # type: ignore[arg-type]

    def __or__(self, other: Gate) -> AnyOf:
        return AnyOf((self, other))  # type: ignore[arg-type]

    def __invert__(self) -> Not:
        return Not(self)  # type: ignore[arg-type]


@dataclass(eq=False)
class Condition(_GateOps):
    """CAST condition: steer a row only if its prompt's similarity to ``vector`` passes.

    On the prompt forward, ``hbar`` is the mean (or last) of the real prompt tokens at
    ``resid_post.layer``; ``sim = cos(hbar, tanh(P hbar))`` with ``P = c c^T / c^T c``. The
    gate ``[sim > threshold]`` (or ``<``) is fixed per row for the whole ``generate``.
    """

    vector: ReadingVector | np.ndarray
    layer: int
    threshold: float
    comparator: str = ">"
    aggregate: str = "mean"

    def direction(self) -> np.ndarray:
        if isinstance(self.vector, ReadingVector):
            return self.vector.direction(self.layer)
        v = np.asarray(self.vector, dtype=np.float32).reshape(-1)
        n = float(np.linalg.norm(v))
        if not np.isfinite(n) or n == 0:
            raise RepeError(
                "condition direction is zero or contains NaN/Inf; pass a fitted direction "
                "(e.g. a ReadingVector) for the condition"
            )
        return v / n


@dataclass(frozen=True, eq=False)
class AnyOf(_GateOps):
    args: tuple[Gate, ...]


@dataclass(frozen=True, eq=False)
class AllOf(_GateOps):
    args: tuple[Gate, ...]


@dataclass(frozen=True, eq=False)
class Not(_GateOps):
    arg: Gate


Gate = Condition | AnyOf | AllOf | Not


def gate_leaves(gate: Gate) -> list[Condition]:
    """The distinct conditions of a gate expression, in first-use order."""
    if isinstance(gate, Condition):
        return [gate]
    if isinstance(gate, Not):
        return gate_leaves(gate.arg)
    if isinstance(gate, AnyOf | AllOf):
        out: list[Condition] = []
        for a in gate.args:
            out += [c for c in gate_leaves(a) if all(c is not o for o in out)]
        return out
    raise RepeError(
        f"a steering condition must be a Condition or AnyOf/AllOf/Not of them, got "
        f"{type(gate).__name__}"
    )


def evaluate_gate(gate: Gate, value: Any) -> torch.Tensor:
    """Evaluate a gate expression given ``value(condition) -> (B,) bool tensor``."""
    if isinstance(gate, Condition):
        return value(gate)
    if isinstance(gate, Not):
        return ~evaluate_gate(gate.arg, value)
    vals = [evaluate_gate(a, value) for a in gate.args]
    out = vals[0]
    for v in vals[1:]:
        out = (out | v) if isinstance(gate, AnyOf) else (out & v)
    return out


# ------------------------------------------------------------------------------------ rules
@dataclass(frozen=True)
class Ref:
    """A condition named in a rule string."""

    name: str


@dataclass(frozen=True)
class RuleAnd:
    args: tuple[Any, ...]


@dataclass(frozen=True)
class RuleOr:
    args: tuple[Any, ...]


@dataclass(frozen=True)
class RuleNot:
    arg: Any


@dataclass(frozen=True)
class Rule:
    """``if <condition> then <behaviours> [else <behaviours>]``, parsed."""

    condition: Any  # Ref | RuleAnd | RuleOr | RuleNot
    then: tuple[str, ...]
    otherwise: tuple[str, ...] = ()

    def names(self) -> set[str]:
        def walk(e: Any) -> set[str]:
            if isinstance(e, Ref):
                return {e.name}
            if isinstance(e, RuleNot):
                return walk(e.arg)
            return set().union(*(walk(a) for a in e.args))

        return walk(self.condition)


_TOKEN = re.compile(r"\s*(\(|\)|,|[A-Za-z_][A-Za-z0-9_.\-]*)")
_KEYWORDS = {"if", "then", "else", "and", "or", "not"}


def _tokens(text: str) -> list[str]:
    out, i, text = [], 0, text.strip()
    while i < len(text):
        m = _TOKEN.match(text, i)
        if not m or not m.group(1):
            raise RepeError(
                f"cannot parse rule {text!r} at {text[i:]!r}; write e.g. "
                "'if C1 or (C2 and not C3) then B1, B2 else B3'"
            )
        out.append(m.group(1))
        i = m.end()
    return out


def parse_rule(text: str) -> Rule:
    """Parse ``"if C1 or (C2 and not C3) then B1, B2 else B3"`` (``not`` > ``and`` > ``or``;
    behaviours separated by ``,`` or ``and``)."""
    toks = _tokens(text)
    pos = 0

    def err(msg: str) -> RepeError:
        return RepeError(
            f"cannot parse rule {text!r}: {msg}; write e.g. "
            "'if C1 or (C2 and not C3) then B1, B2 else B3'"
        )

    def peek() -> str | None:
        return toks[pos].lower() if pos < len(toks) else None

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(toks):
            raise err(f"expected {expected or 'a name'} at the end")
        t = toks[pos]
        if expected is not None and t.lower() != expected:
            raise err(f"expected {expected!r}, found {t!r}")
        pos += 1
        return t

    def name() -> str:
        t = take()
        if t.lower() in _KEYWORDS or t in "(),":
            raise err(f"expected a name, found {t!r}")
        return t

    def expr() -> Any:
        args = [term()]
        while peek() == "or":
            take("or")
            args.append(term())
        return args[0] if len(args) == 1 else RuleOr(tuple(args))

    def term() -> Any:
        args = [factor()]
        while peek() == "and":
            take("and")
            args.append(factor())
        return args[0] if len(args) == 1 else RuleAnd(tuple(args))

    def factor() -> Any:
        if peek() == "not":
            take("not")
            return RuleNot(factor())
        if peek() == "(":
            take("(")
            e = expr()
            take(")")
            return e
        return Ref(name())

    def behaviours() -> tuple[str, ...]:
        out = [name()]
        while peek() in (",", "and"):
            take()
            out.append(name())
        return tuple(out)

    take("if")
    cond = expr()
    take("then")
    then = behaviours()
    otherwise: tuple[str, ...] = ()
    if peek() == "else":
        take("else")
        otherwise = behaviours()
    if pos != len(toks):
        raise err(f"unexpected {toks[pos]!r}")
    return Rule(cond, then, otherwise)


def bind_rule(rule: Rule, conditions: Mapping[str, Gate]) -> Gate:
    """Replace the names of a parsed rule by the given conditions."""
    missing = sorted(rule.names() - set(conditions))
    if missing:
        raise RepeError(
            f"rule names unknown conditions {missing}; the given conditions are "
            f"{sorted(conditions)}"
        )

    def walk(e: Any) -> Gate:
        if isinstance(e, Ref):
            return conditions[e.name]
        if isinstance(e, RuleNot):
            return Not(walk(e.arg))
        args = tuple(walk(a) for a in e.args)
        return AnyOf(args) if isinstance(e, RuleOr) else AllOf(args)

    return walk(rule.condition)


@contextlib.contextmanager
def multisteer(
    model: Any,
    rules: str | Rule | Sequence[str | Rule],
    conditions: Mapping[str, Gate],
    behaviours: Mapping[str, Any],
    positions: str = "all",
    *,
    include_last_prompt: bool = True,
) -> Iterator[Any]:
    """Apply behaviours (named ``SteerSpec``s) gated per row by rules over named conditions.

    ``multisteer(model, "if harmful or legal then refuse", {"harmful": c1, "legal": c2},
    {"refuse": spec})``. Rules are applied in order; a behaviour whose spec already has a
    condition is gated by both (``AllOf``).
    """
    from .steer import steer

    if isinstance(rules, str | Rule):
        rules = [rules]
    if not rules:
        raise RepeError("multisteer() needs at least one rule")
    specs = []
    for r in rules:
        rule = parse_rule(r) if isinstance(r, str) else r
        gate = bind_rule(rule, conditions)
        for names, g in ((rule.then, gate), (rule.otherwise, Not(gate))):
            for b in names:
                if b not in behaviours:
                    raise RepeError(
                        f"rule names unknown behaviour {b!r}; the given behaviours are "
                        f"{sorted(behaviours)}"
                    )
                spec = behaviours[b]
                own = spec.condition
                specs.append(dataclasses.replace(spec, condition=g if own is None else own & g))
    with steer(model, specs, positions, include_last_prompt=include_last_prompt) as state:
        yield state


def condition_similarity(hbar: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(B, D) mean hidden states, (D,) unit condition direction -> (B,) similarities."""
    proj = (hbar @ c)[:, None] * c[None]
    return torch.nn.functional.cosine_similarity(hbar, torch.tanh(proj), dim=-1)


def prompt_similarities(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Stimulus],
    vector: ReadingVector,
    layers: Sequence[int],
    *,
    aggregate: str = "mean",
    fmt: ChatFormat | None = None,
    batch_size: int = 16,
) -> dict[int, np.ndarray]:
    """Per layer, the condition similarity of each prompt (prompt tokens only, no prefix)."""
    from ..activations import render_all, stimulus_activations

    stims = [Stimulus(user=p.user, prefix="", system=p.system) for p in prompts]
    acts = stimulus_activations(
        model,
        tokenizer,
        render_all(stims, tokenizer, fmt),
        list(layers),
        site="resid_post",
        read="last" if aggregate == "last" else "all",
        batch_size=batch_size,
    )
    out = {}
    for layer in layers:
        a = acts[layer]
        hbar = (
            torch.stack([torch.as_tensor(x).float().mean(0) for x in a])
            if aggregate != "last"
            else torch.as_tensor(a).float()
        )
        c = torch.as_tensor(vector.direction(layer)).float()
        out[layer] = condition_similarity(hbar, c).numpy()
    return out


@dataclass
class ConditionPoint:
    layer: int
    threshold: float
    comparator: str
    f1: float


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = float(np.sum(pred & truth))
    fp = float(np.sum(pred & ~truth))
    fn = float(np.sum(~pred & truth))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def best_threshold(pos_sims: np.ndarray, neg_sims: np.ndarray) -> tuple[float, str, float]:
    """Threshold and comparator maximising F1 for flagging the positive prompts."""
    s = np.r_[pos_sims, neg_sims]
    truth = np.r_[np.ones(len(pos_sims), bool), np.zeros(len(neg_sims), bool)]
    u = np.unique(s)
    cands = np.r_[u[0] - 1e-6, (u[1:] + u[:-1]) / 2, u[-1] + 1e-6]
    best = (float(cands[0]), ">", -1.0)
    for t in cands:
        for cmp_ in (">", "<"):
            f = _f1(s > t if cmp_ == ">" else s < t, truth)
            if f > best[2]:
                best = (float(t), cmp_, f)
    return best


def find_best_condition_point(
    model: Any,
    tokenizer: Any,
    positive_prompts: Sequence[Stimulus],
    negative_prompts: Sequence[Stimulus],
    vector: ReadingVector,
    layers: Sequence[int] | None = None,
    *,
    aggregate: str = "mean",
    fmt: ChatFormat | None = None,
) -> ConditionPoint:
    """Grid-search layer x threshold x comparator for the F1 of gating the positive prompts."""
    if not positive_prompts or not negative_prompts:
        raise PairDataError(
            f"need prompts that should ({len(positive_prompts)}) and should not "
            f"({len(negative_prompts)}) trigger the condition"
        )
    ls = list(layers) if layers is not None else vector.layers
    sims = prompt_similarities(
        model,
        tokenizer,
        list(positive_prompts) + list(negative_prompts),
        vector,
        ls,
        aggregate=aggregate,
        fmt=fmt,
    )
    n = len(positive_prompts)
    best: ConditionPoint | None = None
    for layer in ls:
        t, cmp_, f = best_threshold(sims[layer][:n], sims[layer][n:])
        if best is None or f > best.f1:
            best = ConditionPoint(layer, t, cmp_, f)
    assert best is not None
    return best
