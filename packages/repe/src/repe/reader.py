"""LAT reading: fit directions per layer, calibrate, and evaluate on held-out pairs."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._version import __version__
from .activations import pair_activations
from .data.pairs import ContrastPair, pairs_sha256, validate_pairs
from .data.splits import split_by_group
from .data.templates import ChatFormat
from .errors import LayerError, PairDataError, RepeError, VectorMismatchError
from .finders import PAIRED_METHODS, fit_direction, get_finder
from .finders.base import check_k
from .metrics import (
    LayerMetrics,
    LayerReport,
    auroc,
    bootstrap_auroc_ci,
    group_accuracy,
    youden_threshold,
)
from .positions import ReadPosition, parse_read
from .sites import model_identity, normalise_layers, num_layers
from .vector import ReadingVector


def _check_n_boot(n_boot: object) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise RepeError(f"n_boot (bootstrap resamples) must be an integer >= 1, got {n_boot!r}")


def _check_batch_size(batch_size: object) -> None:
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):
        raise RepeError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def _as_layer_dict(x: Mapping[int, np.ndarray] | np.ndarray) -> dict[int, np.ndarray]:
    if isinstance(x, Mapping):
        return {int(k): np.asarray(v) for k, v in x.items()}
    return {0: np.asarray(x)}


class RepReader:
    """sklearn-style reader over activations ``{layer: (n, D)}`` (or one (n, D) array = layer 0).

    ``fit(pos, neg)`` fits one direction per layer; ``score(acts)`` returns ``{layer: scores}``;
    ``evaluate(pos, neg)`` returns a :class:`LayerReport` (AUROC with a group-bootstrap CI,
    pair accuracy, Youden threshold); ``to_vector()`` gives a :class:`ReadingVector`.
    """

    def __init__(self, method: str = "mean_diff", *, k: int = 1, seed: int = 0, n_boot: int = 1000):
        get_finder(method)
        check_k(k)
        _check_n_boot(n_boot)
        self.method, self.k, self.seed, self.n_boot = method, k, seed, n_boot
        self.directions_: dict[int, Any] = {}
        self.calibration_: dict[int, dict[str, Any]] = {}

    def fit(
        self,
        pos: Mapping[int, np.ndarray] | np.ndarray,
        neg: Mapping[int, np.ndarray] | np.ndarray,
        groups: Sequence[str] | None = None,
    ) -> RepReader:
        pos_d, neg_d = _as_layer_dict(pos), _as_layer_dict(neg)
        if set(pos_d) != set(neg_d):
            raise PairDataError("positive and negative activations cover different layers")
        for layer in sorted(pos_d):
            p, n = pos_d[layer], neg_d[layer]
            d = fit_direction(self.method, p, n, layer=layer, seed=self.seed, k=self.k)
            self.directions_[layer] = d
            sp = (np.asarray(p, float) - d.mu) @ d.read[0]
            sn = (np.asarray(n, float) - d.mu) @ d.read[0]
            paired = len(p) == len(n)
            diff = (np.asarray(p) - np.asarray(n)).mean(0) if paired else p.mean(0) - n.mean(0)
            self.calibration_[layer] = {
                "diff_norm": float(np.linalg.norm(diff)),
                "resid_norm_median": float(np.median(np.linalg.norm(np.r_[p, n], axis=1))),
                "score_mean_pos": float(sp.mean()),
                "score_mean_neg": float(sn.mean()),
                "score_sd_pos": float(sp.std(ddof=1)) if len(sp) > 1 else 0.0,
                "score_sd_neg": float(sn.std(ddof=1)) if len(sn) > 1 else 0.0,
                "score_sd": float(np.r_[sp - sp.mean(), sn - sn.mean()].std(ddof=1)),
                "midpoint": float((sp.mean() + sn.mean()) / 2),
                "threshold": youden_threshold(sp, sn),
                "train_auroc": auroc(sp, sn),
            }
        return self

    def score(self, acts: Mapping[int, np.ndarray] | np.ndarray) -> dict[int, np.ndarray]:
        if not self.directions_:
            raise RepeError("this RepReader is not fitted yet; call fit(pos, neg) first")
        out = {}
        for layer, a in _as_layer_dict(acts).items():
            if layer not in self.directions_:
                raise LayerError(
                    f"no direction fitted at layer {layer}; the reader has layers "
                    f"{sorted(self.directions_)}"
                )
            d = self.directions_[layer]
            a = np.asarray(a, float)
            if a.ndim == 0 or a.shape[-1] != d.mu.shape[-1]:
                raise VectorMismatchError(
                    f"activations at layer {layer} have shape {a.shape} but the reader was fitted "
                    f"on hidden size {d.mu.shape[-1]}; use activations from the same model and site"
                )
            out[layer] = (a - d.mu) @ d.read[0]
        return out

    def evaluate(
        self,
        pos: Mapping[int, np.ndarray] | np.ndarray,
        neg: Mapping[int, np.ndarray] | np.ndarray,
        groups: Sequence[str] | None = None,
    ) -> LayerReport:
        sp, sn = self.score(pos), self.score(neg)
        if set(sp) != set(sn):
            raise PairDataError("positive and negative activations cover different layers")
        report = LayerReport()
        for layer in sorted(sp):
            p, n = sp[layer], sn[layer]
            if len(p) == 0 or len(n) == 0:
                raise PairDataError(
                    f"empty evaluation data at layer {layer}: {len(p)} positive and {len(n)} "
                    "negative examples; pass at least 1 of each"
                )
            paired = len(p) == len(n)
            g = None if groups is None else np.asarray(groups)
            ci = (
                bootstrap_auroc_ci(p, n, g, n_boot=self.n_boot, seed=self.seed)
                if paired or g is not None
                else (float("nan"), float("nan"))
            )
            report.layers.append(
                LayerMetrics(
                    layer=layer,
                    auroc=auroc(p, n),
                    auroc_ci=ci,
                    accuracy=group_accuracy(p, n) if paired else None,
                    threshold=youden_threshold(p, n),
                    n=len(p),
                )
            )
        return report

    def to_vector(self, meta: dict[str, Any] | None = None) -> ReadingVector:
        return ReadingVector(
            write={layer: d.write for layer, d in self.directions_.items()},
            read={layer: d.read for layer, d in self.directions_.items()},
            mu={layer: d.mu for layer, d in self.directions_.items()},
            signs={layer: 1 for layer in self.directions_},
            calibration={layer: dict(c) for layer, c in self.calibration_.items()},
            meta=dict(meta or {}),
        )


def fit_reading_vector(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[ContrastPair],
    layers: int | str | Sequence[int] | None = "all",
    site: str = "resid_post",
    read: str | ReadPosition = "last",
    method: str = "mean_diff",
    split: float = 0.2,
    seed: int = 0,
    *,
    k: int = 1,
    fmt: ChatFormat | None = None,
    batch_size: int = 16,
    val_pairs: Sequence[ContrastPair] | None = None,
    n_boot: int = 1000,
    progress: bool = False,
) -> ReadingVector:
    """Fit a reading vector on ``pairs`` (split by group; or validate on ``val_pairs``).

    Validation AUROC/accuracy per layer go into ``calibration[l]`` (``val_auroc``,
    ``val_auroc_ci``, ``val_acc``, ``threshold``) and ``meta["report"]``.
    """
    pairs = validate_pairs(pairs)
    get_finder(method)
    check_k(k)
    _check_n_boot(n_boot)
    _check_batch_size(batch_size)
    if not isinstance(split, int | float) or not 0 <= split < 1:
        raise PairDataError(
            f"split (the validation fraction) must be a number in [0, 1), got {split!r}"
        )
    n_l = num_layers(model)
    ls = normalise_layers(layers, n_l)
    rp = parse_read(read)
    if val_pairs is None and split > 0:
        train, val = split_by_group(pairs, split, seed)
    else:
        train, val = list(pairs), list(val_pairs or [])
    if len(train) < 2:
        raise PairDataError(f"only {len(train)} training pair(s) after the split; add pairs")
    if method in PAIRED_METHODS and method in ("pca_k",) and len(train) < k:
        raise PairDataError(f"{len(train)} training pairs < k={k}")
    all_pairs = train + val
    pos, neg = pair_activations(
        model,
        tokenizer,
        all_pairs,
        ls,
        site=site,
        read=rp,
        fmt=fmt,
        batch_size=batch_size,
        progress=progress,
    )
    nt = len(train)
    reader = RepReader(method, k=k, seed=seed, n_boot=n_boot)
    reader.fit({l_: pos[l_][:nt] for l_ in ls}, {l_: neg[l_][:nt] for l_ in ls})
    report = None
    if val:
        groups = [p.group or f"pair{i}" for i, p in enumerate(val)]
        report = reader.evaluate(
            {l_: pos[l_][nt:] for l_ in ls}, {l_: neg[l_][nt:] for l_ in ls}, groups
        )
        for m in report.layers:
            reader.calibration_[m.layer].update(
                val_auroc=m.auroc,
                val_auroc_ci=list(m.auroc_ci),
                val_acc=m.accuracy,
                threshold=m.threshold,
            )
    else:
        warnings.warn(
            "no validation pairs: calibration thresholds come from training data",
            UserWarning,
            stacklevel=2,
        )
    meta = {
        "model": model_identity(model),
        "site": site,
        "layer_index": "block_0based",
        "read_position": rp.describe(),
        "chat_template_sha256": _template_sha(tokenizer, fmt),
        "method": {"name": method, "params": {"k": k, "split": split}, "seed": seed},
        "data": {
            "sha256": pairs_sha256(pairs, fmt, tokenizer),
            "n_pairs": len(pairs),
            "n_train": nt,
            "n_val": len(val),
        },
        "package_version": __version__,
    }
    if report is not None:
        meta["report"] = {str(k_): v for k_, v in report.to_dict().items()}
        meta["best_layer"] = report.best_layer
    return reader.to_vector(meta)


def _template_sha(tokenizer: Any, fmt: ChatFormat | None) -> str | None:
    import hashlib
    import json

    tpl = getattr(tokenizer, "chat_template", None)
    blob = json.dumps(
        {"template": tpl, "fmt": fmt.__dict__ if fmt else None}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def evaluate_vector(
    model: Any,
    tokenizer: Any,
    vector: ReadingVector,
    pairs: Sequence[ContrastPair],
    *,
    read: str | ReadPosition | None = None,
    fmt: ChatFormat | None = None,
    batch_size: int = 16,
    n_boot: int = 1000,
) -> LayerReport:
    """Held-out AUROC / pair accuracy of a fitted vector, per layer."""
    pairs = validate_pairs(pairs)
    _check_n_boot(n_boot)
    _check_batch_size(batch_size)
    rp = parse_read(read or vector.meta.get("read_position", "last"))
    pos, neg = pair_activations(
        model,
        tokenizer,
        pairs,
        vector.layers,
        site=vector.site,
        read=rp,
        fmt=fmt,
        batch_size=batch_size,
    )
    report = LayerReport()
    groups = np.asarray([p.group or f"pair{i}" for i, p in enumerate(pairs)])
    for layer in vector.layers:
        sp, sn = vector.score(layer, pos[layer]), vector.score(layer, neg[layer])
        report.layers.append(
            LayerMetrics(
                layer=layer,
                auroc=auroc(sp, sn),
                auroc_ci=bootstrap_auroc_ci(sp, sn, groups, n_boot=n_boot),
                accuracy=group_accuracy(sp, sn),
                threshold=youden_threshold(sp, sn),
                n=len(sp),
            )
        )
    return report
