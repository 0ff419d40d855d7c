"""Memory-mapped reader of a finished latent cache (format: see the package README)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from sae_core.cache.sketch import jaccard_from_bins
from sae_core.cache.stats import LatentStats
from sae_core.cache.topn import window_hash
from sae_core.errors import CacheError, LatentIndexError


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """A cache's JSON file (manifest, progress) as a dict; a damaged one raises CacheError naming
    the file and `fix`."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CacheError(f"{path} is damaged ({e}); {fix}") from None
    if not isinstance(data, dict):
        raise CacheError(f"{path} is damaged (not a JSON object); {fix}")
    return data


VERSION = 1  # the newest on-disk format this reader understands (see cache.writer.VERSION)


@dataclass
class Window:
    """Tokens ``[start, end)`` of one row (one document piece); ``peak`` is the global token of the max."""

    row: int
    start: int
    end: int
    doc_id: int
    doc_offset: int
    tokens: np.ndarray
    peak: int
    ctx: int = 0
    max_activation: float = float("nan")
    bin: int = -1

    @property
    def peak_pos(self) -> int:
        """Position of the peak in its row."""
        return int(self.peak) % self.ctx

    @property
    def peak_index(self) -> int:
        """Index of the peak inside ``tokens``."""
        return self.peak_pos - self.start

    def global_tokens(self) -> np.ndarray:
        return self.row * self.ctx + np.arange(self.start, self.end)


class LatentCache:
    """Read one coder's latents from a cache directory.

    ``LatentCache.open(dir)`` picks the only coder (or pass ``coder="<site>/<name>"``).
    """

    def __init__(self, root: Path, manifest: dict, coder: str, verify: bool = False):
        self.root = root
        self.manifest = manifest
        self.coder = coder
        self.meta = manifest["coders"][coder]
        self.ctx: int = int(manifest["ctx"])
        self.window_width: int = int(manifest["window"])
        self.tok_bytes: int = int(manifest["tok_bytes"])
        self.n_latents: int = int(self.meta["n_latents"])
        self._shards = sorted(self.meta["shards"], key=lambda s: s["lo"])
        self._lo = np.array([s["lo"] for s in self._shards])
        self._mm: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if verify:
            self.verify()

    # ------------------------------------------------------------------ opening
    @staticmethod
    def list_coders(path: str | Path) -> list[str]:
        return sorted(LatentCache._manifest(Path(path))["coders"])

    @staticmethod
    def _manifest(root: Path) -> dict:
        mpath = root / "manifest.json"
        if not mpath.is_file():
            raise CacheError(
                f"{root} is not a latent cache (no manifest.json); create it with cache_latents"
            )
        m = read_json_object(mpath, "rebuild the cache")
        version = m.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise CacheError(
                f"{root} has cache format version {version!r}; this sae-core reads versions "
                f"1..{VERSION}: upgrade sae-core or rebuild the cache"
            )
        if not m.get("complete"):
            raise CacheError(
                f"{root} is an unfinished cache; rerun cache_latents with the same arguments to resume"
            )
        need = ("ctx", "window", "tok_bytes", "n_rows", "n_tokens", "coders")
        missing = [k for k in need if k not in m]
        if missing or not isinstance(m["coders"], dict):
            raise CacheError(
                f"{mpath} is damaged (missing fields {missing or ['coders']}); rebuild the cache"
            )
        return m

    @classmethod
    def open(cls, path: str | Path, coder: str | None = None, verify: bool = False) -> LatentCache:
        root = Path(path)
        m = cls._manifest(root)
        names = sorted(m["coders"])
        if coder is None:
            if len(names) != 1:
                raise CacheError(f"{root} holds several coders {names}; pass coder=")
            coder = names[0]
        if coder not in m["coders"]:
            raise CacheError(f"coder {coder!r} not in {root}; available: {names}")
        return cls(root, m, coder, verify)

    @property
    def coders(self) -> list[str]:
        return sorted(self.manifest["coders"])

    def with_coder(self, coder: str) -> LatentCache:
        return LatentCache.open(self.root, coder)

    def verify(self) -> None:
        """Check every shard file against the manifest's sha256 (raises naming the shard)."""
        for s in self._shards:
            d = self.root / self.coder / f"shard_{s['lo']}_{s['hi']}"
            for f, want in s["sha256"].items():
                if not (d / f).is_file():
                    raise CacheError(f"{d / f} is missing; the cache is damaged: rebuild it")
                h = hashlib.sha256((d / f).read_bytes()).hexdigest()
                if h != want:
                    raise CacheError(
                        f"checksum mismatch in {d / f}; the shard is corrupt: rebuild the cache"
                    )

    # ------------------------------------------------------------------ tokens
    def _load(self, path: Path, mmap: bool = True) -> np.ndarray:
        """``np.load`` with a clear error for a missing or damaged file of the cache."""
        try:
            return np.load(path, mmap_mode="r" if mmap else None)
        except FileNotFoundError:
            raise CacheError(f"{path} is missing; the cache is damaged: rebuild it") from None
        except (ValueError, OSError, EOFError) as e:
            raise CacheError(
                f"cannot read {path} ({e}); the cache is damaged: rebuild it"
            ) from None

    def _load_npz(self, name: str) -> dict[str, np.ndarray]:
        path = self.root / self.coder / name
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise CacheError(f"{path} is missing; the cache is damaged: rebuild it") from None
        except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError on a damaged file
            raise CacheError(
                f"cannot read {path} ({e}); the cache is damaged: rebuild it"
            ) from None

    def _check_latent(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise LatentIndexError(f"latent index must be an integer, got {i!r}")
        if not 0 <= i < self.n_latents:
            raise LatentIndexError(f"latent {i} out of range 0..{self.n_latents - 1}")
        return int(i)

    def _check_row(self, row: int) -> int:
        if not 0 <= row < self.n_rows:
            raise LatentIndexError(f"row {row} out of range 0..{self.n_rows - 1}")
        return int(row)

    @cached_property
    def tokens(self) -> np.ndarray:
        return self._load(self.root / "tokens.npy")

    @cached_property
    def rows(self) -> np.ndarray:
        return self._load(self.root / "rows.npy")

    @cached_property
    def recorded(self) -> np.ndarray:
        packed = self._load(self.root / "mask.npy", mmap=False)
        return np.unpackbits(packed, axis=-1, count=self.ctx).astype(bool)

    @property
    def n_rows(self) -> int:
        return int(self.manifest["n_rows"])

    @property
    def n_tokens(self) -> int:
        return int(self.manifest["n_tokens"])

    # ------------------------------------------------------------------ latents
    def _shard(self, i: int) -> tuple[dict, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        i = self._check_latent(i)
        k = int(np.searchsorted(self._lo, i, side="right") - 1)
        s = self._shards[k]
        if k not in self._mm:
            d = self.root / self.coder / f"shard_{s['lo']}_{s['hi']}"
            self._mm[k] = (
                self._load(d / "indptr.npy"),
                self._load(d / "tok.npy"),
                self._load(d / "val.npy"),
            )
        return s, self._mm[k]

    def _decode_tok(self, t: np.ndarray) -> np.ndarray:
        if self.tok_bytes == 3:
            t = np.asarray(t, dtype=np.uint32)
            return (t[:, 0] | (t[:, 1] << 8) | (t[:, 2] << 16)).astype(np.int64)
        return np.asarray(t, dtype=np.int64)

    def latent(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(global token ids int64 sorted ascending, values float32) of latent ``i``."""
        s, (indptr, tok, val) = self._shard(i)
        a, b = int(indptr[i - s["lo"]]), int(indptr[i - s["lo"] + 1])
        return self._decode_tok(tok[a:b]), np.asarray(val[a:b], dtype=np.float32)

    def count(self, i: int) -> int:
        s, (indptr, _, _) = self._shard(i)
        return int(indptr[i - s["lo"] + 1] - indptr[i - s["lo"]])

    @cached_property
    def stats(self) -> LatentStats:
        return LatentStats.from_state(self._load_npz("stats.npz"))

    @cached_property
    def _topn(self) -> dict[str, np.ndarray]:
        return self._load_npz("topn.npz")

    @cached_property
    def _res(self) -> dict[str, np.ndarray]:
        return self._load_npz("reservoir.npz")

    def topn(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-N window maxima of latent ``i`` (descending) and their peak global tokens."""
        i = self._check_latent(i)
        v, k = self._topn["val"][i], self._topn["key"][i]
        ok = np.isfinite(v)
        return v[ok], k[ok].astype(np.int64)

    def reservoir(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hash ascending, peak global tokens, window maxima): a uniform sample of active windows."""
        i = self._check_latent(i)
        h = self._res["hash"][i]
        ok = h != np.iinfo(np.uint64).max
        return h[ok], self._res["key"][i][ok].astype(np.int64), self._res["val"][i][ok]

    @cached_property
    def cooccurrence_sketch(self) -> np.ndarray:
        """[n_latents, bins] uint32 one-permutation MinHash bins of each latent's firing tokens."""
        path = self.root / self.coder / "cooccurrence.npz"
        if not path.is_file():
            raise CacheError(
                f"{self.root} ({self.coder}) has no co-occurrence sketch; rebuild the cache with "
                "CacheConfig(cooccurrence_bins=128)"
            )
        return self._load_npz("cooccurrence.npz")["minhash"]

    def jaccard(self, i: int, j: int | np.ndarray | None = None) -> float | np.ndarray:
        """MinHash estimate of |T_i ∩ T_j| / |T_i ∪ T_j| over the tokens where latents fire
        (``j`` an array or None = all latents: a vector), in O(bins) per pair."""
        t = self.cooccurrence_sketch
        i = self._check_latent(i)
        if j is None:
            return jaccard_from_bins(t[i][None, :], t)
        if np.ndim(j) == 0:
            return float(jaccard_from_bins(t[i], t[self._check_latent(j)]))
        jj = np.asarray(j)
        if jj.size and (jj.dtype.kind not in "iu" or jj.min() < 0 or jj.max() >= self.n_latents):
            raise LatentIndexError(f"latents j must be integers in 0..{self.n_latents - 1}")
        return jaccard_from_bins(t[i][None, :], t[jj])

    def max_activation(self, i: int | None = None) -> float:
        return float(self.stats.max.max() if i is None else self.stats.max[self._check_latent(i)])

    # ------------------------------------------------------------------ windows
    def row_span(self, row: int) -> tuple[int, int]:
        """[first, end) positions of the row's document tokens (BOS and padding excluded)."""
        first = 1 if self.manifest.get("bos_in_row") else 0
        return first, int(self.rows[row, 2])

    def window(
        self, peak: int, width: int | None = None, peak_offset: int = 24, align: str = "peak"
    ) -> Window:
        """The window around global token ``peak``, clipped to its document piece (never crosses documents).

        ``align="peak"``: the peak sits at ``peak_offset``; ``align="grid"``: the ``width``-token grid cell.
        """
        width = self.window_width if width is None else width
        if width <= 0:
            raise CacheError(f"window width must be positive, got {width}")
        if not 0 <= int(peak) < self.n_tokens:
            raise LatentIndexError(
                f"peak token {peak} out of range 0..{self.n_tokens - 1} (global token ids)"
            )
        row, pos = divmod(int(peak), self.ctx)
        first, end_real = self.row_span(row)
        if align == "grid":
            start = (pos // width) * width
        elif align == "peak":
            start = pos - min(peak_offset, width - 1)
        else:
            raise ValueError(f"align must be 'peak' or 'grid', got {align!r}")
        a, b = max(start, first), min(start + width, end_real)
        return Window(
            row,
            a,
            b,
            int(self.rows[row, 0]),
            int(self.rows[row, 1]) + a - first,
            np.asarray(self.tokens[row, a:b]),
            int(peak),
            self.ctx,
        )

    def window_activations(self, i: int, w: Window) -> np.ndarray:
        tok, val = self.latent(i)
        g0 = w.row * self.ctx
        lo, hi = np.searchsorted(tok, [g0 + w.start, g0 + w.end])
        out = np.zeros(w.end - w.start, np.float32)
        out[tok[lo:hi] - g0 - w.start] = val[lo:hi]
        return out

    def dense_row_activations(self, i: int, row: int) -> np.ndarray:
        row = self._check_row(row)
        tok, val = self.latent(i)
        lo, hi = np.searchsorted(tok, [row * self.ctx, (row + 1) * self.ctx])
        out = np.zeros(self.ctx, np.float32)
        out[tok[lo:hi] - row * self.ctx] = val[lo:hi]
        return out

    def top_windows(
        self, i: int, n: int = 20, width: int | None = None, peak_offset: int = 24
    ) -> list[Window]:
        """Up to ``n`` top windows from the top-N heap, overlapping peaks removed (non-max suppression)."""
        if n <= 0:
            raise CacheError(f"n must be positive (the number of windows to return), got n={n}")
        width = width or self.window_width
        vals, peaks = self.topn(i)
        kept: list[Window] = []
        taken: dict[int, list[int]] = {}
        for v, p in zip(vals, peaks, strict=True):
            row, pos = divmod(int(p), self.ctx)
            if any(abs(pos - q) < width for q in taken.get(row, [])):
                continue
            w = self.window(int(p), width, peak_offset)
            w.max_activation = float(v)
            kept.append(w)
            taken.setdefault(row, []).append(pos)
            if len(kept) == n:
                break
        return kept

    def active_windows(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """All active grid cells of latent ``i`` from the CSR: (peak global tokens, window maxima)."""
        tok, val = self.latent(i)
        if tok.size == 0:
            return tok, val
        row, pos = np.divmod(tok, self.ctx)
        cell = row * (-(-self.ctx // self.window_width)) + pos // self.window_width
        starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        maxima = np.maximum.reduceat(val, starts)
        peaks = np.empty(starts.size, np.int64)
        for j, (a, b) in enumerate(zip(starts, np.r_[starts[1:], tok.size], strict=True)):
            peaks[j] = tok[a + int(np.argmax(val[a:b]))]
        return peaks, maxima

    def quantile_sample(
        self,
        i: int,
        bins: int = 10,
        per_bin: int = 4,
        split: str = "train",
        seed: int = 0,
        width: int | None = None,
        peak_offset: int = 24,
    ) -> list[Window]:
        """Equal-count activation bins over all active windows (exact, from the CSR); ``per_bin`` windows
        per bin. ``split`` ∈ {train, test, all}: a window is train iff h(seed, window) is even, so train and
        test never share a window. Fewer windows than asked → fewer returned (never skipped)."""
        if bins <= 0 or per_bin < 0:
            raise CacheError(
                f"bins must be positive and per_bin >= 0, got bins={bins}, per_bin={per_bin}"
            )
        peaks, maxima = self.active_windows(i)
        if peaks.size == 0:
            return []
        row, pos = np.divmod(peaks, self.ctx)
        cell = row * (-(-self.ctx // self.window_width)) + pos // self.window_width
        h = window_hash(seed, 0, cell)
        if split in ("train", "test"):
            keep = (h % np.uint64(2) == 0) if split == "train" else (h % np.uint64(2) == 1)
        elif split == "all":
            keep = np.ones(peaks.size, bool)
        else:
            raise ValueError(f"split must be train, test or all, got {split!r}")
        order = np.lexsort((peaks, maxima))  # ascending activation
        bin_of = np.empty(peaks.size, np.int64)
        bin_of[order] = np.arange(peaks.size) * bins // peaks.size
        out: list[Window] = []
        pick_h = window_hash(seed + 1, 0, cell)
        for b in range(bins):
            cand = np.flatnonzero((bin_of == b) & keep)
            cand = cand[np.argsort(pick_h[cand], kind="stable")][:per_bin]
            for j in cand:
                w = self.window(int(peaks[j]), width, peak_offset)
                w.max_activation, w.bin = float(maxima[j]), b
                out.append(w)
        return out

    def single_token_latents(self, threshold: float = 0.9) -> np.ndarray:
        """Latents whose top-N peaks sit on one token id ≥ ``threshold`` of the time."""
        keys = self._topn["key"]
        ok = np.isfinite(self._topn["val"])
        out = np.zeros(self.n_latents, bool)
        flat_tok = np.asarray(self.tokens).ravel()
        for i in np.flatnonzero(ok.any(1)):
            ids = flat_tok[keys[i][ok[i]].astype(np.int64)]
            out[i] = np.bincount(ids).max() >= threshold * ids.size
        return out
