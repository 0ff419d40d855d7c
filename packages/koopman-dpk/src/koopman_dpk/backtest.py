"""Rolling-origin backtests (expanding or fixed window, optional gap), resumable.

For each origin, every model is refitted on the data before `origin - gap` and scored on the
test span [origin, origin + horizon).  One JSON result file per origin and config hash is
written atomically to `out_dir`; a rerun skips finished origins, and a changed config hash
refuses to resume unless `force=True`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import BrokenProcessPool
from tqdm.auto import tqdm

from .errors import DPKInputError
from .forecast import DEFAULT_QUANTILES
from .metrics import QCRPS_LEVELS, coverage, crps, interval_score, pinball, qcrps

GEFCOM_PRESET = {
    "window": pd.DateOffset(years=11),
    "gap": pd.Timedelta(days=52),
    "horizon": "month",
}


def monthly_origins(index: pd.DatetimeIndex, start: str, end: str) -> list[pd.Timestamp]:
    """First instants of each calendar month in [start, end] that lie inside the index."""
    months = pd.date_range(pd.Timestamp(start).to_period("M").to_timestamp(), end, freq="MS")
    return [m for m in months if index[0] < m <= index[-1]]


def evaluation_span(origin: pd.Timestamp, horizon: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[origin, end): 'month' is the calendar month starting at origin (28-31 days)."""
    if horizon == "month":
        return origin, origin + pd.offsets.MonthBegin(1)
    if isinstance(horizon, str):
        try:
            return origin, origin + pd.Timedelta(horizon)
        except ValueError as exc:
            raise DPKInputError(
                f"cannot parse horizon {horizon!r}; use 'month' or a duration like '14D' or '728D'."
            ) from exc
    if isinstance(horizon, (pd.Timedelta, pd.DateOffset)):
        return origin, origin + horizon
    raise DPKInputError("horizon must be 'month', a duration string like '14D', or a Timedelta")


def gefcom_loss_weights(times: pd.DatetimeIndex, test_start: pd.Timestamp) -> np.ndarray:
    """(1 + 0.4 cos(2 pi (doy - doy_test) / 365.24)) * (sigmoid((t - 0.75 T) / 0.1 T) + 0.747)."""
    doy = times.dayofyear.to_numpy(float)
    season = 1 + 0.4 * np.cos(2 * np.pi * (doy - test_start.dayofyear) / 365.24)
    t = np.arange(len(times), dtype=float)
    T = max(len(times), 1)
    recency = 1 / (1 + np.exp(-(t - 0.75 * T) / (0.1 * T))) + 0.747
    return season * recency


def config_hash(config: Mapping[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _atomic_json(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, default=float)
    os.replace(tmp, path)


def _score_quantiles(y: np.ndarray, q99: np.ndarray) -> dict[str, float]:
    """Pinball (0.1..0.9), QCRPS, 50/80/90% coverage and the 80% interval score from 99 quantiles."""
    idx = {round(float(lv), 2): i for i, lv in enumerate(QCRPS_LEVELS)}
    deciles = q99[:, [idx[round(q, 2)] for q in DEFAULT_QUANTILES]]
    out = {
        "pinball": pinball(y, deciles, DEFAULT_QUANTILES),
        "qcrps": qcrps(y, q99),
        "mae": float(np.mean(np.abs(y - q99[:, idx[0.5]]))),
    }
    for level, (lo, hi) in {50: (0.25, 0.75), 80: (0.1, 0.9), 90: (0.05, 0.95)}.items():
        out[f"coverage{level}"] = coverage(y, q99[:, idx[lo]], q99[:, idx[hi]])
    out["interval_score80"] = interval_score(y, q99[:, idx[0.1]], q99[:, idx[0.9]], 0.2)
    return out


def _origin_path(out: Path | None, origin: pd.Timestamp, h: str) -> Path | None:
    return None if out is None else out / f"origin-{origin:%Y%m%dT%H%M}-{h}.json"


def _run_origin(
    origin: pd.Timestamp,
    models: Mapping[str, Callable[[], Any]],
    y: pd.Series,
    covariates: pd.DataFrame | None,
    horizon: Any,
    gap: pd.Timedelta,
    window: Any,
    fit_kwargs: Callable[[pd.DatetimeIndex, pd.Timestamp], dict[str, Any]] | None,
) -> tuple[list[dict[str, Any]] | None, Any]:
    """Fit and score every model at one origin: (rows, DPK's forecast or None); rows is None
    when the origin has no test data or under 50 training points."""
    start, end = evaluation_span(origin, horizon)
    train_end = origin - gap
    train_mask = y.index < train_end
    if window is not None:
        w = pd.Timedelta(window) if isinstance(window, str) else window
        train_mask &= y.index >= train_end - w
    test_mask = (y.index >= start) & (y.index < end)
    y_tr, y_te = y[train_mask], y[test_mask]
    if len(y_te) == 0 or len(y_tr) < 50:
        return None, None
    keep = y_te.notna().to_numpy()
    x_tr = None if covariates is None else covariates[train_mask]
    x_te = None if covariates is None else covariates[test_mask]
    origin_rows = []
    forecast = None
    for name, make in models.items():
        model = make()
        row: dict[str, Any] = {
            "origin": str(origin),
            "model": name,
            "n_train": int(len(y_tr)),
            "n_test": int(keep.sum()),
        }
        t_start = time.perf_counter()
        if name == "DPK":
            kw = fit_kwargs(y_tr.index, origin) if fit_kwargs else {}
            model.fit(y_tr, covariates=x_tr, **kw)
            fc = forecast = model.predict(times=y_te.index, covariates=x_te)
            q99 = np.asarray(fc.quantile(QCRPS_LEVELS))[keep]
            yy = y_te.to_numpy(float)[keep]
            row.update(_score_quantiles(yy, q99))
            if fc.distribution.probabilistic:
                sub = y_te.to_numpy(float).copy()
                sub[~keep] = np.nanmean(sub)  # placeholder, masked below
                row["crps"] = float(np.mean(np.asarray(crps(fc, sub))[keep]))
                row["nll"] = float(np.mean(np.asarray(fc.nll(sub)).reshape(-1)[keep]))
        else:
            model.fit(y_tr, covariates=x_tr)
            q99 = model.predict_quantiles(len(y_te), QCRPS_LEVELS, covariates=x_te)[keep]
            row.update(_score_quantiles(y_te.to_numpy(float)[keep], q99))
        row["seconds"] = time.perf_counter() - t_start  # fit + forecast + scoring, wall time
        origin_rows.append(row)
    return origin_rows, forecast


def _run_indexed(i: int, origin: pd.Timestamp, task: dict[str, Any]) -> tuple[int, Any]:
    return i, _run_origin(origin, **task)


def backtest(
    factory: Callable[[], Any] | None,
    y: pd.Series,
    covariates: pd.DataFrame | None = None,
    origins: Sequence[Any] | None = None,
    horizon: Any = "month",
    gap: Any = None,
    window: Any = None,
    baselines: Mapping[str, Callable[[], Any]] | None = None,
    out_dir: Any = None,
    resume: bool = True,
    force: bool = False,
    config: Mapping[str, Any] | None = None,
    fit_kwargs: Callable[[pd.DatetimeIndex, pd.Timestamp], dict[str, Any]] | None = None,
    progress: bool = True,
    on_forecast: Callable[[pd.Timestamp, Any], None] | None = None,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Score DPK (from `factory`, a callable returning an unfitted DPK) and `baselines` (name ->
    callable returning a baseline) at each origin. Returns one row per (origin, model).
    `on_forecast(origin, forecast)` receives DPK's forecast over each test span it computes
    (not for origins resumed from `out_dir`). `n_jobs > 1` (or -1: every core) scores the
    origins in that many worker processes (joblib); the rows are the same as with
    `n_jobs=1`, in origin order, and the factories must be picklable by cloudpickle
    (lambdas and closures are)."""
    if not isinstance(y.index, pd.DatetimeIndex):
        raise DPKInputError("backtest needs y with a DatetimeIndex")
    if not (isinstance(n_jobs, int) and (n_jobs >= 1 or n_jobs == -1)):
        raise DPKInputError(f"n_jobs must be a positive integer or -1 (every core), got {n_jobs!r}")
    if origins is None:
        origins = monthly_origins(
            y.index, str(y.index[0] + pd.DateOffset(months=3)), str(y.index[-1])
        )
    origins = [pd.Timestamp(o) for o in origins]
    if origins:
        evaluation_span(origins[0], horizon)  # a bad horizon fails here, before any fit
    gap = pd.Timedelta(0) if gap is None else (pd.Timedelta(gap) if isinstance(gap, str) else gap)
    models: dict[str, Callable[[], Any]] = {}
    if factory is not None:
        models["DPK"] = factory
    models.update(baselines or {})
    cfg = {
        "config": dict(config or {}),
        "horizon": str(horizon),
        "gap": str(gap),
        "window": str(window),
        "models": sorted(models),
    }
    h = config_hash(cfg)
    out = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        manifest = out / "backtest.json"
        if manifest.exists():
            old = json.loads(manifest.read_text()).get("hash")
            if old != h and not force:
                raise DPKInputError(
                    f"{out} holds results of another configuration (hash {old}, now {h}); pass "
                    "force=True to add to it, or use a new out_dir."
                )
        _atomic_json(manifest, {"hash": h, **cfg})
    done: dict[int, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    todo: list[int] = []
    for i, origin in enumerate(origins):
        path = _origin_path(out, origin, h)
        if path is not None and resume and path.exists():
            done[i] = json.loads(path.read_text())
        else:
            todo.append(i)
    task = dict(
        models=models,
        y=y,
        covariates=covariates,
        horizon=horizon,
        gap=gap,
        window=window,
        fit_kwargs=fit_kwargs,
    )
    workers = min((os.cpu_count() or 1) if n_jobs == -1 else n_jobs, len(todo))
    if workers <= 1:  # in this process (no worker to start for a single origin)
        results = (_run_indexed(i, origins[i], task) for i in todo)
    else:
        # one origin per task in joblib's process pool (loky, which also caps each worker's
        # BLAS/OpenMP threads); each origin is saved as soon as it finishes, in any order
        pool = Parallel(n_jobs=workers, return_as="generator_unordered")
        results = pool(delayed(_run_indexed)(i, origins[i], task) for i in todo)
    bar = tqdm(total=len(origins), initial=len(done), desc="backtest", disable=not progress)
    try:
        for i, (origin_rows, fc) in results:
            if fc is not None and on_forecast is not None:
                on_forecast(origins[i], fc)
            path = _origin_path(out, origins[i], h)
            if path is not None and origin_rows is not None:
                _atomic_json(path, origin_rows)
            done[i] = origin_rows or []
            if origin_rows is None:
                skipped.append(str(origins[i]))
            bar.update(1)
    except BrokenProcessPool as err:
        raise DPKInputError(
            f"a backtest worker process failed ({err}); usually a factory it cannot unpickle: a "
            "function defined in a module the workers cannot import. Define the factories as "
            "lambdas or in an importable module, or use n_jobs=1."
        ) from err
    finally:
        bar.close()
    if skipped:
        warnings.warn(
            f"backtest skipped {len(skipped)} of {len(origins)} origin(s) with no test data in "
            f"[origin, origin + horizon) or fewer than 50 training points: {sorted(skipped)}; "
            "check the origins against the series' time range.",
            stacklevel=2,
        )
    rows = [row for i in range(len(origins)) for row in done.get(i, [])]
    return pd.DataFrame(rows)


def summarize(
    results: pd.DataFrame, reference: str = "DPK", metrics: Sequence[str] = ("pinball", "qcrps")
) -> pd.DataFrame:
    """Per baseline: mean over origins of the per-origin ratio reference/baseline, the ratio of
    totals, and the share of origins the reference wins; plus mean coverage80 per model."""
    out = []
    ref = results[results.model == reference].set_index("origin")
    for name, grp in results[results.model != reference].groupby("model"):
        g = grp.set_index("origin")
        common = ref.index.intersection(g.index)
        row: dict[str, Any] = {"baseline": name, "n_origins": len(common)}
        for m in metrics:
            r = ref.loc[common, m] / g.loc[common, m]
            row[f"{m}_ratio"] = float(r.mean()) if len(r) else math.nan
            row[f"{m}_ratio_of_totals"] = (
                float(ref.loc[common, m].sum() / g.loc[common, m].sum()) if len(r) else math.nan
            )
            row[f"{m}_win_share"] = float((r < 1).mean()) if len(r) else math.nan
        out.append(row)
    return pd.DataFrame(out)


def per_origin_ratios(
    results: pd.DataFrame, reference: str = "DPK", metric: str = "pinball"
) -> pd.DataFrame:
    """One row per origin: reference/baseline `metric` for every baseline (columns named
    "DPK/<baseline>", the part of the name before "(") and the reference's coverage80."""
    ref = results[results.model == reference].set_index("origin")
    out = pd.DataFrame(
        {
            f"{reference}/{m.split('(')[0]}": ref[metric]
            / results[results.model == m].set_index("origin")[metric]
            for m in sorted(set(results.model) - {reference})
        }
    )
    out[f"{reference} coverage80"] = ref["coverage80"]
    return out
