"""Persistence: `model.safetensors` (weights, omega0, Delta, beta, scaling constants) plus
`config.json`, written to a temporary directory and renamed into place. Never pickles."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from . import __version__
from .distributions import get_distribution
from .errors import DPKPersistenceError
from .forecast import OutputSpec
from .net import DPKNet, count_parameters
from .timeaxis import TimeAxis

SCHEMA_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def _index_to_json(index: Any) -> Any:
    return None  # forecast indices are rebuilt from the time axis


def save_model(model: Any, path: Any, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    tensors = {
        f"net.{k}": v.detach().cpu().contiguous() for k, v in model.net_.state_dict().items()
    }
    extras = {
        "center": model.center_,
        "scale": model.scale_,
        "cov_mean": model.cov_mean_,
        "cov_std": model.cov_std_,
    }
    if model.pit_calibration_ is not None:
        extras["pit_calibration"] = model.pit_calibration_
    if model.residual_calibration_ is not None:
        extras["residual_calibration"] = model.residual_calibration_
    if getattr(model, "scale_calibration_", None) is not None:
        extras["scale_calibration"] = model.scale_calibration_
    if model.ar_ is not None:
        extras.update(
            {
                "ar_phi": model.ar_["phi"],
                "ar_sigma2": model.ar_["sigma2"],
                "ar_last": model.ar_["last"],
            }
        )
    for k, v in extras.items():
        tensors[f"extra.{k}"] = torch.as_tensor(np.asarray(v, dtype=np.float64))
    net = model.net_
    o = model.output_
    cfg = {
        "schema_version": SCHEMA_VERSION,
        "package_version": __version__,
        "config": {**model.get_params(), "hidden": list(model.config.hidden)},
        "distribution": model.dist.name,
        "block_sizes": [b.size for b in net.blocks],
        "periods": model.periods_,
        "pinned": [b.pinned.cpu().tolist() for b in net.blocks],
        "n_covariates": len(model.covariate_names_),
        "covariate_names": model.covariate_names_,
        "n_outputs": model.n_outputs_,
        "span": float(net.span),
        "linear_omegas": net.linear_omega.cpu().tolist(),
        "time_axis": model.axis_.to_json(),
        "training_range": list(model.training_range_),
        "output": {
            "kind": o.kind,
            "columns": o.columns,
            "series_dim": o.series_dim,
            "name": None if o.name is None else str(o.name),
        },
        "ar": None if model.ar_ is None else {"end": model.ar_["end"]},
        "level_trend": None
        if getattr(model, "level_trend_", None) is None
        else model.level_trend_.to_json(),
        "level_choice": getattr(model, "level_choice_", None),
        "trend_choice": getattr(model, "trend_choice_", None),
        "seed": model.config.seed,
        "n_parameters": model.n_parameters_,
        "history": {k: [float(x) for x in v] for k, v in model.history_.items()},
        "metrics": getattr(model, "metrics_", {}),
    }

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(cfg, indent=2))

    return write_dir_atomic(path, write)


def write_dir_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Fill a temporary sibling directory with `write(tmp)`, then rename it to `path`
    (replacing an existing one): a killed writer leaves the old directory or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_model(path: Any):
    from .model import DPK

    path = Path(path)
    for name in (WEIGHTS, CONFIG):
        if not (path / name).is_file():
            raise DPKPersistenceError(
                f"{path} has no {name}; it is not a saved DPK model directory."
            )
    cfg = json.loads((path / CONFIG).read_text())
    if cfg.get("schema_version", 0) > SCHEMA_VERSION:
        raise DPKPersistenceError(
            f"{path} uses schema {cfg['schema_version']}, newer than this package's {SCHEMA_VERSION}; upgrade koopman-dpk."
        )
    for key in (
        "config",
        "distribution",
        "block_sizes",
        "pinned",
        "time_axis",
        "n_outputs",
        "span",
    ):
        if key not in cfg:
            raise DPKPersistenceError(f"{path / CONFIG} is missing key {key!r}.")
    tensors = load_file(str(path / WEIGHTS))
    model = DPK.from_config(cfg["config"])
    dist = get_distribution(cfg["distribution"])
    sizes = cfg["block_sizes"]
    omega0 = [[1.0] * k for k in sizes]
    net = DPKNet(
        omega0,
        cfg["pinned"],
        cfg["span"],
        cfg["n_covariates"],
        tuple(cfg["config"]["hidden"]),
        cfg["n_outputs"],
        (cfg.get("trend_choice") or {}).get("trend", cfg["config"]["trend"]),
        np.zeros((dist.n_params, cfg["n_outputs"])),
        model.config.n_changepoints,
        model.config.changepoint_range,
        model.config.changepoint_penalty,
        cfg.get("linear_omegas", []),
        model.config.linear_order,
    )
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    expected = net.state_dict()
    for k, v in expected.items():
        if k not in state and v.numel() == 0:  # an empty slot files from before it existed lack
            state[k] = v  # (e.g. the linear Fourier terms of a model without linear_periods)
            continue
        if k not in state:
            raise DPKPersistenceError(f"{path / WEIGHTS} is missing tensor {k!r}.")
        if tuple(state[k].shape) != tuple(v.shape):
            raise DPKPersistenceError(
                f"tensor {k!r} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)} from config.json."
            )
    net.load_state_dict(state)
    extra = {k[6:]: v.numpy() for k, v in tensors.items() if k.startswith("extra.")}
    for k in ("center", "scale", "cov_mean", "cov_std"):
        if k not in extra:
            raise DPKPersistenceError(f"{path / WEIGHTS} is missing tensor 'extra.{k}'.")
    model.net_ = net.to(model.config.device)
    model.dist = dist
    model.center_, model.scale_ = extra["center"], extra["scale"]
    model.cov_mean_, model.cov_std_ = extra["cov_mean"], extra["cov_std"]
    model.pit_calibration_ = extra.get("pit_calibration")
    model.residual_calibration_ = extra.get("residual_calibration")
    model.scale_calibration_ = extra.get("scale_calibration")
    model.level_choice_ = cfg.get("level_choice")
    model.trend_choice_ = cfg.get("trend_choice")
    model.level_trend_ = None
    if cfg.get("level_trend"):
        from .leveltrend import level_trend_from_json

        model.level_trend_ = level_trend_from_json(cfg["level_trend"])
    model.ar_ = None
    if cfg.get("ar"):
        model.ar_ = {
            "phi": extra["ar_phi"],
            "sigma2": extra["ar_sigma2"],
            "last": extra["ar_last"],
            "end": cfg["ar"]["end"],
        }
    model.axis_ = TimeAxis.from_json(cfg["time_axis"])
    model.covariate_names_ = list(cfg["covariate_names"])
    model.n_outputs_ = cfg["n_outputs"]
    o = cfg["output"]
    model.output_ = OutputSpec(o["kind"], None, o["columns"], o["series_dim"], o["name"])
    model.training_range_ = tuple(cfg["training_range"])
    model.history_ = cfg.get("history", {})
    model.metrics_ = cfg.get("metrics", {})
    model.n_parameters_ = count_parameters(net)
    return model
