"""Build per-latent examples (train / val / test / negatives) from an activation source."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from autointerp.config import ExampleConfig
from autointerp.embed import Embedder
from autointerp.format import plain
from autointerp.negatives import CooccurrenceIndex, EmbeddingIndex, random_negatives
from autointerp.rng import make_rng
from autointerp.sampling import select
from autointerp.schema import LatentExamples, Window
from autointerp.source import ActivationSource, check_latent, segment_bounds
from autointerp.splits import doc_split
from autointerp.windows import dense_acts, grid_windows, peak_windows


class ExampleBuilder:
    """Shares pool-level work (splits, pool windows, co-occurrence, embeddings) across latents."""

    def __init__(
        self, source: ActivationSource, cfg: ExampleConfig, embedder: Embedder | None = None
    ) -> None:
        self.source = source
        self.cfg = cfg
        self.embedder = embedder
        self.seg_lo, self.seg_hi = segment_bounds(source)
        self.split = doc_split(source.doc_ids, cfg.seed, cfg.train_pct, cfg.test_pct)
        self.n_recorded = int(np.asarray(source.valid).sum())
        starts, ends = grid_windows(source, self.seg_lo, self.seg_hi, self.split == 2, cfg.ctx)
        self.pool_starts, self.pool_ends = starts, ends
        win_of = np.full(len(self.split), -1, np.int64)
        for w, (s, e) in enumerate(zip(starts, ends, strict=True)):
            win_of[s:e] = w
        self.pool_win_of = win_of

    # ---- pool-level indices (lazy) -------------------------------------------------------
    def _pool_windows_of(self, g: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = self.pool_win_of[g]
        keep = w >= 0
        w, v = w[keep], v[keep]
        if len(w) == 0:
            return w, v
        order = np.lexsort((-v, w))
        w, v = w[order], v[order]
        first = np.ones(len(w), bool)
        first[1:] = w[1:] != w[:-1]
        return w[first], v[first]

    @cached_property
    def cooccurrence(self) -> CooccurrenceIndex:
        rows, cols, vals = [], [], []
        for j in range(self.source.n_latents):
            g, v = self.source.latent(j)
            w, m = self._pool_windows_of(g, v)
            rows.append(w)
            cols.append(np.full(len(w), j, np.int64))
            vals.append(m)
        mat = sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(self.pool_starts), self.source.n_latents),
        )
        return CooccurrenceIndex(mat, top=self.cfg.n_neighbours)

    @cached_property
    def embedding_index(self) -> EmbeddingIndex | None:
        if self.embedder is None:
            return None
        rng = make_rng(self.cfg.seed, "examples", -1, "embed_pool")
        n = min(self.cfg.embed_pool, len(self.pool_starts))
        ids = (
            np.sort(rng.choice(len(self.pool_starts), size=n, replace=False))
            if n
            else np.zeros(0, np.int64)
        )
        texts = [
            plain(
                self._window(int(w), np.zeros(0, np.int64), np.zeros(0, np.float32), "neg_random")
            )
            for w in ids
        ]
        return EmbeddingIndex(self.embedder, ids, texts)

    # ---- windows --------------------------------------------------------------------------
    def _span_window(self, start: int, end: int, g, v, kind, quantile=None) -> Window:
        ids = self.source.token_ids[start:end]
        return Window(
            doc_id=int(self.source.doc_ids[start]),
            start=int(start),
            tokens=self.source.decode([int(t) for t in ids]),
            token_ids=[int(t) for t in ids],
            acts=[float(a) for a in dense_acts(g, v, start, end)],
            kind=kind,
            quantile=quantile,
        )

    def _window(self, w: int, g, v, kind) -> Window:
        return self._span_window(int(self.pool_starts[w]), int(self.pool_ends[w]), g, v, kind)

    # ---- per latent -------------------------------------------------------------------------
    def build(self, latent: int) -> LatentExamples:
        check_latent(self.source, latent)
        cfg = self.cfg
        g, v = self.source.latent(latent)
        rng = make_rng(cfg.seed, "examples", latent, "sample")
        n_firing = int(len(g))
        flags: list[str] = []
        a_max = float(v.max()) if n_firing else 0.0
        density = n_firing / max(1, self.n_recorded)
        ex = LatentExamples(
            latent=latent, a_max=a_max, n_firing=n_firing, density=density, flags=flags
        )
        if n_firing == 0:
            ex.flags.append("dead")
            return ex
        if density > 0.5:
            ex.flags.append("dense")
        # candidates: the top of the latent plus a uniform sample of the rest
        order = np.argsort(-v, kind="stable")
        top = order[: cfg.top_n]
        rest = order[cfg.top_n :]
        if len(rest) > cfg.n_reservoir:
            rest = rng.choice(rest, size=cfg.n_reservoir, replace=False)
        cands = np.concatenate([top, rest])
        spans = peak_windows(
            g, v, self.seg_lo, self.seg_hi, cands, cfg.ctx, cfg.peak_offset, cfg.align
        )
        split_of = np.array([self.split[s.peak] for s in spans], dtype=np.int64)
        tr, val, te, bins = select(
            spans,
            split_of,
            cfg.sampler,
            cfg.n_bins,
            cfg.train_per_bin,
            cfg.test_per_bin,
            cfg.n_val,
            rng,
        )

        def mk(i, kind):
            return self._span_window(spans[i].start, spans[i].end, g, v, kind, int(bins[i]))  # noqa: E731

        ex.train = [mk(i, "train") for i in tr]
        ex.val = [mk(i, "val") for i in val]
        ex.test = [mk(i, "test") for i in te]
        want_tr, want_te = cfg.n_bins * cfg.train_per_bin, cfg.n_bins * cfg.test_per_bin
        if len(ex.train) < want_tr or len(ex.test) < want_te:
            ex.flags.append("low_support")
        ex.negatives, ex.ref_negatives = self._negatives(latent, g, v, ex.train, rng)
        if len(ex.negatives) < cfg.n_negatives:
            ex.flags.append("few_negatives")
        return ex

    def _negatives(self, latent, g, v, train, rng) -> tuple[list[Window], list[Window]]:
        cfg = self.cfg
        firing, _ = self._pool_windows_of(g, v)
        eligible = np.setdiff1d(np.arange(len(self.pool_starts)), firing)
        n_total = cfg.n_negatives
        n_nb = int(round(n_total * cfg.neg_mix[1]))
        n_emb = int(round(n_total * cfg.neg_mix[2]))
        chosen: dict[int, str] = {}
        if n_nb > 0 and len(eligible):
            js, _jac = self.cooccurrence.neighbours(latent)
            for j in js:
                if sum(1 for k in chosen.values() if k == "neg_neighbour") >= n_nb:
                    break
                for w in self.cooccurrence.top_windows(int(j), cfg.windows_per_neighbour, firing):
                    if (
                        w not in chosen
                        and sum(1 for k in chosen.values() if k == "neg_neighbour") < n_nb
                    ):
                        chosen[w] = "neg_neighbour"
        if n_emb > 0 and self.embedding_index is not None and train:
            idx = self.embedding_index
            ok = ~np.isin(idx.window_ids, firing) & ~np.isin(idx.window_ids, list(chosen))
            top_train = sorted(train, key=lambda w: -w.max_act)[:10]
            for w in idx.hard_negatives([plain(t) for t in top_train], n_emb, ok):
                chosen[w] = "neg_embed"
        n_rand = n_total - len(chosen)  # random fills any shortfall
        for w in random_negatives(eligible, n_rand, rng, exclude=set(chosen)):
            chosen[w] = "neg_random"
        refs = random_negatives(eligible, cfg.n_ref_negatives, rng, exclude=set(chosen))
        negs = [self._window(w, g, v, kind) for w, kind in chosen.items()]
        for n in negs:  # checked: a negative has activation exactly 0 on every token
            if any(a != 0 for a in n.acts):
                raise AssertionError(f"negative window at {n.start} fires for latent {latent}")
        return negs, [self._window(w, g, v, "neg_ref") for w in refs]


def build_examples(
    source: ActivationSource,
    latents: Iterable[int],
    cfg: ExampleConfig,
    embedder: Embedder | None = None,
) -> Iterator[LatentExamples]:
    builder = ExampleBuilder(source, cfg, embedder)
    for i in latents:
        yield builder.build(int(i))
