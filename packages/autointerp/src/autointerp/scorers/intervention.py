"""KL-matched intervention scorer (Paulo et al. §3.3.5, App. G), without delphi PR #151's bugs.

Per latent: scoring prompts from the test windows (truncated after their first firing token), the
decoder direction steered in at the strength whose next-token KL matches ``target_kl`` (see
:mod:`autointerp.steering`), 8 tokens sampled at T=1 clean and steered (same seeds). A judge LM
reads each passage (prompt + continuation, token ids) after 4 few-shots and gives
``NLL(z | passage)`` of the explanation z in
``<PASSAGE> {text} The above passage contains an amplified amount of "{z}"``.

Score ``S = mean_x [NLL(z|clean_x) - NLL(z|steered_x)]`` in nats (> 0: the explanation predicts
what steering adds), with a bootstrap CI over prompts. Generations do not depend on the
explanation, so they are computed once per latent and stored (``work_dir``). Baselines (opt-in):
a random direction of matched norm at its own KL-matched strength, and zero-ablation (the latent
clamped to 0, SAE error kept); their S go to ``metrics``.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from autointerp.rng import make_rng, stable_hash
from autointerp.schema import Explanation, LatentExamples, ScoreResult
from autointerp.scorers.base import precheck, register
from autointerp.steering import (
    InterventionConfig,
    Steerer,
    latent_seeds,
    model_lock,
    steer_prompts,
)
from autointerp.store import atomic_write_text

JUDGE_FEW_SHOTS: list[tuple[str, str]] = [
    ("The chef added garlic, basil and a pinch of oregano to the sauce", "herbs and spices"),
    ("He counted seven, eight, nine, ten, eleven before the door opened", "number words"),
    ("The river flowed past the bridge, the harbour and the old dock", "places near water"),
    ("She said that she was sure that she had seen it before", "the pronoun she"),
]
HEAD = "<PASSAGE>"
TAIL = ' The above passage contains an amplified amount of "'
CLOSE = '"\n\n'


class Judge(Protocol):
    name: str

    def nll(self, passages: list[list[int]], z: str) -> list[float]:
        """``-log p(z | few-shots, passage)`` per passage (passages are subject-model token ids)."""
        ...


class TransformersJudge:
    """A local causal LM as the judge. Few-shots and passages are concatenated as token ids (no
    decode / re-encode when the judge shares the subject model's tokenizer); the few-shot prefix's
    KV cache is computed once and reused for every batch."""

    def __init__(
        self, model: Any, tok: Any, name: str | None = None, instruct_model: bool = False
    ) -> None:
        self.model, self.tok = model, tok
        base = str(getattr(getattr(model, "config", None), "name_or_path", "") or "judge")
        self.name = name or f"transformers:{base}"
        self.instruct_model = instruct_model
        self._prefix_cache = None
        enc = self._enc
        self.head, self.tail, self.close = enc(HEAD), enc(TAIL), enc(CLOSE)
        bos = getattr(tok, "bos_token_id", None)
        prefix = [bos] if bos is not None else []
        for text, z in JUDGE_FEW_SHOTS:
            prefix += self.head + enc(" " + text) + self.tail + enc(z) + self.close
        self.prefix = prefix

    def _enc(self, s: str) -> list[int]:
        return list(self.tok(s, add_special_tokens=False)["input_ids"])

    def _prefix(self):
        import torch

        from autointerp.steering import _out_cache

        if self._prefix_cache is None:
            dev = next(self.model.parameters()).device
            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([self.prefix], device=dev), use_cache=True)
            self._prefix_cache = _out_cache(out)
        return self._prefix_cache

    def nll(self, passages: list[list[int]], z: str, batch_size: int = 64) -> list[float]:
        import copy

        import torch

        from autointerp.steering import _cache_kw

        zi = self._enc(z)
        if not zi:
            raise ValueError("empty explanation: nothing to score")
        out: list[float] = []
        dev = next(self.model.parameters()).device
        with model_lock(self.model):
            pre = self._prefix()
            for b0 in range(0, len(passages), batch_size):
                chunk = passages[b0 : b0 + batch_size]
                seqs = [self.head + list(p) + self.tail + zi for p in chunk]
                L = max(len(s) for s in seqs)
                ids = torch.zeros((len(seqs), L), dtype=torch.long)
                for r, s in enumerate(seqs):  # right padding: causal, so pads never reach z
                    ids[r, : len(s)] = torch.tensor(s)
                cache = copy.deepcopy(pre)
                if len(seqs) > 1:
                    cache.batch_repeat_interleave(len(seqs))
                with torch.inference_mode():
                    o = self.model(
                        input_ids=ids.to(dev), use_cache=True, **_cache_kw(self.model, cache)
                    )
                lp = torch.log_softmax(o.logits.float(), -1)
                for r, s in enumerate(seqs):
                    z0 = len(s) - len(zi)  # first z token; predicted from column z0 - 1
                    cols = torch.arange(z0 - 1, len(s) - 1)
                    tgt = torch.tensor(zi)
                    out.append(-float(lp[r, cols, tgt].sum()))
        return out


def same_tokenizer(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return len(a) == len(b) and a.get_vocab() == b.get_vocab()
    except (AttributeError, TypeError):
        return False


def _bootstrap_mean_ci(d: np.ndarray, rng: np.random.Generator, b: int) -> tuple[float, float]:
    if len(d) < 2 or not b:
        return math.nan, math.nan
    idx = rng.integers(0, len(d), size=(b, len(d)))
    means = d[idx].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


@register("intervention")
class InterventionScorer:
    """``S = mean_x[NLL(z|clean) - NLL(z|steered)]`` (nats) at a KL-matched steering strength."""

    def __init__(
        self,
        steerer: Steerer | None = None,
        judge: Judge | None = None,
        intervention: InterventionConfig | None = None,
        work_dir: str | Path | None = None,
        bootstrap_b: int = 1000,
        seed: int = 0,
        **_: object,
    ) -> None:
        if steerer is None or judge is None:
            raise ValueError(
                "the intervention scorer needs the subject model with the coder's decoder "
                "(steerer=Steerer(model, tok, site, W_dec)) and a judge LM (judge=TransformersJudge"
                "(model, tok)); in the interp CLI pass --subject MODEL --sae PATH"
            )
        self.steerer, self.judge = steerer, judge
        self.cfg = intervention or InterventionConfig()
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.b, self.seed = bootstrap_b, seed
        self._mem: dict[int, dict] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.flags = ["instruct_model"] if getattr(judge, "instruct_model", False) else []
        jt = getattr(judge, "tok", None)
        self.retokenize = jt is not None and not same_tokenizer(jt, steerer.tok)
        if self.retokenize:
            self.flags.append("retokenized")

    # ---- explanation-independent part (cached per latent) --------------------------------------
    def gen_key(self, ex: LatentExamples) -> str:
        prompts = steer_prompts(ex, "score", self.cfg)
        return (
            f"{stable_hash(self.steerer.name, repr(self.cfg), self.seed, prompts, ex.a_max):016x}"
        )

    def _path(self, latent: int) -> Path | None:
        if self.work_dir is None:
            return None
        return self.work_dir / f"latent_{latent:07d}.json"

    def generations(self, ex: LatentExamples) -> dict:
        """Prompts, strength search and clean/steered (and baseline) continuations, memoised in
        memory and in ``work_dir`` (keyed by steerer, config, seed and prompts)."""
        key = self.gen_key(ex)
        rec = self._mem.get(ex.latent)
        if rec is not None and rec["key"] == key:
            return rec
        p = self._path(ex.latent)
        if p is not None and p.exists():
            try:
                rec = json.loads(p.read_text())
            except json.JSONDecodeError:
                rec = None
            if rec is not None and rec.get("key") == key:
                self._mem[ex.latent] = rec
                return rec
        text = json.dumps(self._compute(ex, key))
        rec = json.loads(text)  # the in-memory record is exactly what a later run reads back
        if p is not None:
            atomic_write_text(p, text)
        self._mem[ex.latent] = rec
        return rec

    def _compute(self, ex: LatentExamples, key: str) -> dict:
        cfg, st = self.cfg, self.steerer
        prompts = steer_prompts(ex, "score", cfg)
        rec: dict[str, Any] = {"key": key, "latent": ex.latent, "prompts": prompts}
        if not prompts:
            rec["error"] = "no test window fires after position 0 (no prompts)"
            return rec
        seeds = latent_seeds(self.seed, ex.latent, "generate", len(prompts))
        with model_lock(st.model):
            ses = st.session(prompts)
            v = st.direction(ex.latent)
            r = ses.search(v, ex.a_max, cfg)
            rec["strength"] = {
                "s": r.s,
                "kl": r.kl,
                "target": r.target,
                "reached": r.reached,
                "evaluations": r.evaluations,
                "flags": r.flags,
            }
            rec["clean"] = ses.generate(None, 0.0, cfg.gen_tokens, seeds, cfg.temperature).tolist()
            rec["steered"] = ses.generate(v, r.s, cfg.gen_tokens, seeds, cfg.temperature).tolist()
            if "random_direction" in cfg.baselines:
                vr = st.random_direction(ex.latent, self.seed)
                rr = ses.search(vr, ex.a_max, cfg)
                rec["random_direction"] = ses.generate(
                    vr, rr.s, cfg.gen_tokens, seeds, cfg.temperature
                ).tolist()
                rec["random_direction_kl"] = rr.kl
            if "zero_ablation" in cfg.baselines:
                if st.encode is None:
                    rec["zero_ablation_error"] = "the steerer has no encoder (pass encode=)"
                else:
                    abl = (st.encode, ex.latent, v)
                    rec["zero_ablation"] = ses.generate(
                        None, 0.0, cfg.gen_tokens, seeds, cfg.temperature, ablate=abl
                    ).tolist()
        return rec

    async def _generations(self, ex: LatentExamples) -> dict:
        lock = self._locks.setdefault(ex.latent, asyncio.Lock())
        async with lock:  # explanations of one latent share one generation run
            return await asyncio.to_thread(self.generations, ex)

    # ---- score ---------------------------------------------------------------------------------
    async def score(self, ex: LatentExamples, expl: Explanation) -> ScoreResult:
        pre = precheck(ex, expl, self.name, "nll_delta", True)
        if pre is not None:
            return pre
        try:
            rec = await self._generations(ex)
            if rec.get("error"):
                return self._fail(ex, expl, rec["error"], ["low_support"])
            prompts = rec["prompts"]

            def passages(conts: list[list[int]]) -> list[list[int]]:
                out = [list(p) + list(c) for p, c in zip(prompts, conts, strict=True)]
                if self.retokenize:  # another tokenizer: the only place text is re-encoded
                    dec = self.steerer.tok.decode
                    out = [self.judge._enc(" " + dec(x)) for x in out]  # type: ignore[attr-defined]
                return out

            nll = await asyncio.to_thread(self._nll_all, rec, passages, expl.text)
        except Exception as e:  # noqa: BLE001 - one latent's failure is recorded, never raised
            return self._fail(ex, expl, f"{type(e).__name__}: {e}"[:500], ["failed"])
        d = np.asarray(nll["clean"]) - np.asarray(nll["steered"])
        rng = make_rng(self.seed, self.name, ex.latent, "bootstrap")
        lo, hi = _bootstrap_mean_ci(d, rng, self.b)
        st = rec["strength"]
        metrics: dict[str, float | None] = {
            "strength": st["s"],
            "kl": st["kl"],
            "target_kl": st["target"],
            "kl_evaluations": float(len(st["evaluations"])),
            "nll_clean": float(np.mean(nll["clean"])),
            "nll_steered": float(np.mean(nll["steered"])),
        }
        for base in ("random_direction", "zero_ablation"):
            if base in nll:
                metrics[f"{base}_delta"] = float(
                    np.mean(np.asarray(nll["clean"]) - np.asarray(nll[base]))
                )
        if "random_direction_kl" in rec:
            metrics["random_direction_kl"] = rec["random_direction_kl"]
        return ScoreResult(
            latent=ex.latent,
            scorer=self.name,
            explainer=expl.explainer,
            metric="nll_delta",
            value=float(d.mean()),
            ci_lo=lo,
            ci_hi=hi,
            n_pos=len(d),
            n_neg=0,
            flags=sorted(set(self.flags + list(st["flags"]))),
            metrics=metrics,
        )

    def _nll_all(self, rec: dict, passages, z: str) -> dict[str, list[float]]:
        out = {}
        for k in ("clean", "steered", "random_direction", "zero_ablation"):
            if k in rec:
                out[k] = self.judge.nll(passages(rec[k]), z)
        return out

    def _fail(self, ex, expl, err: str, flags: list[str]) -> ScoreResult:
        return ScoreResult(
            latent=ex.latent,
            scorer=self.name,
            explainer=expl.explainer,
            metric="nll_delta",
            value=None,
            failed="failed" in flags,
            error=err,
            flags=flags,
        )
