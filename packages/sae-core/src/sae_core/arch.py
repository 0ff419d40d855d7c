"""Sparse coders (SAEs and transcoders) with exact encode/decode math.

Canonical parameters: ``W_enc`` [d_in, n], ``b_enc`` [n], ``W_dec`` [n, d_out], ``b_dec`` [d_out],
optional ``threshold`` ([n] for JumpReLU, scalar for BatchTopK), ``W_skip`` [d_out, d_in] and, for
gated SAEs, ``r_mag``/``b_mag`` [n] (``b_enc`` is then the gate bias).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from sae_core.codes import SparseCodes, serial_ops
from sae_core.errors import ConfigError, ShapeError

ACTIVATIONS = ("topk", "batchtopk", "jumprelu", "relu", "groupmax", "gated")
NORMS = ("none", "constant_norm_rescale", "layer_norm")
CHUNK_BYTES = 256 * 2**20


@dataclass
class SAEConfig:
    """Architecture and metadata of a sparse coder."""

    d_in: int
    n_latents: int
    activation: Literal["topk", "batchtopk", "jumprelu", "relu", "groupmax", "gated"] = "topk"
    k: int | None = None
    d_out: int | None = None
    input_bias: Literal["b_dec", "none"] = "b_dec"
    norm_in: Literal["none", "constant_norm_rescale", "layer_norm"] = "none"
    rescale_by_dec_norm: bool = False
    skip: bool = False
    transcoder: bool = False
    batchtopk_mode: Literal["threshold", "batch"] = "threshold"
    site: str | None = None
    site_out: str | None = None
    model_id: str | None = None
    transform: str | None = None
    exclude_tokens: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.d_out is None:
            self.d_out = self.d_in
        self.validate()

    def validate(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {self.activation!r}; use one of {', '.join(ACTIVATIONS)}"
            )
        if self.norm_in not in NORMS:
            raise ConfigError(f"unknown input normalisation {self.norm_in!r}; use one of {NORMS}")
        if self.input_bias not in ("b_dec", "none"):
            raise ConfigError(f"input_bias must be 'b_dec' or 'none', got {self.input_bias!r}")
        for name in ("d_in", "n_latents", "d_out"):
            v = getattr(self, name)
            if not _is_int(v) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.k is not None and not _is_int(self.k):
            raise ConfigError(f"k must be an integer, got {self.k!r}; set k to a whole number")
        if self.batchtopk_mode not in ("threshold", "batch"):
            raise ConfigError(
                f"batchtopk_mode must be 'threshold' or 'batch', got {self.batchtopk_mode!r}"
            )
        if not isinstance(self.exclude_tokens, (list, tuple)) or not all(
            _is_int(t) for t in self.exclude_tokens
        ):
            raise ConfigError(
                f"exclude_tokens must be a list of token ids, got {self.exclude_tokens!r}"
            )
        if self.activation in ("topk", "batchtopk", "groupmax"):
            if self.k is None:
                raise ConfigError(f"activation {self.activation!r} needs k; set k in the config")
            if not 0 < self.k <= self.n_latents:
                raise ConfigError(f"k must be in 1..n_latents={self.n_latents}, got k={self.k}")
        if self.activation == "groupmax" and self.n_latents % self.k:
            raise ConfigError(
                f"groupmax needs n_latents ({self.n_latents}) divisible by k ({self.k})"
            )
        if self.skip and not self.transcoder and self.d_out != self.d_in:
            raise ConfigError("a skip connection needs d_out == d_in unless it is a transcoder")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SAEConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown SAEConfig fields {sorted(unknown)}")
        missing = [k for k in ("d_in", "n_latents") if k not in d]
        if missing:
            raise ConfigError(f"SAEConfig is missing required field(s) {missing}; add them")
        return cls(**d)


def _is_int(v: Any) -> bool:
    """A true integer (Python or NumPy), not a bool or a float such as 2.0."""
    import numbers

    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass
class ForwardOutput:
    recon: torch.Tensor
    idx: torch.Tensor | None
    val: torch.Tensor | None
    fvu: torch.Tensor


class SparseCoder(nn.Module):
    """A sparse autoencoder or transcoder in canonical parameterisation.

    ``encode`` returns dense activations, ``encode_sparse`` CSR codes (zeros dropped),
    ``decode``/``decode_sparse`` reconstruct. ``keep_negative`` is False: only positive
    activations count as firing.
    """

    keep_negative = False

    def __init__(
        self,
        cfg: SAEConfig,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ):
        super().__init__()
        self.cfg = cfg
        d, n, do = cfg.d_in, cfg.n_latents, cfg.d_out
        kw = {"dtype": dtype, "device": device}
        self.W_enc = nn.Parameter(torch.zeros(d, n, **kw))
        self.b_enc = nn.Parameter(torch.zeros(n, **kw))
        self.W_dec = nn.Parameter(torch.zeros(n, do, **kw))
        self.b_dec = nn.Parameter(torch.zeros(do, **kw))
        if cfg.activation == "jumprelu":
            self.threshold = nn.Parameter(torch.zeros(n, **kw))
        elif cfg.activation == "batchtopk":
            self.threshold = nn.Parameter(torch.zeros((), **kw))
        else:
            self.threshold = None
        self.W_skip = nn.Parameter(torch.zeros(do, d, **kw)) if cfg.skip else None
        if cfg.activation == "gated":
            self.r_mag = nn.Parameter(torch.zeros(n, **kw))
            self.b_mag = nn.Parameter(torch.zeros(n, **kw))
        else:
            self.r_mag = self.b_mag = None

    # ------------------------------------------------------------------ helpers
    @property
    def n_latents(self) -> int:
        return self.cfg.n_latents

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(p.shape) for name, p in self.named_parameters()}

    def load_canonical(
        self, tensors: dict[str, torch.Tensor], *, source: str = "weights"
    ) -> SparseCoder:
        """Copy canonical tensors in, checking every name and shape (clear errors)."""
        expected = self.expected_shapes()
        missing = sorted(set(expected) - set(tensors))
        if missing:
            raise ShapeError(
                f"{source}: missing tensors {missing} for a {self.cfg.activation} coder"
            )
        for name, shape in expected.items():
            t = torch.as_tensor(tensors[name])
            if tuple(t.shape) != shape:
                raise ShapeError(
                    f"{source}: tensor {name!r} has shape {tuple(t.shape)}, expected {shape} "
                    f"(d_in={self.cfg.d_in}, n_latents={self.cfg.n_latents}, d_out={self.cfg.d_out})"
                )
            if not torch.isfinite(t).all():
                raise ShapeError(f"{source}: tensor {name!r} contains NaN or Inf values")
            with torch.no_grad():
                getattr(self, name).copy_(t.to(getattr(self, name).dtype))
        return self

    def canonical_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.named_parameters()}

    def dec_norms(self) -> torch.Tensor:
        return self.W_dec.norm(dim=1)

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse inputs that would give a deep torch error or silently wrong codes: not a tensor,
        no feature dimension, the wrong width, another floating dtype, NaN/Inf values (CPU)."""
        if not isinstance(x, torch.Tensor):
            raise ShapeError(
                f"the input must be a torch.Tensor [..., d_in], got {type(x).__name__}; "
                "convert it with torch.as_tensor"
            )
        if x.dim() == 0:
            raise ShapeError(f"the input must have shape [..., d_in={self.cfg.d_in}], got a scalar")
        if x.shape[-1] != self.cfg.d_in:
            raise ShapeError(
                f"input width {x.shape[-1]} does not match the coder's d_in={self.cfg.d_in}"
                + (f" (site {self.cfg.site})" if self.cfg.site else "")
                + "; attach the coder to the site it was trained on"
            )
        if x.is_floating_point() and x.dtype != self.W_enc.dtype:
            raise ShapeError(
                f"input dtype {x.dtype} does not match the coder's {self.W_enc.dtype}; "
                f"pass x.to({self.W_enc.dtype}) (or convert the coder with .to(dtype))"
            )
        # the finite check runs on CPU tensors only: on an accelerator it would force a device
        # sync on every encode (splice hooks, training steps); NaN there propagates into the codes
        if x.numel() and x.device.type == "cpu" and not bool(torch.isfinite(x).all()):
            bad = (~torch.isfinite(x)).reshape(-1, x.shape[-1]).any(-1).nonzero()
            raise ShapeError(
                f"the input has NaN/Inf values in {bad.numel()} of {x.numel() // x.shape[-1]} rows "
                f"(first: row {int(bad[0, 0])}); the codes would be meaningless: check the model's "
                "dtype and inputs"
            )

    def _check_latents(self, width: int, what: str) -> None:
        if width != self.cfg.n_latents:
            raise ShapeError(
                f"{what} have width {width} but the coder has n_latents={self.cfg.n_latents}; "
                "decode with the coder that encoded them"
            )

    # ------------------------------------------------------------------ encode
    def normalize(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Input normalisation ν; returns (ν(x), state used to invert it)."""
        if self.cfg.norm_in == "constant_norm_rescale":
            s = math.sqrt(x.shape[-1]) / x.norm(dim=-1, keepdim=True)
            return x * s, (s, torch.zeros_like(s))
        if self.cfg.norm_in == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            sd = x.std(dim=-1, keepdim=True) + 1e-5  # unbiased, as SAELens
            return (x - mu) / sd, (1 / sd, mu)
        return x, None

    @staticmethod
    def denormalize(
        y: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        if state is None:
            return y
        scale, mu = state
        return y / scale + mu

    def sae_input(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.normalize(x)
        if self.cfg.input_bias == "b_dec":
            x = x - self.b_dec
        return x

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations used for selection (after the decoder-norm rescale when set)."""
        self.check_input(x)
        xin = self.sae_input(x)
        if torch.is_grad_enabled():
            pre = xin @ self.W_enc + self.b_enc
            if self.cfg.rescale_by_dec_norm:
                pre = pre * self.dec_norms()
            return pre
        # inference: the same element-wise ops in place (no second [N, n] temporary)
        pre = xin @ self.W_enc
        pre += self.b_enc
        if self.cfg.rescale_by_dec_norm:
            pre *= self.dec_norms()
        return pre

    def _check_tensor(self, x: torch.Tensor) -> None:
        """The checks :meth:`check_input` makes before any reshape (tensor, not a scalar)."""
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            self.check_input(x)

    def _flat_heads(self, x: torch.Tensor) -> torch.Tensor:
        """SAELens ``reshape_activations="hook_z"``: accept [..., heads, d_head] and flatten it."""
        if (
            self.cfg.meta.get("reshape_activations") == "hook_z"
            and x.dim() >= 2
            and x.shape[-1] != self.cfg.d_in
            and x.shape[-2] * x.shape[-1] == self.cfg.d_in
        ):
            return x.flatten(-2)
        return x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Dense activations f [..., n] (hook_z coders also take [..., heads, d_head])."""
        self._check_tensor(x)
        x = self._flat_heads(x)
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        act = self.cfg.activation
        if act == "gated":
            self.check_input(x)
            pi = self.sae_input(x) @ self.W_enc
            gate = (pi + self.b_enc) > 0
            f = gate * F.relu(pi * torch.exp(self.r_mag) + self.b_mag)
        else:
            pre = self.pre_acts(x)
            if act == "jumprelu":
                f = pre * (pre > self.threshold)
            elif act == "relu":
                f = F.relu(pre)
            elif act == "topk":
                val, idx = torch.topk(F.relu(pre), self.cfg.k, dim=-1, sorted=False)
                f = torch.zeros_like(pre).scatter_(-1, idx, val)
            elif act == "groupmax":
                idx, val = self._groupmax(pre)
                f = torch.zeros_like(pre).scatter_(-1, idx, val)
            elif act == "batchtopk":
                a = F.relu(pre)
                if self.cfg.batchtopk_mode == "batch":
                    flat = a.flatten()
                    kk = min(self.cfg.k * a.shape[0], flat.numel())
                    val, idx = torch.topk(flat, kk, sorted=False)
                    f = torch.zeros_like(flat).scatter_(0, idx, val).view_as(a)
                else:
                    f = a * (a > self.threshold)
            else:  # pragma: no cover - validated in SAEConfig
                raise ConfigError(act)
        return f.reshape(*shape, f.shape[-1])

    def _groupmax(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.cfg.k
        a = F.relu(pre).unflatten(-1, (k, -1))
        val, arg = a.max(dim=-1)
        offsets = torch.arange(k, device=pre.device) * (self.cfg.n_latents // k)
        return arg + offsets, val

    def encode_topk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed-width (idx [N,k], val [N,k]) for TopK/GroupMax; entries may be 0 (not firing)."""
        pre = self.pre_acts(x)
        if self.cfg.activation == "topk":
            val, idx = torch.topk(pre, self.cfg.k, dim=-1, sorted=False)
            return idx, F.relu(val)
        if self.cfg.activation == "groupmax":
            return self._groupmax(pre)
        raise ConfigError(f"encode_topk needs a topk/groupmax coder, not {self.cfg.activation}")

    def chunk_rows(self) -> int:
        return max(1, CHUNK_BYTES // (4 * self.cfg.n_latents))

    @torch.no_grad()
    def encode_sparse(self, x: torch.Tensor, chunk_rows: int | None = None) -> SparseCodes:
        """CSR codes of x [N, d_in] with zeros dropped; never holds more than ``chunk_rows`` dense rows."""
        if chunk_rows is not None and chunk_rows < 0:
            raise ConfigError(
                f"chunk_rows must be positive (or None for the default), got {chunk_rows}"
            )
        self._check_tensor(x)
        x = self._flat_heads(x)
        x = x.reshape(-1, x.shape[-1])
        chunk = chunk_rows or self.chunk_rows()
        parts = []
        for s in range(0, x.shape[0], chunk):
            xc = x[s : s + chunk]
            if self.cfg.activation == "topk":
                # as encode_topk, with the small [rows, k] post-processing on one thread
                pre = self.pre_acts(xc)
                val, idx = torch.topk(pre, self.cfg.k, dim=-1, sorted=False)
                del pre
                with serial_ops():
                    parts.append(SparseCodes.from_topk(idx, F.relu(val), self.n_latents))
            elif self.cfg.activation == "groupmax":
                idx, val = self.encode_topk(xc)
                with serial_ops():
                    parts.append(SparseCodes.from_topk(idx, val, self.n_latents))
            else:
                parts.append(SparseCodes.from_dense(self.encode(xc)))
        with serial_ops():
            return concat_codes(parts, self.n_latents, x)

    # ------------------------------------------------------------------ decode
    def decode(self, f: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction from dense f; ``x`` (the input) is needed for skip and input normalisation."""
        if not isinstance(f, torch.Tensor) or f.dim() == 0:
            raise ShapeError(
                f"latents must be a torch.Tensor [..., n_latents], got {type(f).__name__}"
            )
        self._check_latents(f.shape[-1], "the latents")
        if self.cfg.rescale_by_dec_norm:
            f = f / self.dec_norms()
        y = f @ self.W_dec + self.b_dec
        return self._finish_decode(y, x)

    def _finish_decode(self, y: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        if x is not None:
            flat = self._flat_heads(x)
            if flat is not x:  # hook_z: decode in the flat basis, return the input's head shape
                return self._finish_decode(y, flat).unflatten(-1, x.shape[-2:])
        if self.W_skip is not None:
            if x is None:
                raise ValueError("a skip-connection coder needs the input x to decode")
            y = y + x @ self.W_skip.T
        if self.cfg.norm_in != "none" and not self.cfg.transcoder:
            if x is None:
                raise ValueError(
                    f"norm_in={self.cfg.norm_in} needs the input x to invert the normalisation"
                )
            _, state = self.normalize(x)
            y = self.denormalize(y, state)
        return y

    def decode_sparse(self, codes: SparseCodes, x: torch.Tensor | None = None) -> torch.Tensor:
        """Sparse decode with ``embedding_bag`` (sum of selected decoder rows)."""
        self._check_latents(codes.n_latents, "the sparse codes")
        val = codes.val.to(self.W_dec.dtype)
        idx = codes.idx.long()
        if self.cfg.rescale_by_dec_norm:
            val = val / self.dec_norms()[idx]
        y = F.embedding_bag(
            idx,
            self.W_dec,
            codes.indptr[:-1],
            mode="sum",
            per_sample_weights=val,
            include_last_offset=False,
        )
        return self._finish_decode(y + self.b_dec, x)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> ForwardOutput:
        target = x if y is None else y
        f = self.encode(x)
        recon = self.decode(f, x)
        return ForwardOutput(recon, None, None, fvu(target, recon))


def concat_codes(parts: list[SparseCodes], n_latents: int, like: torch.Tensor) -> SparseCodes:
    if not parts:
        return SparseCodes(
            torch.zeros(1, dtype=torch.long, device=like.device),
            torch.zeros(0, dtype=torch.int32, device=like.device),
            torch.zeros(0, dtype=like.dtype, device=like.device),
            n_latents,
        )
    if len(parts) == 1:
        return parts[0]
    offs = torch.cumsum(torch.tensor([0] + [p.nnz for p in parts[:-1]], device=like.device), 0)
    indptr = torch.cat(
        [parts[0].indptr[:1]] + [p.indptr[1:] + o for p, o in zip(parts, offs, strict=True)]
    )
    return SparseCodes(
        indptr, torch.cat([p.idx for p in parts]), torch.cat([p.val for p in parts]), n_latents
    )


def fvu(y: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
    """Fraction of variance unexplained, sparsify's definition: Σ‖y−ŷ‖² / Σ‖y−ȳ‖² (uncentred error)."""
    if y.shape != y_hat.shape:
        raise ShapeError(
            f"fvu needs the target and the reconstruction in one shape, got {tuple(y.shape)} and "
            f"{tuple(y_hat.shape)}"
        )
    y = y.reshape(-1, y.shape[-1])
    y_hat = y_hat.reshape(-1, y.shape[-1])
    total = (y - y.mean(0)).pow(2).sum()
    return (y - y_hat).pow(2).sum() / total.clamp_min(torch.finfo(y.dtype).tiny)
