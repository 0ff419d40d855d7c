"""Figures for a detections Dataset: fan chart with flags, window statistic with threshold and
event shading, PIT and null histograms, station flag map, grid flag-fraction map."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats as sps  # noqa: E402

from .evaluate import events_from_labels  # noqa: E402


def _shade_events(ax: plt.Axes, times: pd.DatetimeIndex, labels: np.ndarray | None) -> None:
    if labels is None:
        return
    colours = {1: "tab:blue", 2: "tab:red"}
    for ev in events_from_labels(labels):
        ax.axvspan(
            times[ev.start], times[ev.end], color=colours.get(ev.kind, "grey"), alpha=0.15, lw=0
        )


def fan_chart(
    det: xr.Dataset,
    station: str,
    labels: np.ndarray | None = None,
    period: tuple[str, str] | None = None,
) -> Figure:
    d = det.sel(station=station)
    if period is not None:
        d = d.sel(time=slice(*period))
    t = pd.DatetimeIndex(d["time"].values)
    fig, ax = plt.subplots(figsize=(11, 3.5))
    mu, sd = d["mu"].values, d["sigma"].values
    for q, a in ((1.96, 0.15), (1.0, 0.25)):
        ax.fill_between(t, mu - q * sd, mu + q * sd, color="tab:blue", alpha=a, lw=0)
    ax.plot(t, d["obs"].values, lw=0.4, color="k", label="obs")
    ax.plot(t, mu, lw=0.6, color="tab:blue", label="forecast mean")
    fl = d["flag"].values != 0
    if fl.any():
        ax.scatter(
            t[fl],
            d["obs"].values[fl] if np.isfinite(d["obs"].values[fl]).any() else mu[fl],
            color="tab:red",
            s=18,
            zorder=3,
            label="flag",
        )
    if labels is not None:
        lab = labels if period is None else labels[np.isin(det["time"].values, d["time"].values)]
        _shade_events(ax, t, lab)
    ax.set_title(f"{station}: forecast fan (50/95%) and flags")
    ax.set_ylabel(det["obs"].attrs.get("units", ""))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def window_statistic(det: xr.Dataset, station: str, labels: np.ndarray | None = None) -> Figure:
    d = det.sel(station=station)
    t = pd.DatetimeIndex(d["time"].values)
    e = "zeta" if "zeta" in det else "z"
    fig, ax = plt.subplots(figsize=(11, 3.2))
    ax.plot(
        t,
        d["window_mean"].values,
        lw=0.7,
        label=f"trailing mean of {e} (k={det.attrs.get('window_hours')} h)",
    )
    alpha = float(det.attrs.get("alpha", 0.01))
    side = det.attrs.get("side", "lower")
    m, s = float(d["null_mean"]), float(d["null_sd"])
    zq = sps.norm.ppf(1 - alpha)
    if side in ("lower", "both"):
        ax.axhline(
            m - zq * s,
            color="tab:red",
            ls="--",
            lw=0.8,
            label=f"null {alpha:g} threshold (unadjusted)",
        )
    if side in ("upper", "both"):
        ax.axhline(m + zq * s, color="tab:red", ls="--", lw=0.8)
    dec = np.isfinite(d["p_value"].values)
    fl = d["flag"].values != 0
    ax.scatter(t[dec & ~fl], d["stat"].values[dec & ~fl], s=6, color="grey", label="decision")
    ax.scatter(t[dec & fl], d["stat"].values[dec & fl], s=18, color="tab:red", label="flag")
    if "in_calib" in det:
        c = det["in_calib"].values == 1
        if c.any():
            ax.axvspan(t[c][0], t[c][-1], color="green", alpha=0.07, lw=0, label="calibration")
    _shade_events(ax, t, labels)
    ax.set_title(f"{station}: window statistic and null threshold")
    ax.legend(loc="lower left", fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def pit_and_null(det: xr.Dataset) -> Figure:
    """PIT histogram (calibration period) and calibration-window vs monitoring-window histogram."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    cal = det["in_calib"].values == 1 if "in_calib" in det else slice(None)
    z = det["z"].values[cal]
    pit = sps.norm.cdf(z[np.isfinite(z)])
    axes[0].hist(pit, bins=20, range=(0, 1), density=True, color="tab:blue", alpha=0.8)
    axes[0].axhline(1, color="k", lw=0.8)
    axes[0].set_title("PIT on calibration period (flat = calibrated)")
    e = "zeta" if "zeta" in det else "z"
    k = int(det.attrs.get("window_hours", 168))
    wm = det["window_mean"].values
    calw = wm[cal][k - 1 :: k].ravel()
    mon = det["in_monitor"].values == 1 if "in_monitor" in det else slice(None)
    monw = wm[mon][k - 1 :: k].ravel()
    rng = np.nanpercentile(np.concatenate([calw, monw]), [0.5, 99.5])
    axes[1].hist(
        calw[np.isfinite(calw)],
        bins=30,
        range=tuple(rng),
        density=True,
        alpha=0.6,
        label="calibration windows",
    )
    axes[1].hist(
        monw[np.isfinite(monw)],
        bins=30,
        range=tuple(rng),
        density=True,
        alpha=0.6,
        label="monitoring windows",
    )
    axes[1].set_title(f"window means of {e}")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def station_map(det: xr.Dataset) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 4))
    if "lat" not in det.coords:
        ax.text(0.5, 0.5, "no station coordinates", ha="center")
        return fig
    n = (det["flag"] != 0).sum("time").values
    sc = ax.scatter(det["lon"].values, det["lat"].values, c=n, cmap="viridis", s=60)
    for s, x, y in zip(det["station"].values, det["lon"].values, det["lat"].values, strict=True):
        ax.annotate(str(s), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    fig.colorbar(sc, ax=ax, label="flags in monitoring")
    ax.set_xlabel("lon")
    ax.set_ylabel("lat")
    ax.set_title("station flag map")
    fig.tight_layout()
    return fig


def grid_flag_fraction(grid: xr.Dataset) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ff = grid["flag_fraction"]
    im = ax.pcolormesh(ff["lon"].values, ff["lat"].values, ff.values, shading="auto", cmap="magma")
    fig.colorbar(im, ax=ax, label="fraction of windows flagged")
    ax.set_title("grid flag fraction")
    fig.tight_layout()
    return fig


def combined(det: xr.Dataset) -> Figure:
    fig, ax = plt.subplots(figsize=(11, 2.6))
    if "combined_z" not in det:
        ax.text(0.5, 0.5, "no combination requested", ha="center")
        return fig
    t = pd.DatetimeIndex(det["time"].values)
    ok = np.isfinite(det["combined_z"].values)
    ax.plot(t[ok], det["combined_z"].values[ok], ".-", lw=0.7)
    fl = det["combined_flag"].values != 0
    ax.scatter(t[fl], det["combined_z"].values[fl], color="tab:red", zorder=3)
    ax.set_title("multi-station combined statistic")
    fig.tight_layout()
    return fig
