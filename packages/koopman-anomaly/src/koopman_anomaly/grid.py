"""Grid path for (time, lat, lon) fields.

Two routes:

- PCA (`pca_fit`, `pca_zscores`): X(time, pixel) minus the per-pixel training mean, rank-r
  randomised SVD, one forecaster per score series, and per-pixel predictive variance
  v_x = sum_j U_pj^2 sigma_aj^2 + sigma_res^2(p).
- Per-pixel, dask-chunked (`detect_grid`): every pixel gets a least-squares harmonic forecast
  (shared design matrix, so a chunk is a few matrix products), standardised residuals, trailing
  windows and a HAC null from its calibration period; p-values at decision times come back per
  chunk and are adjusted (BY/BH) across all pixels and decisions. Chunks span the full time
  axis ({time: -1, lat: 90, lon: 180}); inputs chunked along time are rechunked with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .decide import CORRECTIONS, adjust
from .errors import ConfigError
from .forecast import make_forecaster, parse_period_hours
from .io import check_hourly
from .null import SIDES, HACNull
from .windows import decision_index, select_stat, window_stats


# ----------------------------------------------------------------------------- PCA route
def randomized_svd(
    X: np.ndarray, rank: int, oversample: int = 10, n_iter: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Halko-Martinsson-Tropp randomised SVD with power iterations (QR-stabilised)."""
    rng = np.random.default_rng(seed)
    m, n = X.shape
    ell = min(rank + oversample, min(m, n))
    Q = np.linalg.qr(X @ rng.standard_normal((n, ell)))[0]
    for _ in range(n_iter):
        Q = np.linalg.qr(X.T @ Q)[0]
        Q = np.linalg.qr(X @ Q)[0]
    B = Q.T @ X
    Ub, s, Vt = np.linalg.svd(B, full_matrices=False)
    U = Q @ Ub
    return U[:, :rank], s[:rank], Vt[:rank]


@dataclass
class PCAModel:
    rank: int
    mean: np.ndarray  # (pixel,)
    weights: np.ndarray  # (pixel,) sqrt(cos lat) or ones
    modes: np.ndarray  # (pixel, rank): U in pixel space (weighted)
    singular_values: np.ndarray
    explained_variance: float
    sigma_res: np.ndarray  # (pixel,) training reconstruction residual SD (unweighted units)
    forecasters: list[Any] = field(default_factory=list)


def pca_fit(
    field_tp: np.ndarray,
    times: pd.DatetimeIndex,
    train: np.ndarray,
    rank: int = 20,
    lat_weights: np.ndarray | None = None,
    forecaster: str = "harmonic",
    forecaster_options: dict[str, Any] | None = None,
    seed: int = 0,
    use_dask: bool = False,
) -> PCAModel:
    """Fit the PCA route on X(time, pixel) (already transformed, e.g. log). NaN are not allowed
    in training rows of the PCA route (fill or mask pixels first)."""
    Y = np.asarray(field_tp, dtype=float)
    Ytr = Y[train]
    if not np.isfinite(Ytr).all():
        raise ConfigError(
            "the PCA route needs complete training rows; drop or fill NaN pixels first."
        )
    mean = Ytr.mean(0)
    w = np.ones(Y.shape[1]) if lat_weights is None else np.asarray(lat_weights, dtype=float)
    Xtr = (Ytr - mean) * w
    rank = min(rank, min(Xtr.shape) - 1)
    if use_dask:
        import dask.array as da

        dX = da.from_array(
            Xtr.T, chunks=(max(1, Xtr.shape[1] // 4), -1)
        )  # pixel x time, chunked on pixels
        u, s, vt = da.linalg.svd_compressed(dX, k=rank, n_power_iter=4, seed=seed, compute=False)
        u, s, vt = da.compute(u, s, vt)
        modes, sv = np.asarray(u), np.asarray(s)
    else:
        _, sv, Vt = randomized_svd(Xtr, rank, seed=seed)
        modes = Vt.T  # (pixel, rank)
    explained = float(np.sum(sv**2) / np.sum(Xtr**2))
    scores_tr = Xtr @ modes
    resid = (Xtr - scores_tr @ modes.T) / w
    sigma_res = resid.std(0)
    opts = dict(forecaster_options or {})
    fcs = []
    tsel = np.flatnonzero(train)
    for j in range(rank):
        fc = make_forecaster(forecaster, **opts)
        fc.fit(scores_tr[:, j], times[tsel])
        fcs.append(fc)
    return PCAModel(rank, mean, w, modes, sv, explained, sigma_res, fcs)


def pca_zscores(
    model: PCAModel, field_tp: np.ndarray, times: pd.DatetimeIndex
) -> dict[str, np.ndarray]:
    """Per-pixel mu, sigma and z from the score forecasts; also standardised score residuals."""
    Y = np.asarray(field_tp, dtype=float)
    mu_a = np.empty((len(times), model.rank))
    sd_a = np.empty((len(times), model.rank))
    for j, fc in enumerate(model.forecasters):
        pr = fc.predict(times)
        mu_a[:, j], sd_a[:, j] = pr.mean(), pr.std()
    U = model.modes / model.weights[:, None]
    mu = model.mean + mu_a @ U.T
    var = (sd_a**2) @ (U**2).T + model.sigma_res**2
    sigma = np.sqrt(var)
    z = (Y - mu) / sigma
    X = np.nan_to_num((Y - model.mean) * model.weights)
    a = X @ model.modes
    za = (a - mu_a) / sd_a
    return {"mu": mu, "sigma": sigma, "z": z, "score_z": za}


def hotelling_scores(
    score_z_calib: np.ndarray, score_z: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hotelling-type test on standardised score residuals: T^2 = sum_j (HAC-standardised window
    mean of score j)^2 (scores are orthogonal by construction); p from chi^2_r."""
    from scipy import stats as sps

    h = HACNull().fit(score_z_calib, k)
    wm = window_stats(score_z, k).mean
    S = h.standardise(wm)
    T2 = np.sum(S**2, axis=1)
    return T2, sps.chi2.sf(T2, S.shape[1])


# ----------------------------------------------------------------------- per-pixel route
@dataclass
class GridConfig:
    periods: tuple[str, ...] = ("24h", "168h", "8766h")
    harmonics: tuple[int, ...] = (2, 2, 1)
    trend: bool = False
    window: int = 168
    side: str = "lower"
    alpha: float = 0.01
    correction: str = "by"
    transform: str = "none"  # "log" if the field is a raw concentration


def _design(hours: np.ndarray, cfg: GridConfig) -> np.ndarray:
    cols = [np.ones_like(hours)]
    if cfg.trend:
        cols.append(hours / max(hours.max(), 1.0))
    for per, nh in zip(cfg.periods, cfg.harmonics, strict=True):
        w = 2 * np.pi / parse_period_hours(per)
        for m in range(1, nh + 1):
            cols += [np.cos(m * w * hours), np.sin(m * w * hours)]
    return np.column_stack(cols)


def pixel_pvalues(
    y: np.ndarray,
    X: np.ndarray,
    train: np.ndarray,
    calib: np.ndarray,
    dec: np.ndarray,
    cfg: GridConfig,
    batch: int = 512,
) -> np.ndarray:
    """y: (..., time) block. Returns (..., 2, n_dec): window statistic and p-value per pixel.

    Works pixel-major (time on the contiguous last axis) in batches of `batch` pixels, so a
    task's memory stays ~6 x T x batch x 8 B. Only the windows ending at the decision times
    are summed (a gather of n_dec x k points per pixel), not the full hourly window series.
    """
    lead = y.shape[:-1]
    T = y.shape[-1]
    flat = np.asarray(y).reshape(-1, T)
    out = np.empty((flat.shape[0], 2, len(dec)))
    k = cfg.window
    # (n_dec, k) time indices of each trailing window (t-k, t]; negative ones are outside
    widx = np.asarray(dec)[:, None] - np.arange(k)[None, :]
    inside = widx >= 0
    widx = np.where(inside, widx, 0)
    Xtr = X[train]
    pinv_tr = np.linalg.pinv(Xtr)  # (p, n_train)
    for s0 in range(0, flat.shape[0], batch):
        Y = flat[s0 : s0 + batch].astype(np.float64)  # (npix, time), contiguous in time
        if cfg.transform == "log":
            with np.errstate(invalid="ignore", divide="ignore"):
                Y = np.log(np.where(Y > 0, Y, np.nan))
        Ytr = Y[:, train]
        finite = np.isfinite(Ytr)
        if finite.all():
            beta = Ytr @ pinv_tr.T  # (npix, p)
        else:  # masked pixels: solve per pixel
            beta = np.zeros((Y.shape[0], X.shape[1]))
            for j in range(Y.shape[0]):
                ok = finite[j]
                if ok.sum() > X.shape[1] + 10:
                    beta[j] = np.linalg.lstsq(Xtr[ok], Ytr[j, ok], rcond=None)[0]
                else:
                    beta[j] = np.nan
        del Ytr
        r = Y - beta @ X.T
        del Y
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
            sd = np.nanstd(r[:, train], axis=1)
        z = r / np.where(sd > 0, sd, np.nan)[:, None]
        del r
        null = HACNull().fit(z[:, calib].T, k)
        zw = z[:, widx]  # (npix, n_dec, k)
        ok = np.isfinite(zw) & inside
        n = ok.sum(-1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = np.where(n / k >= 0.75, np.where(ok, zw, 0.0).sum(-1) / n, np.nan)
        p = null.pvalue(stat.T, cfg.side, count=n.T)  # (n_dec, npix)
        out[s0 : s0 + batch, 0] = stat
        out[s0 : s0 + batch, 1] = p.T
    return out.reshape(*lead, 2, len(dec))


def detect_grid(
    da: xr.DataArray,
    train: tuple[str, str],
    calib: tuple[str, str],
    monitor: tuple[str, str],
    cfg: GridConfig | None = None,
    chunks: dict[str, int] | None = None,
) -> xr.Dataset:
    """Per-pixel detection through dask (lazy). Returns a lazy Dataset over (decision_time,
    lat, lon) with stat and p_value; call `finalize_grid` to compute and adjust across pixels."""
    cfg = cfg or GridConfig()
    if set(da.dims) != {"time", "lat", "lon"}:
        raise ConfigError(f"detect_grid needs (time, lat, lon); got {da.dims}.")
    da = da.transpose("time", "lat", "lon")
    chunks = chunks or {"time": -1, "lat": 90, "lon": 180}
    if da.chunks is not None:
        tchunks = da.chunksizes.get("time", ())
        if len(tchunks) > 1:
            warnings.warn(
                f"input is chunked along time ({len(tchunks)} chunks); rechunking to one time chunk "
                f"per pixel block ({chunks}). This holds T x {chunks['lat']} x {chunks['lon']} values per task.",
                stacklevel=2,
            )
        da = da.chunk(chunks)
    else:
        da = da.chunk(chunks)
    times = pd.DatetimeIndex(da["time"].values)
    check_hourly(times)  # windows count steps: a gap would stretch them
    hours = np.asarray((times - times[0]) / pd.Timedelta("1h"), dtype=float)
    X = _design(hours, cfg)

    def mask(p: tuple[str, str], name: str) -> np.ndarray:
        try:
            a, b = pd.Timestamp(p[0]), pd.Timestamp(p[1])
        except (TypeError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"{name} period {p!r} is not a (start, end) pair of dates ({exc}); give e.g. "
                "('2019-01-01', '2019-06-30')."
            ) from None
        m = np.asarray((times >= a) & (times <= b + pd.Timedelta("23h59min")))
        if not m.any():
            raise ConfigError(
                f"no data inside the {name} period {p!r}; data span {times[0]}..{times[-1]}."
            )
        return m

    if cfg.side not in SIDES:
        raise ConfigError(f"side must be one of {SIDES}; got {cfg.side!r}.")
    if not 0 < cfg.alpha <= 0.5:
        raise ConfigError(f"alpha must lie in (0, 0.5], got {cfg.alpha}.")
    grid_corrections = tuple(c for c in CORRECTIONS if c != "maxt")  # maxt needs stations
    if cfg.correction not in grid_corrections:
        raise ConfigError(
            f"grid correction must be one of {grid_corrections}; got {cfg.correction!r}."
        )
    tr, ca, mo = mask(train, "train"), mask(calib, "calib"), mask(monitor, "monitor")
    if (tr & ca).any() or (ca & mo).any() or (tr & mo).any():
        raise ConfigError("train, calib and monitor periods must be disjoint.")
    if ca.sum() < cfg.window:
        raise ConfigError(
            f"window k={cfg.window} is longer than the calibration span ({int(ca.sum())} steps)."
        )
    mon_idx = np.flatnonzero(mo)
    dec = decision_index(len(times), int(mon_idx[0]), int(mon_idx[-1]) + 1, cfg.window)
    if not dec.size:
        raise ConfigError(
            f"the monitoring period holds {mon_idx.size} steps, fewer than the window "
            f"k={cfg.window}, so no decision can be made; lengthen it or shorten the window."
        )
    res = xr.apply_ufunc(
        pixel_pvalues,
        da,
        kwargs={"X": X, "train": tr, "calib": ca, "dec": dec, "cfg": cfg},
        input_core_dims=[["time"]],
        output_core_dims=[["quantity", "decision_time"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"quantity": 2, "decision_time": len(dec)}},
    )
    out = xr.Dataset(
        {"stat": res.isel(quantity=0), "p_value": res.isel(quantity=1)},
        coords={"decision_time": times[dec].values},
    ).transpose("decision_time", "lat", "lon")
    out.attrs.update(
        {
            "window_hours": cfg.window,
            "alpha": cfg.alpha,
            "side": cfg.side,
            "correction": cfg.correction,
            "null": "hac",
            "forecaster": "per-pixel harmonic LSQ",
        }
    )
    return out


def finalize_grid(ds: xr.Dataset, cfg: GridConfig | None = None) -> xr.Dataset:
    """Compute (if lazy), adjust p across all pixels and decisions, and flag."""
    cfg = cfg or GridConfig()
    ds = ds.compute()
    q = adjust(ds["p_value"].values, cfg.correction)
    sgn = -1 if cfg.side == "lower" else 1
    flag = np.where(np.isfinite(q) & (q <= cfg.alpha), sgn, 0).astype(np.int8)
    ds["q_value"] = (ds["p_value"].dims, q, {"long_name": f"{cfg.correction}-adjusted p-value"})
    ds["flag"] = (
        ds["p_value"].dims,
        flag,
        {"flag_values": "-1 0 1", "flag_meanings": "low none high"},
    )
    ds["flag_fraction"] = ds["flag"].astype(bool).mean("decision_time")
    ds["flag_fraction"].attrs["long_name"] = "fraction of decision windows flagged"
    ds["stat"].attrs["long_name"] = "trailing window mean of z at decision time"
    ds["p_value"].attrs["long_name"] = "HAC-null p-value"
    ds.attrs["Conventions"] = "CF-1.8"
    return ds


def grid_stats_eager(
    values: np.ndarray,
    times: pd.DatetimeIndex,
    train: np.ndarray,
    calib: np.ndarray,
    dec: np.ndarray,
    cfg: GridConfig,
) -> np.ndarray:
    """The same per-pixel computation without dask, for equivalence checks."""
    hours = np.asarray((times - times[0]) / pd.Timedelta("1h"), dtype=float)
    X = _design(hours, cfg)
    v = np.moveaxis(np.asarray(values), 0, -1)  # (lat, lon, time)
    return pixel_pvalues(v, X, train, calib, dec, cfg)


def pixel_windows(z: np.ndarray, k: int, stat: str = "mean") -> np.ndarray:
    """Window statistic of a (time, lat, lon) z field, vectorised over pixels."""
    T = z.shape[0]
    return select_stat(window_stats(z.reshape(T, -1), k), stat).reshape(z.shape)
