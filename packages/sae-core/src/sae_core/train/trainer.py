"""Small TopK SAE / transcoder trainer: AuxK dead-latent loss, decoder renormalisation with
parallel-gradient removal, FVU/L0/dead metrics, atomic bit-exact resumable checkpoints."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from sae_core.arch import SAEConfig, SparseCoder
from sae_core.errors import ConfigError, ShapeError
from sae_core.formats.common import write_json_atomic
from sae_core.formats.sparsify import save_sparsify


@dataclass
class TrainConfig:
    n_latents: int = 4608
    k: int = 32
    batch_size: int = 1024
    steps: int | None = None  # default: one pass over the data
    epochs: float = 1.0
    lr: float | None = None  # default 2e-4 / sqrt(n / 2**14)
    warmup: int = 50
    decay: bool = True  # linear decay over the last 20% of steps
    auxk_alpha: float = 1 / 32
    dead_tokens: int = 100_000
    k_aux: int | None = None  # default d_in // 2
    multi_topk: bool = False
    batchtopk: bool = False
    grad_clip: float = 1.0
    seed: int = 0
    # "buffer": the spec's shuffle buffer: the data is read in windows of ``shuffle_buffer``
    # consecutive tokens, windows in a random order per epoch and tokens shuffled within each
    # window (bounded, near-sequential reads of a memmapped store); "global": one permutation of
    # all tokens per epoch (random reads everywhere)
    shuffle: Literal["buffer", "global"] = "buffer"
    shuffle_buffer: int = 1 << 16
    checkpoint_every: int = 500
    log_every: int = 25
    site: str | None = None
    site_out: str | None = None
    model_id: str | None = None
    hookpoint: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse out-of-range settings, naming the field (0 steps or lr = 0 would otherwise train
        nothing, or silently fall back to a default)."""
        positive_int = ["n_latents", "k", "batch_size", "checkpoint_every", "log_every"]
        positive_int += ["shuffle_buffer"] + [
            n for n in ("steps", "k_aux") if getattr(self, n) is not None
        ]
        for name in positive_int:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"TrainConfig.{name} must be a positive integer, got {v!r}")
        if self.k > self.n_latents:
            raise ConfigError(f"k={self.k} exceeds n_latents={self.n_latents}; lower k")
        checks = [
            ("epochs", self.epochs > 0, "a positive number of passes over the data"),
            ("lr", self.lr is None or self.lr > 0, "positive (or None for the default)"),
            ("grad_clip", self.grad_clip > 0, "positive"),
            ("auxk_alpha", self.auxk_alpha >= 0, ">= 0 (0 turns AuxK off)"),
            ("warmup", self.warmup >= 0, ">= 0"),
            ("dead_tokens", self.dead_tokens >= 0, ">= 0"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ConfigError(f"TrainConfig.{name} must be {want}, got {getattr(self, name)!r}")
        if self.shuffle not in ("buffer", "global"):
            raise ConfigError(f"shuffle must be 'buffer' or 'global', got {self.shuffle!r}")

    def lr_for(self) -> float:
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(self.n_latents / 2**14)


def geometric_median(x: torch.Tensor, iters: int = 100, tol: float = 1e-5) -> torch.Tensor:
    """Weiszfeld's algorithm."""
    y = x.mean(0)
    for _ in range(iters):
        w = 1 / (x - y).norm(dim=1).clamp_min(1e-8)
        y_new = (w[:, None] * x).sum(0) / w.sum()
        if (y_new - y).norm() < tol * max(1.0, float(y.norm())):
            return y_new
        y = y_new
    return y


class ShuffleOrder:
    """Stateless data order: ``take(pos, count)`` gives the row indices of stream positions
    ``pos .. pos+count`` (epochs concatenated), a pure function of (seed, position), so a resumed
    run reads exactly the rows an uninterrupted one would.

    ``buffer`` tokens form a window; each epoch visits the windows in a seeded random order and
    each window's rows in a seeded random order, so every epoch is a permutation of all rows and
    any ``buffer`` consecutive positions touch at most two windows (three when the short last
    window lies between them). ``buffer >= n`` is a global shuffle (one window).
    """

    def __init__(self, n: int, buffer: int, seed: int, mode: str = "buffer"):
        if n <= 0:
            raise ShapeError("the training data is empty (0 activations)")
        if mode not in ("buffer", "global"):
            raise ConfigError(f"shuffle must be 'buffer' or 'global', got {mode!r}")
        if buffer <= 0:
            raise ConfigError(f"shuffle_buffer must be positive, got {buffer}")
        self.n, self.seed, self.mode = n, seed, mode
        self.W = n if mode == "global" else min(buffer, n)
        self.n_win = -(-n // self.W)
        self._epoch: tuple[int, np.ndarray, np.ndarray] | None = None
        self._win: dict[tuple[int, int], np.ndarray] = {}

    def _windows(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(window visiting order, start position of each visited window within the epoch)."""
        if self._epoch is None or self._epoch[0] != epoch:
            if self.mode == "global":
                order = np.zeros(1, np.int64)
            else:
                order = np.random.default_rng([self.seed, epoch]).permutation(self.n_win)
            lens = np.minimum(self.W, self.n - order * self.W)
            self._epoch = (epoch, order, np.r_[0, np.cumsum(lens)])
        return self._epoch[1], self._epoch[2]

    def _window_rows(self, epoch: int, w: int) -> np.ndarray:
        key = (epoch, w)
        if key not in self._win:
            if len(self._win) > 4:
                self._win.clear()
            lo = w * self.W
            ln = min(self.W, self.n - lo)
            if self.mode == "global":  # the historical global order
                self._win[key] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            else:
                self._win[key] = lo + np.random.default_rng([self.seed, epoch, w]).permutation(ln)
        return self._win[key]

    def take(self, pos: int, count: int) -> np.ndarray:
        out = []
        while count > 0:
            epoch, off = divmod(pos, self.n)
            order, starts = self._windows(epoch)
            j = int(np.searchsorted(starts, off, side="right")) - 1
            rows = self._window_rows(epoch, int(order[j]))
            a = off - int(starts[j])
            piece = rows[a : a + count]
            out.append(piece)
            pos += piece.size
            count -= piece.size
        return np.concatenate(out) if len(out) > 1 else out[0]


def _as_tensor_source(data: Any, what: str = "training data") -> Any:
    if hasattr(data, "shape") and len(data.shape) == 2:
        return data
    shape = f" of shape {tuple(data.shape)}" if hasattr(data, "shape") else ""
    raise ShapeError(f"{what} must be a 2-D [tokens, d] array, got {type(data).__name__}{shape}")


def _check_batch(t: torch.Tensor, idx: np.ndarray, what: str) -> None:
    """NaN/Inf in a batch would end the run with a non-finite loss blamed on the learning rate."""
    if not bool(torch.isfinite(t).all()):
        bad = np.sort(idx)[(~torch.isfinite(t)).any(1).cpu().numpy()]
        raise ShapeError(
            f"the {what} has NaN/Inf values (row {int(bad[0])}, {bad.size} rows in this batch); "
            "clean or re-extract the activations"
        )


def _batch(data: Any, idx: np.ndarray) -> torch.Tensor:
    idx = np.sort(idx)
    if isinstance(data, torch.Tensor):
        return data[torch.from_numpy(idx)].float()
    return torch.from_numpy(np.asarray(data[idx], dtype=np.float32))


def init_sae(
    d_in: int,
    cfg: TrainConfig,
    first: torch.Tensor,
    d_out: int | None = None,
    first_y: torch.Tensor | None = None,
) -> SparseCoder:
    """Spec §8 init; ``first`` is the first input batch, ``first_y`` the first target batch
    (transcoders: ``b_dec`` starts at the target mean)."""
    transcoder = d_out is not None
    sae = SparseCoder(
        SAEConfig(
            d_in=d_in,
            n_latents=cfg.n_latents,
            activation="batchtopk" if cfg.batchtopk else "topk",
            k=cfg.k,
            d_out=d_out or d_in,
            input_bias="none" if transcoder else "b_dec",
            transcoder=transcoder,
            batchtopk_mode="batch" if cfg.batchtopk else "threshold",
            site=cfg.site,
            site_out=cfg.site_out,
            model_id=cfg.model_id,
            meta={"multi_topk": cfg.multi_topk},
        )
    )
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        if transcoder:
            sae.W_enc.normal_(0, 1 / math.sqrt(d_in), generator=g)
            if first_y is None or first_y.shape[1] != sae.cfg.d_out:
                raise ShapeError(
                    "a transcoder needs the first target batch [B, d_out] to init b_dec"
                )
            sae.b_dec.copy_(first_y.mean(0))
        else:
            w = torch.randn(cfg.n_latents, d_in, generator=g)
            w /= w.norm(dim=1, keepdim=True)
            sae.W_dec.copy_(w)
            sae.W_enc.copy_(w.T)
            sae.b_dec.copy_(geometric_median(first))
    return sae


def _select(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    val, idx = torch.topk(pre, k, dim=-1, sorted=False)
    return idx, F.relu(val)


def _decode(
    sae: SparseCoder, idx: torch.Tensor, val: torch.Tensor, bias: bool = True
) -> torch.Tensor:
    out = F.embedding_bag(idx, sae.W_dec, per_sample_weights=val, mode="sum")
    return out + sae.b_dec if bias else out


def train(
    data: Any,
    cfg: TrainConfig,
    out: str | Path,
    *,
    targets: Any = None,
    resume: bool = True,
    progress: bool = True,
    max_seconds: float | None = None,
) -> SparseCoder:
    """Train a TopK SAE on activations ``data`` [N, d] (a transcoder if ``targets`` [N, d_out] and
    ``cfg.site_out`` are given). Saves the sparsify layout ``out/<hookpoint>/`` plus ``trainer_state.pt``
    every ``checkpoint_every`` steps and at the end; rerunning resumes bit-for-bit."""
    data = _as_tensor_source(data)
    cfg.validate()  # fields may have been changed after construction
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; pass a folder for the checkpoints")
    n, d_in = int(data.shape[0]), int(data.shape[1])
    if n == 0:
        raise ShapeError("the training data is empty (0 activations); extract activations first")
    if d_in == 0:
        raise ShapeError("the training data has width 0; pass [tokens, d] activations with d > 0")
    if targets is not None:
        targets = _as_tensor_source(targets, "targets")
        if int(targets.shape[0]) != n:
            raise ShapeError(f"targets have {targets.shape[0]} rows but data has {n}")
    if cfg.k > cfg.n_latents:
        raise ConfigError(f"k={cfg.k} exceeds n_latents={cfg.n_latents}")
    out.mkdir(parents=True, exist_ok=True)
    bs = min(cfg.batch_size, n)
    total_steps = cfg.steps or max(1, int(cfg.epochs * n // bs))
    k_aux = cfg.k_aux or d_in // 2
    hookpoint = cfg.hookpoint or (cfg.site or "sae").replace("/", "_")
    state_path = out / "trainer_state.pt"
    cfg_dict = asdict(cfg) | {"d_in": d_in, "n_data": n}

    order = ShuffleOrder(n, cfg.shuffle_buffer, cfg.seed, cfg.shuffle)
    first_idx = order.take(0, bs)
    first = _batch(data, first_idx)
    first_y = None if targets is None else _batch(targets, first_idx)
    sae = init_sae(
        d_in, cfg, first, None if targets is None else int(targets.shape[1]), first_y=first_y
    )
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr_for(), betas=(0.9, 0.999))
    since_fired = torch.zeros(cfg.n_latents, dtype=torch.long)
    step = 0
    history: list[dict[str, float]] = []
    if resume and state_path.is_file():
        try:
            st = torch.load(state_path, map_location="cpu", weights_only=False)
            if not isinstance(st, dict) or "cfg" not in st:
                raise ValueError("not a trainer state")
        except Exception as e:  # truncated / foreign file: pickle, zip or our own errors
            raise ConfigError(
                f"cannot resume from {state_path} ({type(e).__name__}: {e}); delete it to start "
                "over, or use another folder"
            ) from None
        if st["cfg"] != cfg_dict:
            diff = {k: (st["cfg"].get(k), v) for k, v in cfg_dict.items() if st["cfg"].get(k) != v}
            raise ConfigError(f"{out} holds a run with another config {diff}; use another folder")
        sae.load_state_dict(st["sae"])
        opt.load_state_dict(st["opt"])
        since_fired = st["since_fired"]
        step = st["step"]
        history = st["history"]
    lr0 = cfg.lr_for()
    t_start = time.monotonic()
    bar = tqdm(
        total=total_steps, initial=step, desc="training SAE", unit="step", disable=not progress
    )
    last_good = step
    while step < total_steps:
        idx = order.take(step * bs, bs)  # wraps into the next epoch
        x = _batch(data, idx)
        y = x if targets is None else _batch(targets, idx)
        # ---- forward
        xin = x - sae.b_dec if sae.cfg.input_bias == "b_dec" else x
        pre = xin @ sae.W_enc + sae.b_enc
        if cfg.batchtopk:
            a = F.relu(pre).flatten()
            val, flat = torch.topk(a, cfg.k * x.shape[0], sorted=False)
            rows = flat // cfg.n_latents
            f = torch.zeros_like(a).scatter(0, flat, val).view_as(pre)
            recon = f @ sae.W_dec + sae.b_dec
            fired_idx = (flat % cfg.n_latents)[val > 0]
            del rows
            pos_vals = val[val > 0]
            if step >= min(1000, total_steps // 2) and pos_vals.numel():
                with (
                    torch.no_grad()
                ):  # inference threshold: EMA of each batch's smallest kept activation
                    m = pos_vals.min()
                    th = sae.threshold
                    th.copy_(m if float(th) == 0 else 0.999 * th + 0.001 * m)
        else:
            idx_k, val_k = _select(pre, cfg.k)
            recon = _decode(sae, idx_k, val_k)
            fired_idx = idx_k[val_k > 0]
        if sae.W_skip is not None:
            recon = recon + x @ sae.W_skip.T
        total_var = (y - y.mean(0)).pow(2).sum()
        err = y - recon
        fvu_t = err.pow(2).sum() / total_var
        loss = fvu_t
        dead = since_fired > cfg.dead_tokens
        n_dead = int(dead.sum())
        auxk_t = torch.zeros(())
        if cfg.auxk_alpha > 0 and n_dead > 0:
            ka = min(k_aux, n_dead)
            aux_pre = pre.masked_fill(~dead, -torch.inf)
            a_idx, a_val = _select(aux_pre, ka)
            e_hat = _decode(sae, a_idx, a_val, bias=False)  # ê without b_dec (OpenAI / dl)
            scale = min(n_dead / k_aux, 1.0)
            auxk_t = scale * (err.detach() - e_hat).pow(2).sum() / total_var
            loss = loss + cfg.auxk_alpha * auxk_t
        if cfg.multi_topk and not cfg.batchtopk:
            i4, v4 = _select(pre, min(4 * cfg.k, cfg.n_latents))
            loss = loss + (y - _decode(sae, i4, v4)).pow(2).sum() / total_var / 8
        if not torch.isfinite(loss):
            # diagnosed only here, so that a healthy step pays no extra device sync: bad data
            # (NaN/Inf rows, a constant batch) is named before the learning rate is blamed
            _check_batch(x, idx, "training data")
            if targets is not None:
                _check_batch(y, idx, "targets")
            if float(total_var) == 0:
                raise ShapeError(
                    f"a batch of {'targets' if targets is not None else 'training data'} has zero "
                    f"variance at step {step} (all {x.shape[0]} rows equal), so FVU is undefined; "
                    + (
                        "use batch_size >= 2"
                        if x.shape[0] == 1
                        else "the activations are constant: check the extraction"
                    )
                )
            kept = (
                f"the last good checkpoint (step {last_good}) is kept in {out}"
                if last_good
                else "no checkpoint was written"
            )
            raise FloatingPointError(
                f"loss became {float(loss)} at step {step}; {kept}; lower the learning rate"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # ---- step
        with torch.no_grad():
            if not sae.cfg.transcoder and sae.W_dec.grad is not None:
                w = sae.W_dec
                sae.W_dec.grad -= (sae.W_dec.grad * w).sum(1, keepdim=True) * w
            torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip)
            lr = lr0 * min(1.0, (step + 1) / max(cfg.warmup, 1))
            if cfg.decay and step >= 0.8 * total_steps:
                lr *= max(0.0, (total_steps - step) / (0.2 * total_steps))
            for group in opt.param_groups:
                group["lr"] = lr
        opt.step()
        with torch.no_grad():
            if not sae.cfg.transcoder:
                sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
            since_fired += x.shape[0]
            since_fired[fired_idx.unique()] = 0
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == total_steps:
            rec = {
                "step": step,
                "fvu": float(fvu_t.detach()),
                "auxk": float(auxk_t.detach()),
                "dead_fraction": n_dead / cfg.n_latents,
                "lr": lr,
                "tokens": step * bs,
            }
            history.append(rec)
            bar.set_postfix(fvu=f"{rec['fvu']:.3f}", dead=f"{rec['dead_fraction']:.3f}")
        done = step == total_steps or (
            max_seconds is not None and time.monotonic() - t_start > max_seconds
        )
        if step % cfg.checkpoint_every == 0 or done:
            _checkpoint(sae, opt, since_fired, step, history, cfg_dict, out, hookpoint)
            last_good = step
        if done:
            break
    bar.close()
    if cfg.batchtopk:
        sae.cfg.batchtopk_mode = (
            "threshold"  # inference uses the learned threshold (recorded in cfg)
        )
    sae.requires_grad_(False)
    return sae.eval()


def _checkpoint(
    sae: SparseCoder,
    opt: Any,
    since_fired: torch.Tensor,
    step: int,
    history: list,
    cfg_dict: dict,
    out: Path,
    hookpoint: str,
) -> None:
    if sae.cfg.activation == "batchtopk":
        sae_to_save = sae  # BatchTopK: saved via SAELens layout (sparsify has no threshold)
        from sae_core.formats.saelens import save_saelens

        save_saelens(sae_to_save, out / hookpoint)
    else:
        save_sparsify(sae, out, hookpoint)
    tmp = out / ".trainer_state.pt.tmp"
    torch.save(
        {
            "sae": sae.state_dict(),
            "opt": opt.state_dict(),
            "since_fired": since_fired.clone(),
            "step": step,
            "history": history,
            "cfg": cfg_dict,
        },
        tmp,
    )
    os.replace(tmp, out / "trainer_state.pt")
    write_json_atomic(out / "train_metrics.json", {"step": step, "history": history})


def load_history(out: str | Path) -> list[dict[str, Any]]:
    return json.loads((Path(out) / "train_metrics.json").read_text())["history"]
