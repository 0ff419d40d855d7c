"""SAE<->SAE similarity: explanation matching (MiniLM cosine + Hungarian), decoder matching (MMCS,
blockwise, + Hungarian when the basis is shared), their agreement, and a layer x layer matrix.

``match_saes(a, b, method)`` takes two :class:`SAEView` (explanations by latent and/or a decoder
matrix). Hungarian matching uses ``scipy.optimize.linear_sum_assignment`` on up to ``max_latents``
sampled latents per SAE (spec: 2,048); larger SAEs use a greedy matching on a sparse top-``topk``
graph (flagged ``greedy``)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from autointerp.errors import check_int
from autointerp.rng import make_rng


@dataclass
class SAEView:
    """What matching needs from one SAE: ``explanations`` {latent: text} and/or ``W_dec``
    [n_latents, d_model] (rows = latent directions)."""

    explanations: Mapping[int, str] = field(default_factory=dict)
    W_dec: np.ndarray | None = None
    name: str = ""


@dataclass
class MatchResult:
    method: str
    pairs: np.ndarray  # [m, 2] latent of A, latent of B
    similarity: np.ndarray  # [m] similarity of each matched pair
    mean: float  # mean matched similarity
    baseline: float  # the same under shuffled explanations / random pairing
    mmcs: float | None = None  # decoder only: mean_i max_j cos(W_A[i], W_B[j])
    flags: list[str] = field(default_factory=list)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _check_decoder(W: np.ndarray, which: str) -> np.ndarray:
    """A usable decoder matrix: 2-D [n_latents, d_model], at least one row, finite."""
    try:
        W = np.asarray(W, np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"W_dec of {which} is not a numeric matrix") from None
    if W.ndim != 2 or W.shape[0] == 0 or W.shape[1] == 0:
        raise ValueError(
            f"W_dec of {which} must be a 2-D [n_latents, d_model] matrix with at least one row, "
            f"got shape {W.shape}; pass the decoder weights (rows = latent directions)"
        )
    if not np.isfinite(W).all():
        bad = np.flatnonzero(~np.isfinite(W).all(1))
        raise ValueError(
            f"W_dec of {which} has NaN/inf in {len(bad)} row(s) (first: {bad[:5].tolist()}); "
            "fix or drop those latents before matching"
        )
    return W


def mmcs(W_a: np.ndarray, W_b: np.ndarray, block: int = 4096) -> tuple[float, np.ndarray]:
    """Mean max cosine similarity of A's decoder rows to B's, blockwise (never the full matrix);
    also the argmax partner of each row of A."""
    check_int("mmcs", "block", block, 1)
    a = _unit_rows(_check_decoder(W_a, "A"))
    b = _unit_rows(_check_decoder(W_b, "B"))
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"decoder widths differ ({a.shape[1]} vs {b.shape[1]}): decoder matching needs a shared "
            "basis (same model and hookpoint); use method='explanations'"
        )
    best = np.empty(len(a), np.float32)
    arg = np.empty(len(a), np.int64)
    for lo in range(0, len(a), block):
        s = a[lo : lo + block] @ b.T
        arg[lo : lo + block] = s.argmax(1)
        best[lo : lo + block] = s.max(1)
    return float(best.mean()), arg


def _assign(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, c = linear_sum_assignment(-S)
    return r, c


def _greedy(S: np.ndarray, topk: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching on each row's top-k candidates, best similarities first."""
    k = min(topk, S.shape[1])
    cand = np.argpartition(-S, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(S.shape[0]), k)
    cols = cand.reshape(-1)
    order = np.argsort(-S[rows, cols], kind="stable")
    used_r, used_c, rr, cc = set(), set(), [], []
    for t in order:
        i, j = int(rows[t]), int(cols[t])
        if i in used_r or j in used_c:
            continue
        used_r.add(i)
        used_c.add(j)
        rr.append(i)
        cc.append(j)
    return np.array(rr, np.int64), np.array(cc, np.int64)


def _usable(text: object) -> bool:
    return isinstance(text, str) and bool(text.strip())


def _sample(ids: Sequence[int], n: int, seed: int, purpose: str) -> list[int]:
    ids = sorted(ids)
    if len(ids) <= n:
        return ids
    return sorted(make_rng(seed, "similarity", -1, purpose).choice(ids, n, replace=False).tolist())


def _match(
    S: np.ndarray, ia: list[int], ib: list[int], method: str, max_exact: int, topk: int, base: float
):
    flags = []
    if max(S.shape) <= max_exact:
        r, c = _assign(S)
    else:
        r, c = _greedy(S, topk)
        flags.append("greedy")
    sim = S[r, c]
    pairs = np.stack([np.array(ia)[r], np.array(ib)[c]], axis=1) if len(r) else np.zeros((0, 2))
    return MatchResult(
        method, pairs, sim, float(sim.mean()) if len(sim) else float("nan"), base, flags=flags
    )


def match_saes(
    a: SAEView,
    b: SAEView,
    method: str = "explanations",
    embedder=None,
    max_latents: int = 2048,
    max_exact: int = 4096,
    topk: int = 32,
    seed: int = 0,
) -> MatchResult:
    """``method="explanations"``: cosine of the explanations' embeddings (``embedder``, e.g. MiniLM);
    baseline = the same matching after shuffling B's explanations over B's latents, scored by the
    true pairs' similarity (chance level). ``method="decoder"``: cosine of decoder rows; also MMCS."""
    check_int("match_saes", "max_latents", max_latents, 1)
    check_int("match_saes", "max_exact", max_exact, 1)
    check_int("match_saes", "topk", topk, 1)
    if method == "explanations":
        if embedder is None:
            raise ValueError(
                "method='explanations' needs an embedder (autointerp.embed.MiniLMEmbedder)"
            )
        ia = _sample([i for i, t in a.explanations.items() if _usable(t)], max_latents, seed, "a")
        ib = _sample([i for i, t in b.explanations.items() if _usable(t)], max_latents, seed, "b")
        if not ia or not ib:
            empty = " and ".join(n for n, ids in (("A", ia), ("B", ib)) if not ids)
            raise ValueError(
                f"both SAEs need non-empty explanations to match by explanation; {empty} has none "
                "(run the explain stage, or match by method='decoder')"
            )
        ea = embedder.embed([a.explanations[i] for i in ia])
        eb = embedder.embed([b.explanations[i] for i in ib])
        S = ea @ eb.T
        perm = make_rng(seed, "similarity", -1, "shuffle").permutation(len(ib))
        Ss = S[:, perm]  # B's explanations shuffled over B's latents
        r, c = _assign(Ss) if max(S.shape) <= max_exact else _greedy(Ss, topk)
        base = float(S[r, c].mean()) if len(r) else float("nan")
        return _match(S, ia, ib, method, max_exact, topk, base)
    if method == "decoder":
        if a.W_dec is None or b.W_dec is None:
            raise ValueError("method='decoder' needs W_dec for both SAEs")
        m, _ = mmcs(a.W_dec, b.W_dec)
        Wa, Wb = np.asarray(a.W_dec, np.float32), np.asarray(b.W_dec, np.float32)
        ia = _sample(range(len(Wa)), max_latents, seed, "a")
        ib = _sample(range(len(Wb)), max_latents, seed, "b")
        S = _unit_rows(Wa[ia]) @ _unit_rows(Wb[ib]).T
        base = float(S.mean())  # random pairing
        res = _match(S, ia, ib, method, max_exact, topk, base)
        res.mmcs = m
        if not (np.linalg.norm(Wa, axis=1) > 0).all() or not (np.linalg.norm(Wb, axis=1) > 0).all():
            res.flags.append("zero_rows")  # an all-zero row has no direction: its cosines are 0
        return res
    raise ValueError(f"unknown method {method!r}; valid: explanations, decoder")


def agreement(x: MatchResult, y: MatchResult) -> float:
    """Fraction of A's latents matched in both results that are matched to the same latent of B."""
    dx = {int(i): int(j) for i, j in x.pairs}
    dy = {int(i): int(j) for i, j in y.pairs}
    common = sorted(set(dx) & set(dy))
    if not common:
        warnings.warn(
            "agreement: the two matchings share no latent of A, so agreement is undefined (NaN); "
            "match both on the same latents (same max_latents and seed)",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    return float(np.mean([dx[i] == dy[i] for i in common]))


def layer_matrix(
    runs: Sequence[SAEView],
    embedder=None,
    methods: Sequence[str] = ("explanations", "decoder"),
    **kw,
) -> dict[str, np.ndarray | list[str]]:
    """L x L matrices of mean matched similarity per method (expect a diagonal band). Returned as
    ``{"labels": [...], method: ndarray}`` (numpy, not xarray: xarray is not a dependency)."""
    n = len(runs)
    out: dict[str, np.ndarray | list[str]] = {
        "labels": [r.name or str(k) for k, r in enumerate(runs)]
    }
    for m in methods:
        M = np.full((n, n), np.nan)
        for i in range(n):
            for j in range(n):
                M[i, j] = match_saes(runs[i], runs[j], m, embedder=embedder, **kw).mean
        out[m] = M
    return out
