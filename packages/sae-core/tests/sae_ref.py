"""Independent float64 NumPy implementation of the spec's encode/decode math (§2), for golden tests."""

from __future__ import annotations

import numpy as np


def ref_normalize(x, norm):
    if norm == "constant_norm_rescale":
        s = np.sqrt(x.shape[-1]) / np.linalg.norm(x, axis=-1, keepdims=True)
        return x * s, lambda y: y / s
    if norm == "layer_norm":
        mu = x.mean(-1, keepdims=True)
        sd = x.std(-1, ddof=1, keepdims=True) + 1e-5
        return (x - mu) / sd, lambda y: y * sd + mu
    return x, lambda y: y


def ref_encode(p, cfg, x):
    """p: dict of float64 arrays (canonical names); cfg: dict like SAEConfig fields."""
    x = np.asarray(x, np.float64)
    xn, _ = ref_normalize(x, cfg.get("norm_in", "none"))
    if cfg.get("input_bias", "b_dec") == "b_dec":
        xn = xn - p["b_dec"]
    act = cfg["activation"]
    if act == "gated":
        pi = xn @ p["W_enc"]
        return (pi + p["b_enc"] > 0) * np.maximum(pi * np.exp(p["r_mag"]) + p["b_mag"], 0)
    pre = xn @ p["W_enc"] + p["b_enc"]
    if cfg.get("rescale_by_dec_norm"):
        pre = pre * np.linalg.norm(p["W_dec"], axis=1)
    a = np.maximum(pre, 0)
    if act == "relu":
        return a
    if act == "jumprelu":
        return np.where(pre > p["threshold"], pre, 0.0)
    if act == "batchtopk":
        return np.where(a > p["threshold"], a, 0.0)
    if act == "topk":
        f = np.zeros_like(a)
        for r in range(a.shape[0]):
            top = np.argsort(-a[r], kind="stable")[: cfg["k"]]
            f[r, top] = a[r, top]
        return f
    if act == "groupmax":
        k = cfg["k"]
        n = a.shape[1]
        g = n // k
        f = np.zeros_like(a)
        for r in range(a.shape[0]):
            for j in range(k):
                seg = a[r, j * g : (j + 1) * g]
                f[r, j * g + int(np.argmax(seg))] = seg.max()
        return f
    raise ValueError(act)


def ref_decode(p, cfg, f, x):
    x = np.asarray(x, np.float64)
    if cfg.get("rescale_by_dec_norm"):
        f = f / np.linalg.norm(p["W_dec"], axis=1)
    y = f @ p["W_dec"] + p["b_dec"]
    if "W_skip" in p:
        y = y + x @ p["W_skip"].T
    if cfg.get("norm_in", "none") != "none" and not cfg.get("transcoder"):
        _, inv = ref_normalize(x, cfg["norm_in"])
        y = inv(y)
    return y


def random_params(rng, d, n, act, d_out=None, skip=False):
    d_out = d_out or d
    p = {
        "W_enc": rng.normal(size=(d, n)) / np.sqrt(d),
        "b_enc": rng.normal(size=n) * 0.1,
        "W_dec": rng.normal(size=(n, d_out)) * rng.uniform(0.5, 2.0, size=(n, 1)) / np.sqrt(d_out),
        "b_dec": rng.normal(size=d_out) * 0.1,
    }
    if act == "jumprelu":
        p["threshold"] = rng.uniform(0.0, 0.3, size=n)
    if act == "batchtopk":
        p["threshold"] = np.array(0.2)
    if act == "gated":
        p["r_mag"] = rng.normal(size=n) * 0.1
        p["b_mag"] = rng.normal(size=n) * 0.1
    if skip:
        p["W_skip"] = rng.normal(size=(d_out, d)) * 0.05
    return {k: v.astype(np.float32).astype(np.float64) for k, v in p.items()}
