"""Steering a latent's decoder direction into the subject model (lm-kit edit hooks), KL-matched.

``h_t += s * v`` at the hookpoint, at the last prompt position and at every generated position
(KV-cached decode steps included). Prompts are token ids only (no decode / re-encode), left-padded
into one batch so the last prompt token is the last column of every row.

- ``SteeringSession(steerer, prompts)`` runs the prompts' prefix (all but the last token) once
  and keeps its KV cache; every strength evaluation is one cached forward of the last column, after
  which the cache is cropped back. ``full_logits`` is the uncached reference (tests check equality).
- ``strength(s)`` = mean next-token ``KL(P_steered || P_clean)`` at the last prompt token
  (``kl_direction="clean_steered"`` gives delphi PR #151's reversed order).
- ``search_strength``: start at ``s0`` (the latent's cache-wide max activation), double or halve
  until the target is bracketed (<= 12 steps), then bisect in log s until within ``rel_tol``
  (<= 20 steps). The evaluated strength closest to the target is kept (KL need not be monotone);
  a miss is flagged ``kl_unreached`` with the achieved KL.
- ``generate``: ``n`` tokens at temperature T, one torch.Generator per prompt seeded from the
  run's seed tree (clean and steered share seeds: common random numbers).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from autointerp.schema import LatentExamples, Window

KLDirection = Literal["steered_clean", "clean_steered"]


@dataclass(frozen=True)
class InterventionConfig:
    """Settings of the intervention explainer and scorer (paper §3.3.5, App. G)."""

    n_score: int = 30  # scoring prompts (test windows), spread over quintiles
    n_explain: int = 10  # explainer prompts (train windows)
    target_kl: float = 1.0  # sigma* in {0.1, 0.33, 1, 3}
    kl_direction: KLDirection = "steered_clean"
    rel_tol: float = 0.1
    max_bracket: int = 12
    max_bisect: int = 20
    gen_tokens: int = 8
    temperature: float = 1.0
    top_tokens: int = 5  # explainer: top tokens by p_steered - p_clean per prompt
    baselines: tuple[str, ...] = ()  # "random_direction", "zero_ablation"
    batch_size: int = 64
    max_tokens: int = 200  # explainer completion budget

    def __post_init__(self) -> None:
        if self.target_kl <= 0:
            raise ValueError(f"target_kl must be > 0 (e.g. 0.1, 0.33, 1, 3), got {self.target_kl}")
        if self.kl_direction not in ("steered_clean", "clean_steered"):
            raise ValueError(
                f"kl_direction must be 'steered_clean' (paper) or 'clean_steered' (PR #151), "
                f"got {self.kl_direction!r}"
            )
        bad = [b for b in self.baselines if b not in ("random_direction", "zero_ablation")]
        if bad:
            raise ValueError(
                f"unknown intervention baseline(s) {bad}; valid: random_direction, zero_ablation"
            )


# --------------------------------------------------------------------------- prompts
def truncate_at_first_firing(w: Window) -> list[int] | None:
    """Token ids up to and including the first firing token at position >= 1 (None: none fires)."""
    for j in range(1, len(w.acts)):
        if w.acts[j] > 0:
            return list(w.token_ids[: j + 1])
    return None


def select_prompts(windows: Sequence[Window], n: int) -> list[list[int]]:
    """Up to ``n`` prompts spread evenly over quintiles of the windows' quantile bins (round robin
    over quintiles, windows in stored order), each truncated after its first firing token."""
    groups: dict[int, list[list[int]]] = {}
    for w in windows:
        ids = truncate_at_first_firing(w)
        if ids is not None:
            q = (w.quantile if w.quantile is not None else 0) // 2
            groups.setdefault(q, []).append(ids)
    out: list[list[int]] = []
    keys = sorted(groups)
    while len(out) < n and any(groups[k] for k in keys):
        for k in keys:
            if groups[k] and len(out) < n:
                out.append(groups[k].pop(0))
    return out


# --------------------------------------------------------------------------- steerer
class Steerer:
    """The subject model, its tokenizer, the hookpoint and the coder's decoder matrix.

    ``W_dec``: [n_latents, d] (row i = latent i's decoder direction). ``encode``: optional
    ``h -> latents`` of the coder (needed only by the zero-ablation baseline)."""

    def __init__(
        self,
        model: Any,
        tok: Any,
        site: str,
        W_dec: torch.Tensor | np.ndarray,
        encode: Any = None,
        name: str | None = None,
    ) -> None:
        from lm_kit.hookpoints import resolve

        self.model, self.tok, self.site = model, tok, site
        w = torch.as_tensor(np.asarray(W_dec) if not isinstance(W_dec, torch.Tensor) else W_dec)
        self.W_dec = w.detach().float().cpu()
        sites = resolve(model, site, probe=True)  # raises naming valid hookpoints when unknown
        width = sites[0].width
        if width is not None and self.W_dec.shape[1] != width:
            raise ValueError(
                f"decoder rows have {self.W_dec.shape[1]} dims but {site!r} of the subject model has "
                f"{width}; pass the coder trained at this hookpoint of this model"
            )
        self.encode = encode
        self.bos = getattr(tok, "bos_token_id", None)
        self.pad = getattr(tok, "pad_token_id", None)
        if self.pad is None:
            self.pad = getattr(tok, "eos_token_id", None) or 0
        h = hashlib.blake2b(digest_size=8)
        h.update(self.W_dec[: min(64, len(self.W_dec))].numpy().tobytes())
        h.update(str(tuple(self.W_dec.shape)).encode())
        base = name or str(getattr(getattr(model, "config", None), "name_or_path", "") or "model")
        self.name = f"{base}:{site}:{h.hexdigest()}"

    @property
    def n_latents(self) -> int:
        return int(self.W_dec.shape[0])

    def direction(self, i: int) -> torch.Tensor:
        if not 0 <= int(i) < self.n_latents:
            raise ValueError(f"latent {i} has no decoder row: valid 0..{self.n_latents - 1}")
        return self.W_dec[int(i)]

    def random_direction(self, i: int, seed: int = 0) -> torch.Tensor:
        """A random direction with the decoder row's norm (baseline)."""
        from autointerp.rng import make_rng

        v = self.direction(i)
        r = make_rng(seed, "steer", int(i), "random_direction").standard_normal(v.shape[0])
        r = torch.as_tensor(r, dtype=torch.float32)
        return r / r.norm() * v.norm()

    def session(self, prompts: Sequence[Sequence[int]]) -> SteeringSession:
        return SteeringSession(self, prompts)


class _Edit:
    """Mutable steering state read by one lm-kit ``Fn`` edit: adds ``s*v`` at absolute columns >= ``start``
    (``offset`` = absolute column of this forward's first column); ``ablate`` instead removes latent
    ``latent``'s reconstruction term (clamps it to 0, keeping the SAE error)."""

    def __init__(self) -> None:
        self.v: torch.Tensor | None = None
        self.s = 0.0
        self.start = 0
        self.offset = 0
        self.ablate: tuple[Any, int, torch.Tensor] | None = None

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        if (self.v is None or self.s == 0.0) and self.ablate is None:
            return h
        cols = torch.arange(h.shape[1], device=h.device) + self.offset
        sel = (cols >= self.start).to(h.dtype)[None, :, None]
        if self.ablate is not None:
            encode, i, w = self.ablate
            a = torch.as_tensor(encode(h.float())[..., i], dtype=h.dtype, device=h.device)
            return h - sel * a[..., None] * w.to(h.device, h.dtype)
        return h + sel * self.s * self.v.to(h.device, h.dtype)


class SteeringSession:
    """One left-padded batch of prompts with its cached prefix (see the module docstring)."""

    def __init__(self, steerer: Steerer, prompts: Sequence[Sequence[int]]) -> None:
        from lm_kit.positions import position_ids_from_mask

        if not prompts:
            raise ValueError("steering needs at least one prompt")
        self.st = steerer
        bos = [steerer.bos] if steerer.bos is not None else []
        seqs = [bos + [int(t) for t in p] for p in prompts]
        if min(len(s) for s in seqs) < 2:
            raise ValueError("every prompt needs >= 2 tokens (a prefix and a last token)")
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), T), int(steerer.pad), dtype=torch.long)
        mask = torch.zeros((len(seqs), T), dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, T - len(s) :] = torch.tensor(s)
            mask[b, T - len(s) :] = 1
        dev = next(steerer.model.parameters()).device
        self.ids, self.mask = ids.to(dev), mask.to(dev)
        self.pos = position_ids_from_mask(self.mask)
        self.T = T
        self.lengths = [len(s) for s in seqs]
        self.edit = _Edit()
        self.edit.start = T - 1
        with torch.inference_mode():
            out = steerer.model(
                input_ids=self.ids[:, : T - 1],
                attention_mask=self.mask[:, : T - 1],
                position_ids=self.pos[:, : T - 1],
                use_cache=True,
            )
        self.cache = _out_cache(out)
        self.n_forwards = 0
        self.clean_logp = self.last_logprobs(None, 0.0)

    # ---- forwards ------------------------------------------------------------------------------
    def _hooked(self):
        from lm_kit.hooks import Fn, edit

        return edit(self.st.model, {self.st.site: Fn(self.edit)})

    def _set(self, v: torch.Tensor | None, s: float, ablate=None) -> None:
        self.edit.v, self.edit.s, self.edit.ablate = v, float(s), ablate

    def last_logprobs(self, v: torch.Tensor | None, s: float, ablate=None) -> torch.Tensor:
        """[B, V] next-token log-probs at the last prompt token, steered there (cached prefix)."""
        self._set(v, s, ablate)
        self.edit.offset = self.T - 1
        try:
            with torch.inference_mode(), self._hooked():
                out = self.st.model(
                    input_ids=self.ids[:, -1:],
                    attention_mask=self.mask,
                    position_ids=self.pos[:, -1:],
                    use_cache=True,
                    **_cache_kw(self.st.model, self.cache),
                )
        finally:
            crop_cache(self.cache, self.T - 1)
        self.n_forwards += 1
        return torch.log_softmax(out.logits[:, -1].float(), -1)

    def full_logits(
        self, v: torch.Tensor | None, s: float, continuation: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Uncached reference: logits of the whole (prompt + continuation) sequence, steered at every
        column from the last prompt token on."""
        ids, mask = self.ids, self.mask
        if continuation is not None:
            ids = torch.cat([ids, continuation.to(ids.device)], 1)
            mask = torch.cat([mask, torch.ones_like(continuation, device=mask.device)], 1)
        from lm_kit.positions import position_ids_from_mask

        self._set(v, s)
        self.edit.offset = 0
        with torch.inference_mode(), self._hooked():
            out = self.st.model(
                input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)
            )
        return out.logits.float()

    # ---- KL ------------------------------------------------------------------------------------
    def kl(
        self, v: torch.Tensor | None, s: float, direction: KLDirection = "steered_clean"
    ) -> float:
        lp = self.last_logprobs(v, s)
        return kl_mean(lp, self.clean_logp, direction)

    def search(self, v: torch.Tensor, s0: float, cfg: InterventionConfig) -> StrengthResult:
        return search_strength(lambda s: self.kl(v, s, cfg.kl_direction), s0, cfg)

    # ---- generation ----------------------------------------------------------------------------
    def generate(
        self,
        v: torch.Tensor | None,
        s: float,
        n_tokens: int,
        seeds: Sequence[int],
        temperature: float = 1.0,
        ablate=None,
        return_logits: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """[B, n_tokens] sampled continuation ids, steered at the last prompt token and at every
        generated token (each KV-cached decode step goes through the same edit). With
        ``return_logits`` also the [B, n_tokens, V] logits each token was sampled from."""
        if len(seeds) != self.ids.shape[0]:
            raise ValueError(f"need one seed per prompt ({self.ids.shape[0]}), got {len(seeds)}")
        gens = [torch.Generator().manual_seed(int(sd)) for sd in seeds]
        self._set(v, s, ablate)
        mask, pos = self.mask, self.pos[:, -1:]
        ids = self.ids[:, -1:]
        out_ids: list[torch.Tensor] = []
        steps: list[torch.Tensor] = []
        col = self.T - 1
        try:
            with torch.inference_mode(), self._hooked():
                for _ in range(n_tokens):
                    self.edit.offset = col
                    o = self.st.model(
                        input_ids=ids,
                        attention_mask=mask,
                        position_ids=pos,
                        use_cache=True,
                        **_cache_kw(self.st.model, self.cache),
                    )
                    logits = o.logits[:, -1].float()
                    steps.append(logits)
                    nxt = _sample(logits, gens, temperature).to(ids.device)
                    out_ids.append(nxt)
                    ids = nxt[:, None]
                    mask = torch.cat([mask, torch.ones_like(ids)], 1)
                    pos = pos + 1
                    col += 1
        finally:
            crop_cache(self.cache, self.T - 1)
        ids_out = torch.stack(out_ids, 1).cpu()
        if return_logits:
            return ids_out, torch.stack(steps, 1).cpu()
        return ids_out


def _cache_kw(model: Any, cache: Any) -> dict[str, Any]:
    """The KV-cache keyword of this transformers version (``cache`` in 5.x, ``past_key_values`` before)."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return {"cache" if "cache" in params else "past_key_values": cache}


def _out_cache(out: Any) -> Any:
    c = getattr(out, "cache", None)
    return c if c is not None else out.past_key_values


def crop_cache(cache: Any, length: int) -> None:
    """Cut a DynamicCache back to ``length`` tokens (a negative ``crop`` argument removes tokens in
    every transformers version that has ``crop``)."""
    extra = int(cache.get_seq_length()) - int(length)
    if extra > 0:
        cache.crop(-extra)


def _sample(logits: torch.Tensor, gens: list[torch.Generator], temperature: float) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    p = torch.softmax(logits / temperature, -1).cpu()
    return torch.stack([torch.multinomial(p[b], 1, generator=g)[0] for b, g in enumerate(gens)])


def kl_mean(lp_steered: torch.Tensor, lp_clean: torch.Tensor, direction: KLDirection) -> float:
    """Mean over rows of KL(P_steered || P_clean) (or the reverse), in nats."""
    a, b = (lp_steered, lp_clean) if direction == "steered_clean" else (lp_clean, lp_steered)
    return float((a.exp() * (a - b)).sum(-1).clamp(min=0).mean())


# --------------------------------------------------------------------------- strength search
@dataclass
class StrengthResult:
    s: float
    kl: float
    target: float
    reached: bool
    evaluations: list[tuple[float, float]] = field(default_factory=list)
    monotone: bool = True

    @property
    def flags(self) -> list[str]:
        out = [] if self.reached else ["kl_unreached"]
        if not self.monotone:
            out.append("kl_not_monotone")
        return out


def search_strength(kl_of, s0: float, cfg: InterventionConfig) -> StrengthResult:
    """Find s with ``kl_of(s)`` within ``rel_tol`` of ``cfg.target_kl``: bracket by doubling/halving
    from ``s0`` (<= ``max_bracket`` steps), then bisect in log s (<= ``max_bisect`` steps)."""
    target, tol = cfg.target_kl, cfg.rel_tol * cfg.target_kl
    s = float(s0) if s0 and math.isfinite(s0) and s0 > 0 else 1.0
    evals: list[tuple[float, float]] = []

    def ev(x: float) -> float:
        k = float(kl_of(x))
        evals.append((x, k))
        return k

    def done() -> StrengthResult:
        best = min(evals, key=lambda e: abs(e[1] - target))
        srt = sorted(evals)
        mono = all(b[1] >= a[1] - 1e-9 for a, b in zip(srt, srt[1:], strict=False))
        return StrengthResult(best[0], best[1], target, abs(best[1] - target) <= tol, evals, mono)

    lo = hi = None
    for step in range(cfg.max_bracket + 1):
        k = ev(s)
        if abs(k - target) <= tol:
            return done()
        if k < target:
            lo = s
        else:
            hi = s
        if lo is not None and hi is not None:
            break
        if step < cfg.max_bracket:
            s = s * 2 if k < target else s / 2
    if lo is None or hi is None:
        return done()
    for _ in range(cfg.max_bisect):
        s = math.sqrt(lo * hi)
        k = ev(s)
        if abs(k - target) <= tol:
            break
        if k < target:
            lo = s
        else:
            hi = s
    return done()


# --------------------------------------------------------------------------- helpers
def latent_seeds(seed: int, latent: int, purpose: str, n: int) -> list[int]:
    from autointerp.rng import make_rng

    r = make_rng(seed, "steer", int(latent), purpose)
    return [int(x) for x in r.integers(0, 2**62, size=n)]


def steer_prompts(ex: LatentExamples, which: Literal["score", "explain"], cfg: InterventionConfig):
    """Scoring prompts come from test windows, explainer prompts from train windows (disjoint)."""
    if which == "score":
        return select_prompts(ex.test, cfg.n_score)
    return select_prompts(ex.train, cfg.n_explain)


# --------------------------------------------------------------------------- model lock
_LOCKS: dict[int, Any] = {}


def model_lock(model: Any):
    """One ``threading.Lock`` per model object: steered forwards register edit hooks on the model,
    so nothing else may run that model while they are active (steerer and judge take this lock)."""
    import threading

    key = id(model)
    lock = _LOCKS.get(key)
    if lock is None:
        lock = _LOCKS.setdefault(key, threading.Lock())
    return lock
