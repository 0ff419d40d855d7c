"""Resumable training checkpoints (safetensors + JSON, written atomically, never pickled).

With `DPK(checkpoint_dir=...)`, `train` writes after every epoch: the network (including the
searched omega0 and Delta), the best weights so far, the AdamW moments, the shuffling
generator's state, and the loop counters and history. An interrupted fit (Ctrl-C, a killed
job) rerun with the same data and settings resumes at the next epoch and ends bit-identical to
an uninterrupted fit (CPU). A checkpoint whose fingerprint (data + settings + phase) differs is
refused rather than silently mixed in. `DPK.fit` deletes its checkpoints once the fit is done.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import DPKInputError

WEIGHTS = "state.safetensors"
META = "state.json"


def save_checkpoint(
    path: Path,
    net: torch.nn.Module,
    best_state: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    generator: torch.Generator,
    meta: dict[str, Any],
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for k, v in net.state_dict().items():
        tensors[f"net.{k}"] = v.detach().cpu().clone().contiguous()
    for k, v in best_state.items():
        tensors[f"best.{k}"] = v.detach().cpu().clone().contiguous()
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            for name, val in opt.state.get(p, {}).items():
                t = val if torch.is_tensor(val) else torch.tensor(float(val))
                tensors[f"opt.{gi}.{pi}.{name}"] = t.detach().cpu().clone().contiguous()
    tensors["generator"] = generator.get_state().clone()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS))
        (tmp / META).write_text(json.dumps(meta))
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_checkpoint(
    path: Path,
    fingerprint: str,
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    generator: torch.Generator,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Restore net, optimiser and generator in place; returns (best_state, meta), or None when
    there is no checkpoint."""
    if not (path / META).is_file() or not (path / WEIGHTS).is_file():
        return None
    meta = json.loads((path / META).read_text())
    if meta.get("fingerprint") != fingerprint:
        raise DPKInputError(
            f"{path} holds a training checkpoint of other data or settings; delete it or use "
            "another checkpoint_dir."
        )
    tensors = load_file(str(path / WEIGHTS))
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            prefix = f"opt.{gi}.{pi}."
            st = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            if st:
                opt.state[p] = st
    generator.set_state(tensors["generator"])
    return best, meta
