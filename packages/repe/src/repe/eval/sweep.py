"""Coefficient x layer-set sweeps: behaviour against cost, resumable cell by cell.

Each finished cell is written as JSON (temp file + ``os.replace``) under ``out_dir/cells``;
re-running skips finished cells. The result is an ``xarray.Dataset`` (dims ``layer_set`` x
``coeff``) saved as netCDF and Parquet, with a behaviour-vs-KL figure and the Pareto front.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..control.schedule import ScheduleLike
from ..control.steer import SteerSpec, steer
from ..vector import ReadingVector
from .cost import kl_cost

Behaviour = Callable[[Callable[[], Any] | None], Mapping[str, float]]


def _cell_path(out: Path, name: str, coeff: float) -> Path:
    return out / "cells" / f"{name}__{coeff:+.6g}.json"


def sweep(
    model: Any,
    tokenizer: Any,
    vector: ReadingVector,
    coeffs: Sequence[float],
    layer_sets: Mapping[str, Sequence[int]],
    behaviour: Behaviour,
    neutral: Sequence[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    operator: str = "add",
    units: str = "unit",
    schedule: ScheduleLike = None,
    positions: str = "all",
    max_tokens: int = 2048,
    progress: bool = True,
) -> Any:
    """Run every (layer set, coefficient) cell; ``behaviour(steering_factory)`` returns metrics
    (e.g. ``{"logodds": ...}``), cost is KL / perplexity ratio on ``neutral``."""
    import xarray as xr

    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        (out / "cells").mkdir(parents=True, exist_ok=True)
    cells: dict[tuple[str, float], dict[str, float]] = {}
    todo = [(n, float(c)) for n in layer_sets for c in coeffs]
    for name, c in tqdm(todo, desc="sweep", disable=not progress):
        path = _cell_path(out, name, c) if out is not None else None
        if path is not None and path.exists():
            cells[(name, c)] = json.loads(path.read_text())
            continue
        spec = SteerSpec(
            vector,
            coeff=c,
            layers=list(layer_sets[name]),
            operator=operator,
            units=units,
            schedule=schedule,
        )

        def factory(spec: SteerSpec = spec) -> Any:
            return steer(model, [spec], positions=positions)

        res = dict(behaviour(factory))
        cost = kl_cost(model, tokenizer, neutral, factory, max_tokens=max_tokens)
        res.update({"kl": cost.kl, "ppl_ratio": cost.ppl_ratio, "n_tokens": float(cost.n_tokens)})
        cells[(name, c)] = res
        if path is not None:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(res))
            os.replace(tmp, path)
    names = list(layer_sets)
    cs = [float(c) for c in coeffs]
    keys = sorted({k for v in cells.values() for k in v})
    data = {
        k: (
            ("layer_set", "coeff"),
            np.array([[cells[(n, c)].get(k, np.nan) for c in cs] for n in names]),
        )
        for k in keys
    }
    ds = xr.Dataset(
        data,
        coords={"layer_set": names, "coeff": cs},
        attrs={
            "vector_method": json.dumps(vector.meta.get("method")),
            "layer_sets": json.dumps({k: list(map(int, v)) for k, v in layer_sets.items()}),
            "operator": operator,
            "units": units,
            "positions": positions,
        },
    )
    if out is not None:
        _save(ds, out)
    return ds


def pareto_front(
    ds: Any, behaviour: str, cost: str = "kl", maximize: bool = True
) -> list[tuple[str, float]]:
    """Cells not dominated in (behaviour up or down, cost down)."""
    pts = []
    for n in ds.layer_set.values:
        for c in ds.coeff.values:
            b = float(ds[behaviour].sel(layer_set=n, coeff=c))
            k = float(ds[cost].sel(layer_set=n, coeff=c))
            pts.append((str(n), float(c), b if maximize else -b, k))
    front = []
    for p in pts:
        if not any(q[2] >= p[2] and q[3] <= p[3] and (q[2] > p[2] or q[3] < p[3]) for q in pts):
            front.append((p[0], p[1]))
    return front


def _save(ds: Any, out: Path) -> None:
    tmp = out / "sweep.nc.tmp"
    try:
        ds.to_netcdf(tmp)
        os.replace(tmp, out / "sweep.nc")
    except Exception as e:  # noqa: BLE001 - netCDF backend missing: keep the Parquet/JSON
        import warnings

        warnings.warn(
            f"could not write netCDF ({e}); Parquet and JSON cells are kept", stacklevel=2
        )
    df = ds.to_dataframe().reset_index()
    try:
        tmp = out / "sweep.parquet.tmp"
        df.to_parquet(tmp)
        os.replace(tmp, out / "sweep.parquet")
    except Exception:  # noqa: BLE001 - pyarrow missing
        df.to_csv(out / "sweep.csv", index=False)


def plot_sweep(ds: Any, behaviour: str, path: str | os.PathLike[str], cost: str = "kl") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for n in ds.layer_set.values:
        sub = ds.sel(layer_set=n)
        axes[0].plot(ds.coeff.values, sub[behaviour].values, "o-", label=str(n))
        axes[1].plot(sub[cost].values, sub[behaviour].values, "o-", label=str(n))
        for c, x, y in zip(ds.coeff.values, sub[cost].values, sub[behaviour].values, strict=True):
            axes[1].annotate(f"{c:+g}", (x, y), fontsize=7)
    axes[0].set_xlabel("coefficient")
    axes[0].set_ylabel(behaviour)
    axes[1].set_xlabel(f"{cost} on neutral text (nats/token)" if cost == "kl" else cost)
    axes[1].set_ylabel(behaviour)
    axes[0].legend(title="layers", fontsize=8)
    axes[0].axhline(0, color="gray", lw=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
