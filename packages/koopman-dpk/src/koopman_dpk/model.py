"""`DPK`: the sklearn-style Deep Probabilistic Koopman forecaster."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import ndtri as special_ndtri

from .distributions import get_distribution
from .distributions.base import Distribution
from .errors import DPKInputError, DPKNotFittedError
from .features import coerce_covariates, coerce_target, drop_missing
from .forecast import DEFAULT_QUANTILES, Forecast, OutputSpec
from .freqsearch import initial_periods
from .leveltrend import SMOOTHING_METHODS, fit_block_trend
from .net import TRENDS, DPKNet, count_parameters
from .timeaxis import TimeAxis, check_monotonic
from .train import TrainData, TrainSettings, split_validation, train

MIN_POINTS = 50
# the scale parameter of the location-scale heads (variances add in quadrature; for Student-t
# and SkewNormal this widens the scale, an approximation to the exact convolution)
LOCATION_SCALE = {"normal": "sigma", "studentt": "s", "skewnormal": "omega"}


@dataclass
class DPKConfig:
    """Every constructor argument of `DPK` (JSON-serialisable)."""

    distribution: str = "normal"
    periods: list[Any] | None = None
    n_search: int | None = None
    num_freqs: int | list[int] | None = None
    hidden: tuple[int, ...] = (64, 32)
    trend: str = "linear"  # one of TRENDS, or "auto": the candidate below with the lowest
    # pinball loss on the last val_span of the training data (a model per candidate is fitted
    # on the data before it), then refitted on all data
    trend_candidates: tuple[str, ...] = ("piecewise", "linear", "constant")
    n_changepoints: int = 10  # trend="piecewise": hinge count ...
    changepoint_range: float = 0.8  # ... spread over this leading fraction of the span
    changepoint_penalty: float = 1e-3  # L1 weight on the hinge slopes
    linear_periods: list[Any] | None = None  # periods whose Fourier terms enter the location
    # linearly (Prophet-style), not through the MLP: for cycles the data cover less than ~twice,
    # where an MLP of the phase would extrapolate freely over the phases it never saw
    linear_order: int = 2  # harmonics per linear period
    level_window: Any = None  # intercept correction: None, "auto" (longest period) or a duration
    level_method: str = "mean"  # "mean": mean residual over the window; "holt": damped trend;
    # "ets": the AICc-best of local level / linear / damped trend on the window's block means;
    # "comb": the average of those three forecasts (Comb S-H-D), robust where AICc picks a
    # runaway slope on smooth residuals; "ANN", "AAN" or "AAdN": that one form, fixed;
    # "auto": the candidate (none, mean, ets on steps, ets on the shortest period's blocks)
    # with the lowest pinball loss on the validation tail (training data only)
    harmonic_tolerance: float = 0.01  # a found period this close to P/k of a pinned P is snapped
    level_target: str = "residual"  # holt/ets read the residuals of the network + trend, or
    # "deseasonalized": y minus the network's periodic part, the smoothing forecast replacing the
    # explicit trend beyond the training data (MSTL's structure, with DPK as the seasonal model)
    recency_halflife: Any = None  # loss weights 0.5 ** (age / halflife): recent data count more
    level_uncertainty: bool = True  # holt/ets: add the level forecast's variance to the scale
    sample_num: int = 24
    search_interval: int = 10
    search_cutoff: int = 50
    heuristic: str = "verified"
    search_method: str = "auto"
    epochs: int = 500
    batch_size: int = 256
    lr: float = 3e-3
    lr_omega: float = 1e-3
    weight_decay: float = 1e-4
    val: str = "tail"
    val_fraction: float = 0.1
    val_span: Any = None  # val="tail": the tail length as a duration/number (overrides fraction)
    patience: int = 25
    min_epochs: int = 0  # early stopping never picks an epoch before this one
    refit_full: bool = False  # after early stopping, retrain on all data for the best #epochs
    residual_ar: int = 0
    conformal: bool = False
    calibration: str = "none"  # "scale": widen/narrow the PIT in normal scores (validation tail)
    calibration_level: float = 0.8  # the central interval that "scale" makes nominal
    calibration_folds: int = 1  # "scale": validation blocks (the tail + earlier refitted folds)
    scaling: str = "standard"
    allow_single_cycle: bool = False
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = 1  # torch intra-op threads during fit (tiny models: 1 is fastest)
    progress: bool = False
    checkpoint_dir: str | None = None  # per-epoch resumable training checkpoints (Ctrl-C safe)
    extra: dict[str, Any] = field(default_factory=dict)


def snap_to_harmonics(
    found: Sequence[float], pinned: Sequence[float], tolerance: float, max_harmonic: int = 8
) -> tuple[list[float], list[bool]]:
    """Snap each found period within `tolerance` (relative) of a harmonic P/k (k = 2..8) of a
    pinned period P to exactly P/k, and report which were snapped (they are then pinned too).

    The periodogram's frequency grid is 1/span apart, so a harmonic found on a short series is
    off by up to half a bin (83.4 h for 168 h / 2 on seven weeks of data). Left unsnapped, the
    network's interactions between it and the pinned period beat slowly and the forecast
    drifts by hundreds of units over a few weeks; snapped, the model stays exactly periodic."""
    out, snapped = [], []
    for p in found:
        best = None
        for P in pinned:
            for k in range(2, max_harmonic + 1):
                h = P / k
                err = abs(p - h) / h
                if err <= tolerance and (best is None or err < best[0]):
                    best = (err, h)
        out.append(best[1] if best else float(p))
        snapped.append(best is not None)
    return out, snapped


def _time_order(raw_times: Any) -> np.ndarray:
    """Stable sorting order of the raw times (fit(sort=True))."""
    import pandas as pd

    return np.argsort(np.asarray(pd.Index(raw_times)), kind="stable")


def _take(raw_times: Any, idx: np.ndarray) -> Any:
    """raw_times at the integer positions idx (ndarray or pandas Index)."""
    return raw_times.take(idx) if hasattr(raw_times, "take") else raw_times[idx]


def _quantile_pinball(fc: Forecast, Y: np.ndarray) -> float:
    """Mean pinball loss (q = 0.1..0.9) of a forecast against the (T, d) observations."""
    from .metrics import pinball

    levels = np.asarray(DEFAULT_QUANTILES, dtype=float)
    q = fc._quantile_array(levels).reshape(len(Y), -1, len(levels))
    return pinball(Y.reshape(len(Y), -1), q)


@contextlib.contextmanager
def _threads(n: int | None):
    """Temporarily set torch's intra-op threads (restored afterwards)."""
    if not n:
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@contextlib.contextmanager
def _deterministic(device: str = "cpu"):
    """use_deterministic_algorithms(True) off CPU (CPU kernels used here are deterministic, and
    the switch imports torch._inductor, which costs seconds)."""
    if str(device).startswith("cpu"):
        yield
        return
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev)


class DPK:
    """Deep Probabilistic Koopman forecaster.

    Each parameter of the predictive distribution is a small tanh MLP of periodic features
    cos(omega tau), sin(omega tau) (pinned or found by the FFT loss-surface search) and
    standardised covariates, plus an explicit trend on the location.

    >>> model = DPK(distribution="normal", periods=[24, 168], epochs=50).fit(y)
    >>> fc = model.predict(horizon=24 * 31)
    >>> fc.quantile([0.1, 0.5, 0.9])
    """

    def __init__(
        self, distribution: str = "normal", periods: Sequence[Any] | None = None, **kwargs: Any
    ):
        names = {f.name for f in fields(DPKConfig)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise DPKInputError(f"unknown DPK argument(s) {unknown}; valid: {sorted(names)}")
        self.config = DPKConfig(
            distribution=distribution,
            periods=list(periods) if periods is not None else None,
            **kwargs,
        )
        self.dist: Distribution = get_distribution(self.config.distribution)
        if self.config.trend not in (*TRENDS, "auto"):
            raise DPKInputError(
                f"trend must be one of {TRENDS} or 'auto', got {self.config.trend!r}"
            )
        if self.config.trend == "auto":
            cands = tuple(self.config.trend_candidates)
            if not cands or any(t not in TRENDS for t in cands):
                raise DPKInputError(
                    f"trend_candidates must be a non-empty list drawn from {TRENDS}, got {cands!r}"
                )
        if self.config.val not in ("tail", "blocks", "none"):
            raise DPKInputError(f"val must be 'tail', 'blocks' or 'none', got {self.config.val!r}")
        if self.config.conformal and self.config.val == "none":
            raise DPKInputError(
                "conformal=True needs a validation split; set val='tail' or 'blocks'."
            )
        if self.config.calibration not in ("none", "scale"):
            raise DPKInputError(
                f"calibration must be 'none' or 'scale', got {self.config.calibration!r}"
            )
        if self.config.calibration == "scale":
            if self.config.val == "none":
                raise DPKInputError(
                    "calibration='scale' needs a validation split; set val='tail' (ideally with "
                    "val_span equal to the forecast horizon)."
                )
            if self.config.conformal:
                raise DPKInputError("use either conformal=True or calibration='scale', not both.")
            if not 0 < self.config.calibration_level < 1:
                raise DPKInputError("calibration_level must lie in (0, 1).")
        lm = self.config.level_method
        if lm not in ("mean", *SMOOTHING_METHODS, "auto"):
            raise DPKInputError(
                "level_method must be 'mean', 'holt', 'ets', 'comb', 'auto' or a fixed "
                f"exponential-smoothing form 'ANN', 'AAN' or 'AAdN', got {lm!r}"
            )
        if lm == "auto" and self.config.val == "none":
            raise DPKInputError(
                "level_method='auto' chooses on the validation tail; set val='tail' (ideally "
                "with val_span equal to the forecast horizon)."
            )
        if self.config.level_target not in ("residual", "deseasonalized"):
            raise DPKInputError(
                "level_target must be 'residual' or 'deseasonalized', got "
                f"{self.config.level_target!r}"
            )
        if self.config.level_target == "deseasonalized" and lm == "mean":  # auto: ets only
            raise DPKInputError(
                "level_target='deseasonalized' replaces the trend with a smoothing forecast; "
                "use it with level_method='ets', 'holt', 'comb' or a fixed form such as 'AAN'."
            )
        if lm in (*SMOOTHING_METHODS, "auto"):
            if self.config.level_window is None and lm != "auto":
                raise DPKInputError(
                    f"level_method={lm!r} needs level_window (the block length, e.g. '24h')."
                )
            if self.dist.log_link:
                raise DPKInputError(
                    f"level_method={lm!r} is additive: use it with real-valued distributions, "
                    "or level_method='mean' for log-link ones."
                )
        if not 0 < self.config.changepoint_range <= 1:
            raise DPKInputError("changepoint_range must lie in (0, 1].")
        self._check_numbers()
        self.net_: DPKNet | None = None

    # (name, lowest allowed value, whether that value itself is allowed, must be an integer)
    _NUMBER_RULES = (
        ("epochs", 1, True, True),
        ("batch_size", 1, True, True),
        ("patience", 1, True, True),
        ("min_epochs", 0, True, True),
        ("sample_num", 1, True, True),
        ("search_interval", 1, True, True),
        ("search_cutoff", 0, True, True),
        ("n_changepoints", 1, True, True),
        ("linear_order", 1, True, True),
        ("calibration_folds", 1, True, True),
        ("residual_ar", 0, True, True),
        ("lr", 0.0, False, False),
        ("lr_omega", 0.0, True, False),
        ("weight_decay", 0.0, True, False),
        ("changepoint_penalty", 0.0, True, False),
        ("harmonic_tolerance", 0.0, True, False),
        ("val_fraction", 0.0, True, False),
    )

    def _check_numbers(self) -> None:
        """Training and structure settings out of range get an error naming the setting (a
        negative lr would silently climb the loss; batch_size=0 fails deep inside torch)."""
        c = self.config
        for name, low, inclusive, integer in self._NUMBER_RULES:
            v = getattr(c, name)
            is_int = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            ok = (is_int if integer else isinstance(v, (int, float, np.number))) and (
                v >= low if inclusive else v > low
            )
            if not ok or (not integer and not math.isfinite(v)):
                kind = "an integer" if integer else "a number"
                bound = f">= {low:g}" if inclusive else f"> {low:g}"
                raise DPKInputError(f"{name} must be {kind} {bound}, got {v!r}.")
        if not c.val_fraction < 1:
            raise DPKInputError(f"val_fraction must be < 1, got {c.val_fraction!r}.")
        if any(
            not isinstance(h, (int, np.integer)) or isinstance(h, bool) or h < 1 for h in c.hidden
        ):
            raise DPKInputError(
                f"hidden must be a tuple of positive layer widths, e.g. (64, 32), got {c.hidden!r}."
            )

    @classmethod
    def from_config(cls, config: DPKConfig | dict[str, Any]) -> DPK:
        d = asdict(config) if isinstance(config, DPKConfig) else dict(config)
        d["hidden"] = tuple(d.get("hidden", (64, 32)))
        return cls(**d)

    def get_params(self) -> dict[str, Any]:
        return asdict(self.config)

    # ------------------------------------------------------------------ structure
    def _blocks(self, pinned_tau: list[float]) -> list[int]:
        c = self.config
        n_heads = self.dist.n_params
        n_search = c.n_search
        if c.num_freqs is None:
            if n_search is None:
                n_search = 0 if pinned_tau else 2
            sizes = [len(pinned_tau) + n_search] * n_heads
        elif isinstance(c.num_freqs, int):
            sizes = [c.num_freqs] * n_heads
        else:
            sizes = list(c.num_freqs)
            if len(sizes) != n_heads:
                raise DPKInputError(
                    f"num_freqs has {len(sizes)} entries but {self.dist.name!r} has {n_heads} parameters "
                    f"{list(self.dist.param_names)}; give one count per parameter or an int."
                )
        if min(sizes) < len(pinned_tau):
            raise DPKInputError(
                f"num_freqs={c.num_freqs} is smaller than the {len(pinned_tau)} pinned periods; raise it."
            )
        return sizes

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        y: Any,
        times: Any = None,
        covariates: Any = None,
        sample_weight: Any = None,
        mask: Any = None,
        sort: bool = False,
        series_dim: str | None = None,
    ) -> DPK:
        """Fit on y (ndarray, pandas Series/DataFrame with DatetimeIndex, or xarray DataArray)."""
        c = self.config
        if c.trend == "auto":
            return self._fit_auto_trend(y, times, covariates, sample_weight, mask, sort, series_dim)
        target = coerce_target(y, times, series_dim)
        Y = target.y
        T0 = len(Y)
        cov, cov_names = coerce_covariates(covariates, T0)
        w = (
            np.ones(T0)
            if sample_weight is None
            else np.asarray(sample_weight, dtype=float).reshape(-1)
        )
        m = np.ones(T0, bool) if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
        if len(w) != T0 or len(m) != T0:
            raise DPKInputError("sample_weight and mask must have one entry per time.")
        if np.any(~np.isfinite(w)) or np.any(w < 0):
            raise DPKInputError("sample_weight must be finite and non-negative.")
        raw_times = target.times if target.times is not None else np.arange(T0, dtype=float)
        if sort:
            order = _time_order(raw_times)
            raw_times = _take(raw_times, order)
            Y, cov, w, m = Y[order], cov[order], w[order], m[order]
        axis, tau = TimeAxis.fit(raw_times)
        Y, keep = drop_missing(Y)
        kept_times = raw_times[keep]
        tau, cov, w, m = tau[keep], cov[keep], w[keep], m[keep]
        if not np.any(m & (w > 0)):
            raise DPKInputError(
                "nothing to train on: every point has mask=False or sample_weight=0 (after "
                "dropping NaNs); give some points a positive weight."
            )
        if not keep[0]:
            # t0 must be the first *training* time so that tau >= 0
            axis.t0 += tau[0] * axis.unit
            tau = tau - tau[0]
        axis.end = float(tau[-1])
        axis.step = float(np.median(np.diff(tau))) if len(tau) > 1 else 1.0
        self.dist.check_support(Y)
        span = float(tau[-1] - tau[0])
        if c.recency_halflife is not None:
            # exponential recency weights (the recency half of GEFCom's loss weights): a slowly
            # changing periodic shape is fitted to its recent form
            hl = axis.period_to_tau(c.recency_halflife)
            if not hl > 0:
                raise DPKInputError(
                    f"recency_halflife must be positive, got {c.recency_halflife!r}"
                )
            w = w * 0.5 ** ((tau[-1] - tau) / hl)
        pinned = [axis.period_to_tau(p) for p in (c.periods or [])]
        longest = max(pinned, default=0.0)
        cycles = 0 if c.allow_single_cycle else 2  # allow_single_cycle: < 2 cycles accepted
        need = max(MIN_POINTS, int(math.ceil(cycles * longest / axis.step)) if longest else 0)
        if len(Y) < need:
            raise DPKInputError(
                f"only {len(Y)} valid points; need at least {need} (max(50, two longest periods)). "
                "Give a longer series, shorter periods, or allow_single_cycle=True."
            )
        for p in pinned:
            if p <= 2 * axis.step:
                raise DPKInputError(
                    f"period {p:g} is <= 2 steps ({2 * axis.step:g}); it cannot be resolved."
                )
            if p > span / 2 and not c.allow_single_cycle:
                raise DPKInputError(
                    f"period {p:g} is longer than half the span ({span / 2:g}); pass allow_single_cycle=True "
                    "to allow it, or give more data."
                )
        linear = [axis.period_to_tau(p) for p in (c.linear_periods or [])]
        for p in linear:
            if not p > 2 * axis.step:
                raise DPKInputError(
                    f"linear period {p:g} is <= 2 steps ({2 * axis.step:g}); it cannot be resolved."
                )
            if any(abs(p - q) <= 1e-9 * p for q in pinned):
                raise DPKInputError(
                    f"period {p:g} is in both periods and linear_periods; give it once (MLP "
                    "features or linear Fourier terms)."
                )
        spread = Y.std(axis=0)
        if np.any(spread == 0):
            j = int(np.argmax(spread == 0))
            raise DPKInputError(
                f"y is constant (column {j} is always {Y[0, j]:g}): there is nothing to forecast "
                "beyond that constant. Use a constant forecast, or check the data."
            )
        self.cov_mean_ = cov.mean(axis=0) if cov.shape[1] else np.zeros(0)
        self.cov_std_ = cov.std(axis=0) if cov.shape[1] else np.zeros(0)
        if np.any(self.cov_std_ == 0):
            j = int(np.argmax(self.cov_std_ == 0))
            raise DPKInputError(
                f"covariate {cov_names[j]!r} is constant on the training data; drop it (it cannot be z-scored)."
            )
        self.center_, self.scale_ = self._scaling(Y)
        Ys = (Y - self.center_) / self.scale_

        sizes = self._blocks(pinned)
        n_found = max(sizes) - len(pinned)
        beta0, hinge0, lin0, init_raw, detrended = self._trend_init(
            tau, Ys, max(span, 1e-9), pinned, linear
        )
        found = (
            # on the detrended series: a trend leaks into the lowest periodogram bins and would
            # otherwise be "found" as a period of about half the span
            initial_periods(
                detrended,
                tau,
                n_found,
                exclude=pinned,
                min_period=2 * axis.step,
                max_period=span / 2,
            )
            if n_found > 0
            else []
        )
        while len(found) < n_found:  # periodogram ran out of peaks: spread the rest
            found.append(span / (3 + len(found)))
        found, snapped = snap_to_harmonics(found, pinned, c.harmonic_tolerance)
        fixed = [True] * len(pinned) + snapped
        omega0, pin_mask, searchable = [], [], []
        for K in sizes:
            per = (pinned + found)[:K]
            omega0.append([2 * math.pi / p for p in per])
            pin_mask.append(fixed[:K])
            searchable.append(
                [i for i in range(len(pinned), K) if not fixed[i]] if c.search_cutoff > 0 else []
            )
        self.axis_ = axis
        self.covariate_names_ = cov_names
        self.output_ = target.output
        self.n_outputs_ = Y.shape[1]
        rng = np.random.default_rng(c.seed)
        gen = torch.Generator().manual_seed(c.seed)

        def build(omegas: list[list[float]]) -> DPKNet:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(c.seed)
                net = DPKNet(
                    omegas,
                    pin_mask,
                    max(span, 1e-9),
                    cov.shape[1],
                    c.hidden,
                    Y.shape[1],
                    c.trend,
                    init_raw,
                    c.n_changepoints,
                    c.changepoint_range,
                    c.changepoint_penalty,
                    [2 * math.pi / p for p in linear],
                    c.linear_order,
                ).to(c.device)
                with torch.no_grad():
                    if beta0 is not None:
                        net.trend_beta.copy_(torch.as_tensor(beta0, dtype=torch.float32))
                    if hinge0 is not None:
                        net.trend_hinge.copy_(torch.as_tensor(hinge0, dtype=torch.float32))
                    if lin0 is not None:
                        net.trend_fourier.copy_(torch.as_tensor(lin0, dtype=torch.float32))
            return net

        self.net_ = build(omega0)
        data = self._tensors(
            tau, (cov - self.cov_mean_) / np.where(self.cov_std_ > 0, self.cov_std_, 1), Ys, w, m
        )
        block = 168.0 if axis.kind == "datetime" else max(7.0, 0.02 * span)
        val_fraction = c.val_fraction
        if c.val_span is not None and c.val == "tail":
            val_fraction = axis.period_to_tau(c.val_span) / max(span, 1e-9)
            if not 0 < val_fraction < 0.5:
                raise DPKInputError(
                    f"val_span={c.val_span!r} is {val_fraction:.0%} of the training span; it must "
                    "be shorter than half of it. Shorten val_span or give more data."
                )
        tr_idx, va_idx = split_validation(len(Ys), tau, c.val, val_fraction, rng, block)
        if len(tr_idx) < 10:
            raise DPKInputError(
                "too few training points left after the validation split; lower val_fraction."
            )
        settings = TrainSettings(
            epochs=c.epochs,
            batch_size=c.batch_size,
            lr=c.lr,
            lr_omega=c.lr_omega,
            weight_decay=c.weight_decay,
            patience=c.patience,
            search_interval=c.search_interval,
            search_cutoff=c.search_cutoff,
            sample_num=c.sample_num,
            heuristic=c.heuristic,
            search_method=c.search_method,
            searchable=searchable,
            progress=c.progress,
            min_epochs=c.min_epochs,
        )
        tr = data.subset(torch.as_tensor(tr_idx))
        va = data.subset(torch.as_tensor(va_idx)) if len(va_idx) else None
        ckpt = self._checkpoint_paths(tau, Ys, cov, w, m)
        with _deterministic(self.config.device), _threads(self.config.num_threads):
            self.history_ = self._train_interruptible(
                tr, va, settings, gen, ckpt, "main", keep_last=False
            )
        self._check_finite()
        self.n_parameters_ = count_parameters(self.net_)
        self.training_range_ = (float(tau[0]), float(tau[-1]))
        self.pit_calibration_ = None
        self.residual_calibration_ = None
        self.scale_calibration_ = None
        self.level_choice_ = None
        if c.level_method == "auto":
            self.level_choice_ = self._select_level_model(tau, cov, Y, tr_idx, va_idx)
        # the validation model's own intercept correction comes from its training part only,
        # so that the calibration below sees the same kind of forecast as the final model
        self._set_level_offset(tau[tr_idx], cov[tr_idx], Y[tr_idx])
        if c.conformal:
            self._calibrate(tau[va_idx], cov[va_idx], Y[va_idx])
        if c.calibration == "scale":
            z = [self._validation_abs_z(tau[va_idx], cov[va_idx], Y[va_idx])]
            z += self._fold_abs_z(kept_times, tau, cov, Y, val_fraction * span)
            self.history_["calibration_blocks"] = [len(z)]
            if len(z) < c.calibration_folds:
                warnings.warn(
                    f"calibration='scale' used {len(z)} of calibration_folds="
                    f"{c.calibration_folds} blocks: the earlier folds leave too little data to "
                    "fit. Lower calibration_folds or val_span to silence this.",
                    stacklevel=2,
                )
            self._set_scale_calibration(np.concatenate(z))
        if c.refit_full and len(va_idx):
            # Retrain from the same initial weights on all data (validation tail included) for
            # the best number of epochs, keeping the periods found. A conformal calibration
            # stays the one measured out of sample on the validation split.
            n_ep = int(self.history_["best_epoch"][0]) + 1
            found_omegas = [b.omegas().detach().cpu().tolist() for b in self.net_.blocks]
            self.net_ = build(found_omegas)
            full = TrainSettings(
                epochs=n_ep,
                batch_size=c.batch_size,
                lr=c.lr,
                lr_omega=c.lr_omega,
                weight_decay=c.weight_decay,
                patience=n_ep + 1,
                search_cutoff=0,
                progress=c.progress,
            )
            gen_full = torch.Generator().manual_seed(c.seed)
            with _deterministic(self.config.device), _threads(self.config.num_threads):
                hist = self._train_interruptible(
                    data, None, full, gen_full, ckpt, "refit", keep_last=True
                )
            self._check_finite()
            self.history_["refit_epochs"] = [n_ep]
            self.history_["refit_train_loss"] = hist["train_loss"]
        self._set_level_offset(tau, cov, Y)
        if ckpt is not None:  # the fit is complete: its checkpoints are no longer needed
            for phase in ("main", "refit"):
                shutil.rmtree(ckpt[0] / phase, ignore_errors=True)
        self.ar_ = None
        if c.residual_ar > 0:
            self._fit_residual_ar(tau, cov, Y)
        return self

    def _checkpoint_paths(self, tau, Ys, cov, w, m) -> tuple[Path, str] | None:
        """(directory, fingerprint of data + settings) when checkpoint_dir is set."""
        if not self.config.checkpoint_dir:
            return None
        h = hashlib.sha256()
        cfg = {
            k: v for k, v in asdict(self.config).items() if k not in ("checkpoint_dir", "progress")
        }
        h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
        for a in (tau, Ys, cov, w, m):
            h.update(np.ascontiguousarray(a).tobytes())
        return Path(self.config.checkpoint_dir), h.hexdigest()[:16]

    def _train_interruptible(self, tr, va, settings, gen, ckpt, phase, keep_last):
        path, fp = (None, "") if ckpt is None else (ckpt[0] / phase, f"{ckpt[1]}-{phase}")
        try:
            return train(
                self.net_,
                self.dist,
                tr,
                va,
                settings,
                gen,
                keep_last=keep_last,
                checkpoint=path,
                fingerprint=fp,
                on_epoch_end=self._on_epoch_end,
            )
        except KeyboardInterrupt:
            if path is not None:
                warnings.warn(
                    f"fit interrupted; the last finished epoch is checkpointed in {path}. Call "
                    "fit again with the same data and settings to resume.",
                    stacklevel=3,
                )
            raise

    _on_epoch_end = None  # test hook: called with the epoch number after each epoch

    @property
    def trend_(self) -> str:
        """The trend in use: the configured one, or the one `trend="auto"` chose."""
        choice = getattr(self, "trend_choice_", None)
        return choice["trend"] if choice else self.config.trend

    def _fit_auto_trend(self, y, times, covariates, sample_weight, mask, sort, series_dim) -> DPK:
        """`trend="auto"`: a rolling-origin choice of the trend (Tashman 2000). For each of
        `trend_candidates` a model with the same settings is fitted on the data before the
        last `val_span` (or `val_fraction`) of the training span and scored by its mean pinball
        loss (q = 0.1..0.9) on that last block; the best candidate is refitted on all data.
        With `val_span` equal to the forecast horizon this asks which trend extrapolates best
        over one horizon, using training data only. The scores are kept in `trend_choice_`."""
        c = self.config
        target = coerce_target(y, times, series_dim)
        Y = target.y
        T0 = len(Y)
        cov, _ = coerce_covariates(covariates, T0)
        raw = target.times if target.times is not None else np.arange(T0, dtype=float)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float).reshape(-1)
        msk = None if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
        order = _time_order(raw) if sort else np.arange(T0)
        axis, tau = TimeAxis.fit(_take(raw, order))
        span = float(tau[-1] - tau[0])
        tail = axis.period_to_tau(c.val_span) if c.val_span is not None else c.val_fraction * span
        if not 0 < tail < span / 2:
            raise DPKInputError(
                f"trend='auto' holds out the last {tail:g} time units of a span of {span:g}; "
                "give val_span (ideally the forecast horizon) shorter than half the data."
            )
        pre = order[tau <= tau[-1] - tail]
        post = order[tau > tau[-1] - tail]
        post = post[np.all(np.isfinite(Y[post].reshape(len(post), -1)), axis=1)]
        if len(post) < 20:
            raise DPKInputError(
                "trend='auto' needs >= 20 observed points in the held-out block; raise val_span."
            )
        base = {**asdict(c), "progress": False, "checkpoint_dir": None}
        scores: dict[str, float] = {}
        for cand in dict.fromkeys(c.trend_candidates):
            sub = DPK.from_config({**base, "trend": cand})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    sub.fit(
                        Y[pre],
                        times=_take(raw, pre),
                        covariates=cov[pre] if cov.shape[1] else None,
                        sample_weight=None if w is None else w[pre],
                        mask=None if msk is None else msk[pre],
                    )
                except DPKInputError:
                    continue  # too little data before the block for this candidate
                fc = sub.predict(
                    times=_take(raw, post), covariates=cov[post] if cov.shape[1] else None
                )
            scores[cand] = _quantile_pinball(fc, Y[post])
        if not scores:
            raise DPKInputError(
                "trend='auto': no candidate could be fitted on the data before the held-out "
                "block; give more data or a shorter val_span."
            )
        best = min(scores, key=scores.__getitem__)
        final = DPK.from_config({**asdict(c), "trend": best})
        final.fit(
            y,
            times=times,
            covariates=covariates,
            sample_weight=sample_weight,
            mask=mask,
            sort=sort,
            series_dim=series_dim,
        )
        self.__dict__.update({k: v for k, v in final.__dict__.items() if k != "config"})
        self.trend_choice_ = {"trend": best, "scores": scores}
        return self

    def _trend_init(
        self,
        tau: np.ndarray,
        Ys: np.ndarray,
        span: float,
        pinned: Sequence[float] = (),
        linear: Sequence[float] = (),
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray]:
        """Least-squares start for the trend (beta, and the hinge slopes of 'piecewise') on the
        location scale, fitted jointly with 3 harmonics of every pinned period so that the
        trend does not absorb seasonality (a partial season at either end would tilt it). The
        hinge slopes get a ridge penalty (the L1 penalty takes over in training). The other
        heads start from the detrended marginal. (Adam at lr 3e-3 would need thousands of steps
        to move the trend far.) Also returns the detrended series (on the link scale), which
        the periodogram initialisation reads. The linear Fourier terms of `linear_periods`
        are part of this fit (and of what is removed)."""
        c = self.config
        degree = {"none": -1, "constant": 0, "linear": 1, "quadratic": 2, "piecewise": 1}
        deg = degree[c.trend]
        if deg < 1 and not linear:
            return None, None, None, self.dist.init_raw(Ys), Ys
        s = tau / span
        cols = [s**p for p in range(deg + 1)]
        n_hinge = 0
        if c.trend == "piecewise":
            from .net import changepoint_grid

            hinges = [
                np.maximum(s - cp, 0.0)
                for cp in changepoint_grid(c.n_changepoints, c.changepoint_range)
            ]
            cols += hinges
            n_hinge = len(hinges)
        n_lin = 0
        if linear:
            from .net import linear_fourier

            lf = (
                linear_fourier(
                    torch.as_tensor(tau, dtype=torch.float64),
                    torch.as_tensor([2 * math.pi / p for p in linear], dtype=torch.float64),
                    c.linear_order,
                )
                .double()
                .numpy()
            )
            cols += list(lf.T)
            n_lin = lf.shape[1]
        n_trend = len(cols)
        step = float(np.median(np.diff(tau))) if len(tau) > 1 else 1.0
        for p in pinned:
            for h in (1, 2, 3):
                if p / h > 2 * step and p <= tau[-1] - tau[0]:
                    cols += [np.cos(2 * np.pi * h * tau / p), np.sin(2 * np.pi * h * tau / p)]
        X = np.stack(cols, axis=1)
        if self.dist.log_link:
            z = np.log(np.maximum(Ys, 0) + 0.1 * np.maximum(Ys.mean(axis=0), 1e-3))
        else:
            z = Ys
        if n_hinge:
            lam = math.sqrt(1e-3 * len(tau))
            pen = np.zeros((n_hinge, X.shape[1]))
            pen[np.arange(n_hinge), deg + 1 + np.arange(n_hinge)] = lam
            X_aug = np.concatenate([X, pen])
            z_aug = np.concatenate([z, np.zeros((n_hinge, z.shape[1]))])
        else:
            X_aug, z_aug = X, z
        coef, *_ = np.linalg.lstsq(X_aug, z_aug, rcond=None)
        fit = X[:, :n_trend] @ coef[:n_trend]
        beta = coef[: deg + 1] if deg >= 0 else None
        hinge = coef[deg + 1 : deg + 1 + n_hinge] if n_hinge else None
        lin = coef[n_trend - n_lin : n_trend] if n_lin else None
        if self.dist.log_link:
            init = self.dist.init_raw(Ys)
            init[0] = init[0] - fit.mean(axis=0)
        else:
            init = self.dist.init_raw(Ys - fit)
            if deg >= 0:
                init[0] = init[0] - (Ys - fit).mean(axis=0)  # the intercept lives in beta
        return beta, hinge, lin, init, z - fit

    def _pinned_periods(self) -> list[float]:
        return [
            2 * math.pi / float(w)
            for b in self.net_.blocks
            for w, pin in zip(b.omegas().tolist(), b.pinned.tolist(), strict=True)
            if pin
        ]

    def _longest_period(self) -> float:
        """The longest pinned period (else the longest one in use): `level_window="auto"`."""
        pinned = self._pinned_periods()
        return max(pinned) if pinned else float(max(self.periods_[0], default=self.axis_.step))

    def _level_method(self) -> tuple[str, float | None]:
        """(method, window in tau units) in use: the config's, or the one `auto` chose."""
        choice = getattr(self, "level_choice_", None)
        if choice is not None:
            return choice["method"], choice["window"]
        return self.config.level_method, self._level_window_tau()

    def _level_candidates(self) -> list[tuple[str, float | None]]:
        """`level_method="auto"`: none; the mean over the longest pinned period (residual
        target only); ETS at the native step (as MSTL's trend forecaster); ETS on blocks of the
        shortest pinned period (block means free of the shorter cycle)."""
        step = float(self.axis_.step)
        pinned = self._pinned_periods()
        out: list[tuple[str, float | None]] = []
        if self.config.level_target == "residual":
            out.append(("none", None))
            out.append(("mean", self._longest_period()))
        out.append(("ets", step))
        if pinned and min(pinned) > 1.5 * step:
            out.append(("ets", min(pinned)))
        return out

    def _select_level_model(self, tau, cov, Y, tr_idx, va_idx) -> dict[str, Any]:
        """Score every candidate level model, fitted on the training part, by its mean
        pinball loss (q = 0.1..0.9) on the validation tail; keep the best."""
        if len(va_idx) < 20:
            raise DPKInputError(
                "level_method='auto' needs >= 20 validation points; raise val_span/val_fraction."
            )
        scores: dict[str, float] = {}
        best: dict[str, Any] | None = None
        for method, window in self._level_candidates():
            self.level_choice_ = {"method": method, "window": window}
            self._set_level_offset(tau[tr_idx], cov[tr_idx], Y[tr_idx])
            params = {k: v[None] for k, v in self._params(tau[va_idx], cov[va_idx]).items()}
            fc = Forecast(self.dist, params, seed=self.config.seed)
            loss = _quantile_pinball(fc, Y[va_idx])
            label = method if window is None else f"{method}@{window:g}"
            scores[label] = float(loss)
            if best is None or loss < best["score"]:
                best = {"method": method, "window": window, "score": float(loss)}
        assert best is not None
        best["scores"] = scores
        return best

    def _level_window_tau(self) -> float | None:
        lw = self.config.level_window
        if lw is None:
            return None
        if lw == "auto":
            return self._longest_period()
        w = self.axis_.period_to_tau(lw)
        if not w > 0:
            raise DPKInputError(f"level_window must be positive, got {lw!r}")
        return float(w)

    def _set_level_offset(self, tau: np.ndarray, cov: np.ndarray, Y: np.ndarray) -> None:
        """Intercept correction (Clements & Hendry): the mean location error of the fitted
        model over the last `level_window` of its training data is added to the location at
        every lead, which puts the forecast back on the recent level. Log-link distributions
        correct the log-mean by log(mean y / mean prediction). Without `level_window` the
        offset is 0."""
        with torch.no_grad():
            self.net_.level_offset.zero_()
        self.level_trend_ = None
        method, window = self._level_method()
        if window is None or method == "none" or len(tau) == 0:
            return
        if method in SMOOTHING_METHODS:
            pred = np.asarray(self.dist.mean(self._scaled_params(tau, cov)), dtype=float)
            resid = (Y - self.center_) / self.scale_ - pred.reshape(len(tau), -1)
            deseason = self.config.level_target == "deseasonalized"
            if deseason:  # the smoothing model sees the trend too (and replaces it ahead)
                resid = resid + self._trend_values(tau)
            self.level_trend_ = fit_block_trend(tau, resid, window, method)
            self.level_trend_.replaces_trend = deseason
            return
        sel = tau >= tau[-1] - window
        params = self._scaled_params(tau[sel], cov[sel])
        pred = np.asarray(self.dist.mean(params), dtype=float).reshape(int(sel.sum()), -1)
        Ys = (Y[sel] - self.center_) / self.scale_
        if self.dist.log_link:
            off = np.log(np.maximum(Ys.mean(axis=0), 1e-9) / np.maximum(pred.mean(axis=0), 1e-9))
        else:
            off = (Ys - pred).mean(axis=0)
        with torch.no_grad():
            self.net_.level_offset.copy_(torch.as_tensor(off, dtype=torch.float32))

    def _scaling(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kind = self.dist.scaling
        d = Y.shape[1]
        if kind == "none":
            return np.zeros(d), np.ones(d)
        if kind == "mean":
            return np.zeros(d), Y.mean(axis=0)
        if self.config.scaling == "robust":
            q25, q50, q75 = np.percentile(Y, [25, 50, 75], axis=0)
            iqr = 0.7413 * (q75 - q25)
            return q50, np.where(iqr > 0, iqr, Y.std(axis=0))
        return Y.mean(axis=0), Y.std(axis=0)

    def _tensors(self, tau, cov_z, Ys, w, m) -> TrainData:
        dev = self.config.device
        return TrainData(
            torch.as_tensor(tau, dtype=torch.float64, device=dev),
            torch.as_tensor(cov_z, dtype=torch.float32, device=dev).reshape(len(tau), -1),
            torch.as_tensor(Ys, dtype=torch.float32, device=dev),
            torch.as_tensor(w, dtype=torch.float32, device=dev),
            torch.as_tensor(m, dtype=torch.bool, device=dev),
        )

    def _check_finite(self) -> None:
        for name, p in self.net_.state_dict().items():
            if torch.is_floating_point(p) and not torch.isfinite(p).all():
                raise DPKInputError(
                    f"parameter {name} is not finite after training; check the data scale."
                )

    # ------------------------------------------------------------------ predict
    def _require_fitted(self) -> None:
        if self.net_ is None:
            raise DPKNotFittedError("this DPK is not fitted yet; call .fit(y, ...) first.")

    def _scaled_params(self, tau: np.ndarray, cov: np.ndarray) -> dict[str, np.ndarray]:
        cov_z = (cov - self.cov_mean_) / np.where(self.cov_std_ > 0, self.cov_std_, 1)
        dev = self.config.device
        with torch.no_grad():
            self.net_.eval()
            raw = self.net_(
                torch.as_tensor(tau, dtype=torch.float64, device=dev),
                torch.as_tensor(cov_z, dtype=torch.float32, device=dev).reshape(len(tau), -1),
            )
            params = self.dist.link(raw)
        out = {k: v.double().cpu().numpy() for k, v in params.items()}
        trend = getattr(self, "level_trend_", None)
        if trend is not None:  # additive local level/trend of the residuals (level_method)
            loc = self.dist.param_names[0]
            corr = trend.correction(tau)
            if trend.replaces_trend:  # beyond the training data the smoothing forecast
                ahead = (np.asarray(tau, dtype=float) > trend.end)[:, None]  # replaces the trend
                corr = np.where(ahead, corr - self._trend_values(tau), 0.0)
            out[loc] = out[loc] + corr.reshape(out[loc].shape)
            scale = LOCATION_SCALE.get(self.dist.name)
            if scale is not None and self.config.level_uncertainty:
                # the level forecast's error is independent of the noise: add the variances
                v = trend.variance(tau).reshape(out[scale].shape)
                out[scale] = np.sqrt(out[scale] ** 2 + v)
        return out

    def _trend_values(self, tau: np.ndarray) -> np.ndarray:
        """(len(tau), d) the explicit trend term (location scale, scaled units)."""
        with torch.no_grad():
            t = torch.as_tensor(np.asarray(tau, dtype=float), dtype=torch.float64)
            return self.net_.trend_term(t.to(self.config.device)).double().cpu().numpy()

    def _params(self, tau: np.ndarray, cov: np.ndarray) -> dict[str, np.ndarray]:
        return self.dist.unscale(self._scaled_params(tau, cov), self.center_, self.scale_)

    def _resolve_times(self, times: Any, horizon: int | None) -> tuple[np.ndarray, Any]:
        if times is None and horizon is None:
            raise DPKInputError(
                "pass the forecast times (times=...) or a number of steps (horizon=...)."
            )
        if times is not None:
            raw = times.index if hasattr(times, "columns") else times
            tau = self.axis_.to_tau(raw)
            return tau, self.axis_.from_tau(tau)
        tau = self.axis_.future_tau(int(horizon))
        return tau, self.axis_.from_tau(tau)

    def predict(
        self,
        times: Any = None,
        horizon: int | None = None,
        covariates: Any = None,
        scenarios: Sequence[Any] | None = None,
    ) -> Forecast:
        """Predictive distribution at `times` (or the `horizon` steps after training).

        `scenarios`: a list of covariate sets; the forecast is their uniform mixture.
        """
        self._require_fitted()
        tau, index = self._resolve_times(times, horizon)
        if scenarios is not None:
            if covariates is not None:
                raise DPKInputError("pass either covariates or scenarios, not both.")
            sets = [coerce_covariates(s, len(tau), self.covariate_names_)[0] for s in scenarios]
            if not sets:
                raise DPKInputError("scenarios is empty; pass at least one covariate set.")
        else:
            sets = [coerce_covariates(covariates, len(tau), self.covariate_names_ or None)[0]]
        per = [self._params(tau, cs) for cs in sets]
        params = {k: np.stack([p[k] for p in per]) for k in per[0]}
        o = self.output_
        output = OutputSpec(o.kind, index, o.columns, o.series_dim, o.name)
        shift = var = None
        if self.ar_ is not None:
            shift, var = self._ar_adjustment(tau)
        cal = getattr(self, "scale_calibration_", None)
        if cal is not None and self.dist.probabilistic and self._exact_scale(shift):
            # Normal: u -> Phi(Phi^-1(u) / s) is exactly sigma -> s sigma (no tail clipping)
            params = {**params, "sigma": params["sigma"] * np.asarray(cal)[None, None, :]}
        elif cal is not None and self.dist.probabilistic:
            # u -> Phi(Phi^-1(u) / s): the normal scores of the PIT are scaled by 1/s
            if shift is None:
                shift = np.zeros((len(tau), self.n_outputs_))
                var = np.ones((len(tau), self.n_outputs_))
            var = var * np.asarray(cal)[None, :] ** 2
        return Forecast(
            self.dist,
            params,
            output,
            pit_calibration=self.pit_calibration_ if self.dist.probabilistic else None,
            residual_calibration=self.residual_calibration_,
            ar_shift=shift,
            ar_var=var,
            seed=self.config.seed,
        )

    def forecast_transform(self) -> str | None:
        """The setting that makes this model's forecasts a transformed distribution (PIT
        recalibration, residual AR shift, or a scale calibration applied in normal scores),
        or None when they are the distribution's own parameters. Known from the configuration,
        before any fit: `DPKEnsemble` refuses such members up front."""
        c = self.config
        if c.conformal:
            return "conformal=True"
        if c.residual_ar > 0:
            return f"residual_ar={c.residual_ar}"
        if c.calibration == "scale" and self.dist.name != "normal":
            return f"calibration='scale' with distribution={self.dist.name!r}"
        return None

    def _exact_scale(self, shift: Any) -> bool:
        return self.dist.name == "normal" and shift is None and self.pit_calibration_ is None

    # shortcuts ------------------------------------------------------------------------
    def quantiles(self, q: Sequence[float] = DEFAULT_QUANTILES, **predict_kwargs: Any):
        return self.predict(**predict_kwargs).quantile(q)

    def sample(self, n: int = 100, seed: int | None = None, **predict_kwargs: Any):
        return self.predict(**predict_kwargs).sample(n, seed)

    def cdf(self, y: Any, **predict_kwargs: Any):
        return self.predict(**predict_kwargs).cdf(y)

    def pit(self, y: Any, **predict_kwargs: Any):
        return self.predict(**predict_kwargs).pit(y)

    def score(
        self,
        y: Any,
        metrics: Sequence[str] = ("pinball", "crps", "coverage80", "nll"),
        **predict_kwargs: Any,
    ) -> dict[str, float]:
        """Mean scores of the forecast at the given times against observations y."""
        from .metrics import score_forecast

        return score_forecast(self.predict(**predict_kwargs), y, metrics)

    # ------------------------------------------------------------------ calibration extras
    def _calibrate(self, tau: np.ndarray, cov: np.ndarray, Y: np.ndarray) -> None:
        if len(tau) < 20:
            raise DPKInputError("conformal=True needs >= 20 validation points; raise val_fraction.")
        params = {k: v[None] for k, v in self._params(tau, cov).items()}
        fc = Forecast(self.dist, params, seed=self.config.seed)
        if self.dist.probabilistic:
            self.pit_calibration_ = np.sort(np.asarray(fc.pit(Y)).reshape(len(Y), -1), axis=0)
        else:
            mu = params[self.dist.param_names[0]][0]
            self.residual_calibration_ = np.sort(Y - mu, axis=0)

    def _validation_abs_z(self, tau: np.ndarray, cov: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """|Phi^-1(PIT)| of held-out points under the current (validation) model."""
        from scipy import special

        if len(tau) < 20:
            raise DPKInputError(
                "calibration='scale' needs >= 20 validation points; raise val_span/val_fraction."
            )
        if not self.dist.probabilistic:
            raise DPKInputError(
                "calibration='scale' needs a probabilistic distribution (not 'mse')."
            )
        params = {k: v[None] for k, v in self._params(tau, cov).items()}
        u = np.asarray(Forecast(self.dist, params, seed=self.config.seed).pit(Y)).reshape(
            len(Y), -1
        )
        return np.abs(special.ndtri(np.clip(u, 1e-9, 1 - 1e-9)))

    def _fold_abs_z(
        self, times: Any, tau: np.ndarray, cov: np.ndarray, Y: np.ndarray, block: float
    ) -> list[np.ndarray]:
        """Extra calibration blocks: for k = 1..calibration_folds-1 a model with the same
        settings is fitted on the data before end - (k+1) * block... end - k * block and
        scored on that block (rolling origins inside the training data). Folds too short to
        fit are skipped."""
        c = self.config
        out: list[np.ndarray] = []
        if c.calibration_folds <= 1:
            return out
        aux_cfg = {
            **asdict(c),
            "calibration": "none",
            "calibration_folds": 1,
            "progress": False,
            "checkpoint_dir": None,
        }
        for k in range(1, c.calibration_folds):
            end = tau[-1] - k * block
            fit_sel = tau <= end
            test_sel = (tau > end) & (tau <= end + block)
            if test_sel.sum() < 20:
                continue
            cv = cov if cov.shape[1] else None
            try:
                aux = DPK.from_config(aux_cfg)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    aux.fit(
                        Y[fit_sel],
                        times=times[fit_sel],
                        covariates=None if cv is None else cv[fit_sel],
                    )
                    fc = aux.predict(
                        times=times[test_sel], covariates=None if cv is None else cv[test_sel]
                    )
            except DPKInputError:
                continue
            u = np.asarray(fc.pit(Y[test_sel])).reshape(int(test_sel.sum()), -1)
            out.append(np.abs(special_ndtri(np.clip(u, 1e-9, 1 - 1e-9))))
        return out

    def _set_scale_calibration(self, abs_z: np.ndarray) -> None:
        """Scale calibration from held-out normal scores z = Phi^-1(PIT):
        s = q_level(|z|) / Phi^-1((1 + level) / 2), so that the central `calibration_level`
        interval of the transformed forecast u -> Phi(Phi^-1(u) / s) covers the held-out
        blocks at the nominal rate. With blocks as long as the forecast horizon, s absorbs the
        growth of forecast errors with lead (trend drift, level shifts) that the in-sample
        likelihood cannot see."""
        level = self.config.calibration_level
        s = np.quantile(abs_z, level, axis=0) / special_ndtri(0.5 + level / 2)
        self.scale_calibration_ = np.clip(s, 1e-2, 1e2)

    def _fit_residual_ar(self, tau: np.ndarray, cov: np.ndarray, Y: np.ndarray) -> None:
        """Yule-Walker AR(p <= 3) on the normal scores of the in-sample PIT (per series)."""
        from scipy import special

        p = int(min(self.config.residual_ar, 3))
        if not self.dist.probabilistic:
            raise DPKInputError("residual_ar needs a probabilistic distribution (not 'mse').")
        params = {k: v[None] for k, v in self._params(tau, cov).items()}
        u = np.asarray(Forecast(self.dist, params, seed=self.config.seed).pit(Y)).reshape(
            len(Y), -1
        )
        z = special.ndtri(np.clip(u, 1e-6, 1 - 1e-6))
        phis, sig2 = [], []
        for j in range(z.shape[1]):
            x = z[:, j] - z[:, j].mean()
            acov = np.array([np.dot(x[: len(x) - k], x[k:]) / len(x) for k in range(p + 1)])
            R = np.array([[acov[abs(a - b)] for b in range(p)] for a in range(p)])
            phi = np.linalg.solve(R + 1e-9 * np.eye(p), acov[1 : p + 1])
            phis.append(phi)
            sig2.append(max(acov[0] - phi @ acov[1 : p + 1], 1e-9))
        self.ar_ = {
            "phi": np.array(phis),
            "sigma2": np.array(sig2),
            "last": z[-p:].T.copy(),
            "end": float(tau[-1]),
        }

    def _ar_adjustment(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi, sig2, last = self.ar_["phi"], self.ar_["sigma2"], self.ar_["last"]
        d, p = phi.shape
        leads = np.maximum(np.round((tau - self.ar_["end"]) / self.axis_.step).astype(int), 1)
        hmax = int(min(leads.max(), 100_000))
        m = np.zeros((hmax + 1, d))
        v = np.zeros((hmax + 1, d))
        for j in range(d):
            hist = list(last[j])
            psi = [1.0]
            for h in range(1, hmax + 1):
                nxt = float(np.dot(phi[j], hist[::-1][:p]))
                hist.append(nxt)
                m[h, j] = nxt
                if h > 1:
                    psi.append(float(sum(phi[j][i] * psi[-1 - i] for i in range(min(p, len(psi))))))
                v[h, j] = sig2[j] * float(np.sum(np.square(psi)))
            # stationary variance: normalise so v_h -> 1
            psi_inf = psi + []
            for _ in range(200):
                psi_inf.append(
                    float(sum(phi[j][i] * psi_inf[-1 - i] for i in range(min(p, len(psi_inf)))))
                )
            vinf = sig2[j] * float(np.sum(np.square(psi_inf)))
            m[:, j] /= math.sqrt(vinf)
            v[:, j] /= vinf
        h = np.minimum(leads, hmax)
        return m[h], np.maximum(v[h], 1e-6)

    # ------------------------------------------------------------------ introspection
    @property
    def periods_(self) -> list[list[float]]:
        """Current periods per head, in tau units (hours for datetimes, steps/units otherwise)."""
        self._require_fitted()
        return [
            (2 * math.pi / b.omegas().detach().cpu().numpy()).tolist() for b in self.net_.blocks
        ]

    @property
    def linear_periods_(self) -> list[float]:
        """The `linear_periods` in tau units (their Fourier terms enter the location linearly)."""
        self._require_fitted()
        return (2 * math.pi / self.net_.linear_omega.cpu().numpy()).tolist()

    def update(self, y: Any, times: Any = None, covariates: Any = None, epochs: int = 20) -> DPK:
        """Warm fine-tune on new observations (same scaling, no frequency search).

        The level model (`level_method`), the scale calibration and the residual AR stay those
        fitted at the end of `fit`: their leads still count from the original training end, so
        their uncertainty keeps growing over the updated span. Refit to renew them."""
        self._require_fitted()
        if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
            raise DPKInputError(f"epochs must be an integer >= 1, got {epochs!r}.")
        target = coerce_target(y, times)
        T = len(target.y)
        cov, _ = coerce_covariates(covariates, T, self.covariate_names_ or None)
        raw_times = (
            target.times
            if target.times is not None
            else self.axis_.end + self.axis_.step * np.arange(1, T + 1) + self.axis_.t0
        )
        tau = self.axis_.to_tau(raw_times)
        check_monotonic(tau, raw_times)
        Y, keep = drop_missing(target.y)
        tau, cov = tau[keep], cov[keep]
        self.dist.check_support(Y)
        Ys = (Y - self.center_) / self.scale_
        data = self._tensors(
            tau,
            (cov - self.cov_mean_) / np.where(self.cov_std_ > 0, self.cov_std_, 1),
            Ys,
            np.ones(len(Y)),
            np.ones(len(Y), bool),
        )
        c = self.config
        s = TrainSettings(
            epochs=epochs,
            batch_size=c.batch_size,
            lr=c.lr,
            lr_omega=0.0,
            weight_decay=c.weight_decay,
            patience=epochs + 1,
            search_cutoff=0,
        )
        with _deterministic(self.config.device), _threads(self.config.num_threads):
            train(self.net_, self.dist, data, None, s, torch.Generator().manual_seed(c.seed))
        for b in self.net_.blocks:
            b.delta.requires_grad_(True)
        self.axis_.end = max(self.axis_.end, float(tau[-1]))
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path: Any, overwrite: bool = False) -> None:
        from .io import save_model

        self._require_fitted()
        save_model(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: Any) -> DPK:
        from .io import load_model

        return load_model(path)

    def __repr__(self) -> str:
        c = self.config
        return f"DPK(distribution={c.distribution!r}, periods={c.periods}, n_search={c.n_search}, epochs={c.epochs})"
