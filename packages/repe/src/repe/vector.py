"""``ReadingVector``: per-layer read covectors, write vectors, centres and metadata."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import LayerError, RepeError, VectorMismatchError

SCHEMA_VERSION = 1


@dataclass
class ReadingVector:
    """Directions for a set of 0-based decoder blocks at one site.

    ``write[l]`` is (k, D) in "diff" units (see finders), ``read[l]`` (k, D) unit covectors,
    ``mu[l]`` (D,) the midpoint of the class means, ``signs[l]`` the sign applied to the
    finder output, ``calibration[l]`` per-layer statistics (diff_norm, resid_norm_median,
    score means/SDs, threshold, validation accuracy/AUROC). ``meta`` follows the vector-file
    schema (model identity, site, read position, method, data hash).

    Arithmetic (``+ - * /``) acts on write vectors; the read covector of a combination is its
    normalised write vector and calibration is dropped.
    """

    write: dict[int, np.ndarray]
    read: dict[int, np.ndarray]
    mu: dict[int, np.ndarray]
    signs: dict[int, int] = field(default_factory=dict)
    calibration: dict[int, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, store in (("write", self.write), ("read", self.read)):
            for layer, arr in list(store.items()):
                try:
                    a = np.asarray(arr, dtype=np.float32)
                except (TypeError, ValueError) as e:
                    raise VectorMismatchError(
                        f"{kind} vector at layer {layer} is not numeric ({e})"
                    ) from None
                a = a[None] if a.ndim == 1 else a
                if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
                    raise VectorMismatchError(
                        f"{kind} vector at layer {layer} has shape {a.shape}; expected (k, hidden) "
                        "or (hidden,)"
                    )
                if not np.isfinite(a).all():
                    raise RepeError(
                        f"{kind} vector at layer {layer} contains NaN or Inf; refit it on finite "
                        "activations (or drop the layer with .select)"
                    )
                store[layer] = a
        for layer, arr in list(self.mu.items()):
            self.mu[layer] = np.asarray(arr, dtype=np.float32)
        if set(self.write) != set(self.read):
            raise VectorMismatchError("write and read vectors must cover the same layers")
        widths = {a.shape[-1] for a in self.write.values()} | {
            a.shape[-1] for a in self.read.values()
        }
        if len(widths) > 1:
            raise VectorMismatchError(f"vectors of different widths {sorted(widths)} in one file")
        d = next(iter(widths)) if widths else None
        for layer, m in self.mu.items():
            if m.ndim != 1 or (d is not None and m.shape[0] != d):
                raise VectorMismatchError(
                    f"centre mu at layer {layer} has shape {m.shape}; expected ({d or 'hidden'},)"
                )
            if not np.isfinite(m).all():
                raise RepeError(f"centre mu at layer {layer} contains NaN or Inf; refit the vector")
        self.meta.setdefault("schema_version", SCHEMA_VERSION)
        if self.write:
            self.meta["hidden_size"] = self.hidden_size

    # --- shape ---------------------------------------------------------------------------
    @property
    def layers(self) -> list[int]:
        return sorted(self.write)

    @property
    def hidden_size(self) -> int:
        if not self.write:
            raise VectorMismatchError("the vector has no layers; fit or load one with directions")
        return int(next(iter(self.write.values())).shape[-1])

    @property
    def site(self) -> str:
        return str(self.meta.get("site", "resid_post"))

    def direction(self, layer: int, component: int = 0) -> np.ndarray:
        """Unit write direction at ``layer``."""
        if layer not in self.write:
            raise LayerError(f"vector has no layer {layer}; it has layers {self.layers}")
        k = self.write[layer].shape[0]
        if not isinstance(component, int | np.integer) or not -k <= component < k:
            raise RepeError(
                f"component {component!r} is out of range: the vector has {k} component(s) at "
                f"layer {layer}; pass component in 0..{k - 1}"
            )
        w = self.write[layer][component].astype(np.float64)
        n = np.linalg.norm(w)
        return (w / n if n > 0 else w).astype(np.float32)

    def score(self, layer: int, acts: np.ndarray) -> np.ndarray:
        """Reading score ``read . (h - mu)`` for (..., D) activations."""
        if layer not in self.read:
            raise LayerError(f"vector has no layer {layer}; it has layers {self.layers}")
        acts = np.asarray(acts, dtype=np.float64)
        if acts.shape[-1] != self.hidden_size:
            raise VectorMismatchError(
                f"activations have hidden size {acts.shape[-1]} but the vector has "
                f"{self.hidden_size}; use activations from the model the vector was trained on"
            )
        mu = self.mu.get(layer)
        centred = acts - (mu.astype(np.float64) if mu is not None else 0.0)
        return centred @ self.read[layer][0].astype(np.float64)

    def select(self, layers: Iterable[int]) -> ReadingVector:
        ls = list(layers)
        missing = [layer for layer in ls if layer not in self.write]
        if missing:
            raise LayerError(f"vector has no layers {missing}; it has layers {self.layers}")
        return ReadingVector(
            write={layer: self.write[layer].copy() for layer in ls},
            read={layer: self.read[layer].copy() for layer in ls},
            mu={layer: self.mu[layer].copy() for layer in ls if layer in self.mu},
            signs={layer: self.signs[layer] for layer in ls if layer in self.signs},
            calibration={
                layer: dict(self.calibration[layer]) for layer in ls if layer in self.calibration
            },
            meta=copy.deepcopy(self.meta),
        )

    # --- arithmetic ----------------------------------------------------------------------
    def _combine(self, other: ReadingVector, sign: float) -> ReadingVector:
        if not isinstance(other, ReadingVector):
            return NotImplemented  # type: ignore[return-value]
        if other.hidden_size != self.hidden_size:
            raise VectorMismatchError(
                f"cannot combine vectors of hidden size {self.hidden_size} and {other.hidden_size}"
            )
        layers = sorted(set(self.write) | set(other.write))
        zero = np.zeros((1, self.hidden_size), np.float32)
        write = {
            layer: self.write.get(layer, zero)[:1] + sign * other.write.get(layer, zero)[:1]
            for layer in layers
        }
        return self._from_write(
            write, op=f"{'+' if sign > 0 else '-'} {other.meta.get('name', 'vector')}"
        )

    def _from_write(self, write: dict[int, np.ndarray], op: str) -> ReadingVector:
        read = {}
        for layer, w in write.items():
            n = np.linalg.norm(w[0])
            read[layer] = (w / n if n > 0 else w).astype(np.float32)
        mu = {layer: self.mu[layer] for layer in write if layer in self.mu}
        meta = copy.deepcopy(self.meta)
        meta.setdefault("arithmetic", []).append(op)
        meta["method"] = {"name": "arithmetic", "params": {"ops": meta["arithmetic"]}, "seed": None}
        return ReadingVector(write=write, read=read, mu=mu, signs={}, calibration={}, meta=meta)

    def __add__(self, other: ReadingVector) -> ReadingVector:
        return self._combine(other, 1.0)

    def __sub__(self, other: ReadingVector) -> ReadingVector:
        return self._combine(other, -1.0)

    def __mul__(self, c: float) -> ReadingVector:
        try:
            c = float(c)
        except (TypeError, ValueError):
            return NotImplemented  # type: ignore[return-value]
        if not np.isfinite(c):
            raise RepeError(f"cannot scale a vector by {c}; use a finite number")
        out = self._from_write({k: v * c for k, v in self.write.items()}, op=f"* {c}")
        if c < 0:  # keep reading orientation consistent with the write vector
            return out
        out.calibration = copy.deepcopy(self.calibration)
        return out

    __rmul__ = __mul__

    def __truediv__(self, c: float) -> ReadingVector:
        if float(c) == 0:
            raise RepeError("cannot divide a vector by 0")
        return self * (1.0 / float(c))

    def __neg__(self) -> ReadingVector:
        return self * -1.0
