"""Deterministic, purpose-scoped random generators (never the global RNG)."""

from __future__ import annotations

import hashlib

import numpy as np


def stable_hash(*parts: object, digest_size: int = 8) -> int:
    """blake2b hash of the reprs of ``parts`` as an unsigned integer (stable across processes)."""
    h = hashlib.blake2b(digest_size=digest_size)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "little")


def make_rng(seed: int, stage: str, latent: int, purpose: str) -> np.random.Generator:
    """``Generator(PCG64(blake2b(seed, stage, latent, purpose)))``."""
    return np.random.Generator(
        np.random.PCG64(stable_hash(seed, stage, latent, purpose, digest_size=16))
    )


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
