"""Training loop: Adam(W) on the weighted NLL, alternating with the FFT frequency search,
early stopping on a held-out tail with best-weight restore, divergence detection."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .distributions.base import Distribution
from .errors import DPKDivergenceError
from .freqsearch import phase_grid, search_slot
from .net import DPKNet


@dataclass
class TrainData:
    tau: torch.Tensor  # (T,) float64
    cov: torch.Tensor  # (T, C) float32
    y: torch.Tensor  # (T, d) float32, scaled
    w: torch.Tensor  # (T,) float32 loss weights
    mask: torch.Tensor  # (T,) bool; False: location detached

    def subset(self, idx: torch.Tensor) -> TrainData:
        return TrainData(self.tau[idx], self.cov[idx], self.y[idx], self.w[idx], self.mask[idx])

    def __len__(self) -> int:
        return int(self.tau.shape[0])


@dataclass
class TrainSettings:
    epochs: int = 500
    batch_size: int = 256
    lr: float = 3e-3
    lr_omega: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 25
    search_interval: int = 10
    search_cutoff: int = 50
    sample_num: int = 24
    heuristic: str = "verified"
    search_method: str = "auto"
    searchable: list[list[int]] = field(default_factory=list)  # per head, slot indices
    progress: bool = False
    min_epochs: int = 0  # early stopping cannot pick an epoch before this one


def pointwise_loss(
    net: DPKNet, dist: Distribution, data: TrainData, raw: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """Per-point loss (T,), mean over output columns, location detached where mask is False."""
    if raw is None:
        raw = net(data.tau, data.cov)
    if not bool(data.mask.all()):
        m = data.mask[:, None]
        raw = [torch.where(m, raw[0], raw[0].detach()), *raw[1:]]
    params = dist.link(raw)
    return dist.nll_torch(params, data.y).mean(dim=1)


def objective(net: DPKNet, dist: Distribution, data: TrainData) -> torch.Tensor:
    ell = pointwise_loss(net, dist, data)
    return (data.w * ell).sum() / data.w.sum().clamp_min(1e-12)


def make_optimizer(net: DPKNet, s: TrainSettings) -> torch.optim.Optimizer:
    weights = [p for n, p in net.named_parameters() if n.startswith("heads.")]
    trend = [p for n, p in net.named_parameters() if n.startswith("trend_")]
    deltas = [b.delta for b in net.blocks]
    groups = [
        {"params": weights, "lr": s.lr, "weight_decay": s.weight_decay},
        {"params": trend, "lr": s.lr, "weight_decay": 0.0},
    ]
    if s.lr_omega > 0:
        groups.append({"params": deltas, "lr": s.lr_omega, "weight_decay": 0.0})
    else:
        for d in deltas:
            d.requires_grad_(False)
    return torch.optim.AdamW(groups)


@torch.no_grad()
def search_all_slots(
    net: DPKNet, dist: Distribution, data: TrainData, s: TrainSettings, opt: torch.optim.Optimizer
) -> int:
    """One pass of the loss-surface search over every searchable slot. Returns #slots changed."""
    phases = torch.as_tensor(phase_grid(s.sample_num), dtype=torch.float64)
    tau_np = data.tau.cpu().numpy()
    raw_all = net(data.tau, data.cov)
    trend = net.trend_term(data.tau) + net.level_offset
    changed = 0
    for j, slots in enumerate(s.searchable):
        block = net.blocks[j]
        for k in slots:
            weight = data.w * (data.mask.float() if j == 0 else 1.0)

            def loss_with(
                phase_override: torch.Tensor, j=j, k=k, weight=weight, raw_all=raw_all
            ) -> torch.Tensor:
                raw = list(raw_all)
                rj = net.head_raw(j, data.tau, data.cov, (k, phase_override))
                raw[j] = rj + trend if j == 0 else rj
                ell = dist.nll_torch(dist.link(raw), data.y).mean(dim=1)
                return weight * ell

            L = (
                torch.stack([loss_with(ph.reshape(1)) for ph in phases], dim=1)
                .double()
                .cpu()
                .numpy()
            )
            if not np.all(np.isfinite(L)):
                continue
            omegas = block.omegas().cpu().numpy()
            others = [2 * math.pi / w for i, w in enumerate(omegas) if i != k and w > 0]

            def verify(w: float, k=k, loss_with=loss_with) -> float:
                return float(loss_with(torch.remainder(data.tau * w, 2 * math.pi)).sum())

            res = search_slot(
                L,
                tau_np,
                verify,
                existing_periods=others,
                current_omega=float(omegas[k]),
                heuristic=s.heuristic,
                method=s.search_method,
            )
            if abs(res.omega - omegas[k]) > 1e-12 * max(1.0, abs(omegas[k])):
                block.omega0[k] = res.omega
                block.delta[k] = 0.0
                changed += 1
                # reset Adam moments of the first-layer weights reading this block, and of Delta
                for p in (net.heads[j][0].weight, block.delta):
                    opt.state.pop(p, None)
                raw_all = net(data.tau, data.cov)
    return changed


def split_validation(
    n: int, tau: np.ndarray, how: str, fraction: float, rng: np.random.Generator, block_len: float
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): the last `fraction` of time, or random blocks of `block_len` tau."""
    if how == "none" or fraction <= 0:
        return np.arange(n), np.arange(0)
    if how == "tail":
        cut = tau[0] + (1 - fraction) * (tau[-1] - tau[0])
        val = tau > cut
    elif how == "blocks":
        n_blocks = max(1, int(fraction * (tau[-1] - tau[0]) / block_len))
        starts = rng.uniform(tau[0], tau[-1] - block_len, size=n_blocks)
        val = np.zeros(n, bool)
        for s0 in starts:
            val |= (tau >= s0) & (tau < s0 + block_len)
    else:
        raise ValueError(f"val must be 'tail', 'blocks' or 'none', got {how!r}")
    return np.flatnonzero(~val), np.flatnonzero(val)


def train(
    net: DPKNet,
    dist: Distribution,
    train_data: TrainData,
    val_data: TrainData | None,
    s: TrainSettings,
    generator: torch.Generator,
    keep_last: bool = False,
    checkpoint: Path | None = None,
    fingerprint: str = "",
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Fit `net` in place; returns the history. Restores the best weights (the last ones with
    `keep_last`, for a refit of a fixed number of epochs); raises on divergence.

    With `checkpoint` (a directory), the complete loop state is written after every epoch and
    a matching checkpoint found at the start is resumed (see `checkpoint.py`)."""
    opt = make_optimizer(net, s)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "search_changes": []}
    best_state = copy.deepcopy(net.state_dict())
    best_val = math.inf
    best_epoch = 0
    bad_epochs = 0
    first_epoch = 0
    if checkpoint is not None:
        restored = load_checkpoint(checkpoint, fingerprint, net, opt, generator)
        if restored is not None:
            best_state, meta = restored
            history = meta["history"]
            best_val, best_epoch = float(meta["best_val"]), int(meta["best_epoch"])
            bad_epochs, first_epoch = int(meta["bad_epochs"]), int(meta["next_epoch"])
            if meta.get("done"):
                first_epoch = s.epochs
    n = len(train_data)
    bar = tqdm(range(first_epoch, s.epochs), desc="DPK fit", disable=not s.progress, leave=False)
    stopped = False
    for epoch in bar:
        if (
            epoch > 0
            and epoch % max(s.search_interval, 1) == 0
            and epoch < s.search_cutoff
            and any(s.searchable)
        ):
            history["search_changes"].append(search_all_slots(net, dist, train_data, s, opt))
        net.train()
        perm = torch.randperm(n, generator=generator)
        total, count = 0.0, 0
        for start in range(0, n, s.batch_size):
            batch = train_data.subset(perm[start : start + s.batch_size])
            loss = objective(net, dist, batch) + net.penalty()
            if not torch.isfinite(loss):
                net.load_state_dict(best_state)
                raise DPKDivergenceError(
                    f"training loss became {loss.item()} at epoch {epoch}; the best checkpoint "
                    f"(epoch {best_epoch}) was restored. Lower lr (now {s.lr}) or check the data scale."
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
            count += len(batch)
        history["train_loss"].append(total / max(count, 1))
        net.eval()
        with torch.no_grad():
            monitor = val_data if val_data is not None and len(val_data) else train_data
            v = float(objective(net, dist, monitor))
        history["val_loss"].append(v)
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}", val=f"{v:.4f}")
        if not math.isfinite(v):
            net.load_state_dict(best_state)
            raise DPKDivergenceError(
                f"validation loss became {v} at epoch {epoch}; the best checkpoint (epoch "
                f"{best_epoch}) was restored. Lower lr or check the data."
            )
        if keep_last or epoch < max(s.search_cutoff, s.min_epochs) or v < best_val - 1e-7:
            # during the search phase (and the warm-up of min_epochs) the weights keep
            # moving: track the latest state
            best_val, best_epoch, bad_epochs = v, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            bad_epochs += 1
            stopped = bad_epochs >= s.patience
        if checkpoint is not None:
            meta = {
                "fingerprint": fingerprint,
                "next_epoch": epoch + 1,
                "best_val": best_val,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "history": history,
                "done": stopped or epoch + 1 >= s.epochs,
            }
            save_checkpoint(checkpoint, net, best_state, opt, generator, meta)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if stopped:
            break
    net.load_state_dict(best_state)
    history["best_epoch"] = [best_epoch]
    history["best_val_loss"] = [best_val]
    return history
