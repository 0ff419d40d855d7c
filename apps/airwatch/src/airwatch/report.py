"""HTML + PNG report for a detections netCDF file (optionally scored against labels)."""

from __future__ import annotations

import html
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from koopman_anomaly import evaluate, plots
from koopman_anomaly.windows import decision_index

BASELINE_PREFIX = "baseline_"


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path.name


def score_table(det: xr.Dataset, labels: np.ndarray) -> list[dict[str, object]]:
    """FAR per decision unit outside events (+k), event power and median delay (hours) for the
    detector and every baseline stored in the file."""
    k = int(det.attrs.get("window_hours", 168))
    mon = det["in_monitor"].values == 1
    idx = np.flatnonzero(mon)
    dec = decision_index(len(det.time), int(idx[0]), int(idx[-1]) + 1, k)
    side = det.attrs.get("side", "lower")
    kinds = (1,) if side == "lower" else (2,) if side == "upper" else (1, 2)
    lab_mon = np.where(mon[:, None], labels, 0)
    events = evaluate.events_from_labels(lab_mon, kinds)
    anom = labels != 0
    # a decision unit is "clean" if no labelled point lies in (t-2k, t] (events + k margin)
    clean = np.zeros((len(dec), labels.shape[1]), bool)
    for i, t in enumerate(dec):
        clean[i] = ~anom[max(0, t - 2 * k + 1) : t + 1].any(0)
    status_ok = det["status"].values == "ok"
    rows = []
    methods = {"koopman (" + det.attrs.get("method", "window") + ")": det["flag"].values != 0}
    for v in det.data_vars:
        if str(v).startswith(BASELINE_PREFIX) and str(v).endswith("_flag"):
            methods[str(v)[len(BASELINE_PREFIX) : -5]] = det[v].values.astype(bool)
    for name, flags in methods.items():
        units = evaluate.unit_scores(flags.astype(float), dec, k) > 0
        far = evaluate.far(units[:, status_ok], clean[:, status_ok])
        ev_ok = [e for e in events if status_ok[e.series]]
        hit, dl = evaluate.event_detection(flags, ev_ok, k)
        rows.append(
            {
                "method": name,
                "FAR per decision unit": round(far, 4),
                "events": len(ev_ok),
                "power": round(float(hit.mean()), 3) if hit.size else float("nan"),
                "median delay (h)": float(np.nanmedian(dl))
                if np.isfinite(dl).any()
                else float("nan"),
                # station-major so each labelled segment stays contiguous
                "point-adjusted F1": round(
                    evaluate.point_adjusted_f1(
                        (flags & mon[:, None])[:, status_ok].T.ravel(),
                        np.isin(lab_mon, kinds)[:, status_ok].T.ravel(),
                    ),
                    3,
                ),
            }
        )
    return rows


def _table_html(rows: list[dict[str, object]]) -> str:
    if not rows:
        return "<p>no rows</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>"
        for r in rows
    )
    return f"<table border=1 cellpadding=4><tr>{head}</tr>{body}</table>"


def write_report(
    det: xr.Dataset, out_dir: Path, labels: np.ndarray | None = None, grid: xr.Dataset | None = None
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<h1>airwatch report</h1><p>variable <b>{html.escape(str(det.attrs.get('variable')))}</b>, "
        f"method {html.escape(str(det.attrs.get('method')))}, null {html.escape(str(det.attrs.get('null')))}, "
        f"alpha {det.attrs.get('alpha')}, correction {html.escape(str(det.attrs.get('correction')))}, "
        f"window {det.attrs.get('window_hours')} h, side {html.escape(str(det.attrs.get('side')))}, "
        f"forecaster {html.escape(str(det.attrs.get('forecaster')))}.</p>"
    ]
    if "station" in det.dims:
        status = det["status"].values
        nflags = (det["flag"] != 0).sum("time").values
        st_rows = [
            {
                "station": str(s),
                "status": str(status[i]),
                "flags": int(nflags[i]),
                "null sd": round(float(det["null_sd"].values[i]), 4),
                **(
                    {"rho_ref": round(float(det["rho_ref"].values[i]), 3)}
                    if "rho_ref" in det
                    else {}
                ),
            }
            for i, s in enumerate(det["station"].values)
        ]
        if labels is not None:
            parts.append("<h2>Scores against labels</h2>" + _table_html(score_table(det, labels)))
        parts.append("<h2>Stations</h2>" + _table_html(st_rows))
        ok = np.flatnonzero(status == "ok")
        order = ok[np.argsort(-nflags[ok])] if ok.size else []
        for i in list(order)[:2]:
            st = str(det["station"].values[i])
            lab = None if labels is None else labels[:, i]
            mon = det["in_monitor"].values == 1
            period = (
                (str(det.time.values[mon][0])[:10], str(det.time.values[mon][-1])[:10])
                if mon.any()
                else None
            )
            f1 = _save(plots.fan_chart(det, st, lab, period), out_dir / f"fan_{st}.png")
            f2 = _save(plots.window_statistic(det, st, lab), out_dir / f"window_{st}.png")
            parts.append(f"<h2>{html.escape(st)}</h2><img src='{f1}'><br><img src='{f2}'>")
        f3 = _save(plots.pit_and_null(det), out_dir / "pit_null.png")
        f4 = _save(plots.station_map(det), out_dir / "station_map.png")
        parts.append(f"<h2>Calibration</h2><img src='{f3}'><h2>Map</h2><img src='{f4}'>")
        if "combined_z" in det:
            f5 = _save(plots.combined(det), out_dir / "combined.png")
            parts.append(f"<h2>Multi-station combination</h2><img src='{f5}'>")
    if grid is not None or "flag_fraction" in det:
        g = grid if grid is not None else det
        f6 = _save(plots.grid_flag_fraction(g), out_dir / "grid_flag_fraction.png")
        parts.append(f"<h2>Grid</h2><img src='{f6}'>")
    cfg = det.attrs.get("config")
    if cfg:
        parts.append(
            "<h2>Configuration</h2><pre>"
            + html.escape(json.dumps(json.loads(cfg), indent=1))
            + "</pre>"
        )
    page = (
        "<html><head><meta charset='utf-8'><title>airwatch report</title></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    target = out_dir / "index.html"
    fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".html", dir=out_dir)
    with os.fdopen(fd, "w") as fh:
        fh.write(page)
    os.replace(tmp, target)
    return target


def labels_for(det: xr.Dataset, truth: xr.DataArray) -> np.ndarray:
    t = truth
    if "site" in t.dims:
        t = t.rename(site="station")
    t = t.sel(time=det.time, station=det.station).transpose("time", "station")
    return np.asarray(t.values, dtype=int)


def period_str(times: pd.DatetimeIndex) -> str:
    return f"{times[0]:%Y-%m-%d}:{times[-1]:%Y-%m-%d}"
