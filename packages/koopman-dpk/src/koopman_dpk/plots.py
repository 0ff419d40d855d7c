"""Figures users would rather look at: fan chart, PIT histogram, reliability diagram, the
frequency-search loss surface and the per-parameter components. Each returns a Figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .forecast import Forecast  # noqa: E402
from .metrics import pit_histogram  # noqa: E402


def _x(forecast: Forecast) -> Any:
    idx = forecast.output.index
    return np.arange(forecast.horizon) if idx is None else idx


def fan_chart(
    forecast: Forecast,
    y: Any = None,
    history: Any = None,
    levels: Sequence[float] = (0.5, 0.8, 0.95),
    series: int = 0,
    ax: Any = None,
    title: str | None = None,
) -> Figure:
    """Median with nested central intervals; optional observations and history (x, y) pairs."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(10, 4))
    ax = ax or fig.add_subplot(111)
    x = _x(forecast)
    for lv in sorted(levels, reverse=True):
        a = (1 - lv) / 2
        q = forecast._quantile_array(np.array([a, 1 - a]))[:, series]
        ax.fill_between(
            x,
            q[:, 0],
            q[:, 1],
            color="C0",
            alpha=0.15 + 0.2 * (1 - lv),
            lw=0,
            label=f"{int(lv * 100)}% interval",
        )
    med = forecast._quantile_array(np.array([0.5]))[:, series, 0]
    ax.plot(x, med, color="C0", lw=1.2, label="median")
    if history is not None:
        hx, hy = history
        ax.plot(
            hx,
            np.asarray(hy, dtype=float).reshape(len(hx), -1)[:, series],
            color="0.3",
            lw=0.8,
            label="history",
        )
    if y is not None:
        ax.plot(
            x,
            np.asarray(y, dtype=float).reshape(forecast.horizon, -1)[:, series],
            color="k",
            lw=0.8,
            label="observed",
        )
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or f"DPK forecast ({forecast.distribution.name})")
    fig.autofmt_xdate()
    return fig


def pit_hist(u: Any, bins: int = 10, ax: Any = None, title: str = "PIT histogram") -> Figure:
    """Histogram of PIT values with the uniform density line."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(5, 3.5))
    ax = ax or fig.add_subplot(111)
    dens, edges = pit_histogram(u, bins)
    ax.bar(
        edges[:-1], dens, width=np.diff(edges), align="edge", color="C0", alpha=0.7, edgecolor="w"
    )
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("PIT")
    ax.set_ylabel("density")
    ax.set_title(title)
    return fig


def reliability(
    forecast: Forecast, y: Any, levels: Sequence[float] | None = None, ax: Any = None
) -> Figure:
    """Observed frequency of y <= q_tau against tau."""
    levels = np.arange(1, 20) / 20 if levels is None else np.asarray(levels)
    yy = forecast._as_y(y)
    q = forecast._quantile_array(np.asarray(levels))
    freq = [(yy <= q[..., i]).mean() for i in range(len(levels))]
    fig = ax.figure if ax is not None else plt.figure(figsize=(4, 4))
    ax = ax or fig.add_subplot(111)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot(levels, freq, "o-", color="C0")
    ax.set_xlabel("nominal level")
    ax.set_ylabel("observed frequency")
    ax.set_title("Reliability")
    return fig


def search_surface(result: Any, true_periods: Sequence[float] = (), ax: Any = None) -> Figure:
    """Loss surface E(period) of a `SearchResult` (search_slot(..., keep_surface=True))."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(8, 3.5))
    ax = ax or fig.add_subplot(111)
    ax.semilogx(result.surface_periods, result.surface_values, lw=0.8)
    ax.axvline(result.period, color="C3", ls="--", label=f"chosen {result.period:.4g}")
    for p in true_periods:
        ax.axvline(p, color="k", ls=":", lw=1)
    for c in result.candidates:
        ax.axvline(c, color="C1", alpha=0.3, lw=0.8)
    ax.set_xlabel("period")
    ax.set_ylabel("loss E")
    ax.legend(fontsize=8)
    ax.set_title("Frequency-search loss surface")
    return fig


def components(
    model: Any,
    times: Any = None,
    horizon: int | None = None,
    covariates: Any = None,
    series: int = 0,
) -> Figure:
    """Each distribution parameter over the given times (one panel per parameter)."""
    fc = model.predict(times=times, horizon=horizon, covariates=covariates)
    names = list(fc._p)
    fig, axes = plt.subplots(
        len(names), 1, figsize=(10, 2.2 * len(names)), sharex=True, squeeze=False
    )
    x = _x(fc)
    for ax, k in zip(axes[:, 0], names, strict=True):
        ax.plot(x, fc._p[k].mean(0)[:, series], lw=1)
        ax.set_ylabel(k)
    axes[0, 0].set_title("DPK components (parameters in original units)")
    fig.autofmt_xdate()
    return fig
