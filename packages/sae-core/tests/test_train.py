"""Trainer: planted-dictionary recovery, AuxK reduces dead latents, bit-exact resume, checkpoint layout."""

from __future__ import annotations

import numpy as np
import pytest
import sae_core
import torch
from sae_core.train import TrainConfig, evaluate, geometric_median, train


def planted(n_samples=24_000, d=64, atoms=256, active=4, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.normal(size=(atoms, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    idx = np.stack([rng.choice(atoms, active, replace=False) for _ in range(n_samples)])
    mag = rng.exponential(1.0, size=(n_samples, active))
    x = np.einsum("nk,nkd->nd", mag, D[idx]) + noise * rng.normal(size=(n_samples, d))
    return x.astype(np.float32), D


def test_geometric_median_matches_brute_force():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(200, 3)) + np.array([5.0, -2, 1]), dtype=torch.float32)
    gm = geometric_median(x)
    obj = lambda y: (x - y).norm(dim=1).sum()  # noqa: E731
    for _ in range(20):  # no random perturbation does better
        assert obj(gm) <= obj(gm + 0.01 * torch.randn(3)) + 1e-4


@pytest.mark.slow
def test_planted_dictionary_recovered(tmp_path):
    x, D = planted()
    cfg = TrainConfig(
        n_latents=512,
        k=8,
        batch_size=256,
        epochs=8,
        lr=4e-3,
        warmup=20,
        dead_tokens=20_000,
        site="resid_post.0",
        checkpoint_every=10_000,
    )
    sae = train(x, cfg, tmp_path / "a", progress=False)
    W = sae.W_dec.detach().numpy()
    cos = D @ (W / np.linalg.norm(W, axis=1, keepdims=True)).T
    recovered = float((cos.max(1) > 0.9).mean())
    m = evaluate(sae, torch.from_numpy(x[:4000]))
    assert recovered >= 0.8, recovered
    assert m["fvu"] < 0.1, m
    # the checkpoint is a sparsify folder that loads back to the same coder
    back = sae_core.load(tmp_path / "a" / "resid_post.0")
    torch.testing.assert_close(back.W_dec, sae.W_dec)


def test_resume_is_bit_exact(tmp_path):
    x, _ = planted(n_samples=4000)
    cfg = TrainConfig(
        n_latents=128,
        k=4,
        batch_size=128,
        steps=12,
        lr=1e-3,
        warmup=3,
        dead_tokens=500,
        checkpoint_every=6,
    )
    full = train(x, cfg, tmp_path / "full", progress=False)
    part = train(x, cfg, tmp_path / "part", progress=False, max_seconds=0.0)  # stops after one step
    state = torch.load(tmp_path / "part" / "trainer_state.pt", weights_only=False)
    assert state["step"] == 1
    resumed = train(x, cfg, tmp_path / "part", progress=False)
    assert part is not resumed
    for name, t in full.state_dict().items():
        assert torch.equal(t, resumed.state_dict()[name]), name
    with pytest.raises(sae_core.ConfigError, match="another config"):
        train(x, TrainConfig(**{**cfg.__dict__, "k": 5}), tmp_path / "part", progress=False)


def test_bad_training_input(tmp_path):
    with pytest.raises(sae_core.ShapeError, match="empty"):
        train(
            np.zeros((0, 8), np.float32), TrainConfig(n_latents=16, k=2), tmp_path, progress=False
        )
    with pytest.raises(sae_core.ConfigError, match="k=32 exceeds"):
        train(
            np.zeros((10, 8), np.float32), TrainConfig(n_latents=16, k=32), tmp_path, progress=False
        )


def test_auxk_trains_only_dead_latents(tmp_path):
    """With every latent dead except the top-k winners, AuxK must move dead latents' encoders; without
    AuxK dead latents get no gradient at all."""
    x, _ = planted(n_samples=512)
    base = dict(
        n_latents=128,
        k=1,
        batch_size=16,
        steps=2,
        lr=1e-2,
        warmup=1,
        dead_tokens=0,
        checkpoint_every=99,
        decay=False,
    )
    init = train(
        x, TrainConfig(**base, auxk_alpha=0.0), tmp_path / "i", progress=False, max_seconds=0.0
    )
    a = train(x, TrainConfig(**base, auxk_alpha=1.0), tmp_path / "a", progress=False)
    b = train(x, TrainConfig(**base, auxk_alpha=0.0), tmp_path / "b", progress=False)
    moved_a = (a.W_enc - init.W_enc).abs().sum(0) > 0
    moved_b = (b.W_enc - init.W_enc).abs().sum(0) > 0
    assert int(moved_b.sum()) <= 32 < int(moved_a.sum())  # k=1 x 16 tokens x 2 steps vs + AuxK


def test_transcoder_and_batchtopk_training(tmp_path):
    x, _ = planted(n_samples=2000, d=16, atoms=32)
    A = np.random.default_rng(1).normal(size=(16, 12)).astype(np.float32)
    y = x @ A
    tc = train(
        x,
        TrainConfig(
            n_latents=64,
            k=4,
            batch_size=200,
            steps=30,
            lr=3e-3,
            warmup=2,
            site="mlp_in.0",
            site_out="mlp_out.0",
            hookpoint="layers.0.mlp",
        ),
        tmp_path / "tc",
        targets=y,
        progress=False,
    )
    assert tc.cfg.transcoder and tc.cfg.d_out == 12 and tc.cfg.input_bias == "none"
    back = sae_core.load(tmp_path / "tc" / "layers.0.mlp")
    assert back.cfg.transcoder and (back.cfg.site, back.cfg.site_out) == ("mlp_in.0", "mlp_out.0")
    xt = torch.from_numpy(x[:50])
    torch.testing.assert_close(back.decode(back.encode(xt), xt), tc.decode(tc.encode(xt), xt))
    bt = train(
        x,
        TrainConfig(
            n_latents=64,
            k=4,
            batch_size=200,
            steps=30,
            lr=3e-3,
            warmup=2,
            batchtopk=True,
            site="resid_post.0",
        ),
        tmp_path / "bt",
        progress=False,
    )
    assert bt.cfg.batchtopk_mode == "threshold" and float(bt.threshold) > 0
    l0 = (bt.encode(torch.from_numpy(x[:500])) > 0).sum(1).float().mean()
    assert 1 <= float(l0) <= 16  # the learned threshold keeps roughly k per token


def test_shuffle_buffer_order():
    from sae_core.train.trainer import ShuffleOrder

    n, W = 1000, 64
    o = ShuffleOrder(n, W, seed=3)
    for epoch in range(3):
        rows = o.take(epoch * n, n)
        assert np.array_equal(np.sort(rows), np.arange(n))  # each epoch is a permutation
        # the buffer bounds locality: any W consecutive positions touch at most two windows
        # (three when the short last window lies between them)
        for p in range(0, n - W, 7):
            touched = np.unique(rows[p : p + W] // W)
            assert touched.size <= 2 or (touched.size == 3 and n // W in touched)
    e0, e1 = o.take(0, n), o.take(n, n)
    assert not np.array_equal(e0, e1)  # reshuffled per epoch
    # stateless: any split of the stream into takes gives the same rows (resume is exact)
    fresh = ShuffleOrder(n, W, seed=3)
    parts = [fresh.take(p, 37) for p in range(0, 3 * n, 37)]
    assert np.array_equal(np.concatenate(parts)[: 3 * n], np.concatenate([o.take(0, 3 * n)]))
    # rows of one window are shuffled within it (not left in file order)
    assert not np.array_equal(np.sort(e0[:W]), e0[:W])
    # global mode: one permutation per epoch, as rng([seed, epoch]).permutation(n)
    g = ShuffleOrder(n, W, seed=3, mode="global")
    assert np.array_equal(g.take(n, n), np.random.default_rng([3, 1]).permutation(n))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", 0.0, r"TrainConfig.lr must be positive"),
        ("lr", -1e-3, r"TrainConfig.lr must be positive"),
        ("batch_size", 0, r"TrainConfig.batch_size must be a positive integer, got 0"),
        ("steps", 0, r"TrainConfig.steps must be a positive integer, got 0"),
        ("steps", -3, r"TrainConfig.steps must be a positive integer"),
        ("epochs", 0, r"TrainConfig.epochs must be a positive number"),
        ("checkpoint_every", 0, r"TrainConfig.checkpoint_every must be a positive integer"),
        ("grad_clip", 0.0, r"TrainConfig.grad_clip must be positive"),
        ("n_latents", 0, r"TrainConfig.n_latents must be a positive integer"),
        ("k", 0, r"TrainConfig.k must be a positive integer"),
    ],
)
def test_train_config_out_of_range(field, value, message):
    with pytest.raises(sae_core.ConfigError, match=message):
        TrainConfig(**{"n_latents": 16, "k": 2, field: value})


def test_train_refuses_bad_data_and_folders(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    cfg = TrainConfig(n_latents=16, k=2, batch_size=64, steps=2)
    bad = x.copy()
    bad[150, 3] = np.inf
    with pytest.raises(sae_core.ShapeError, match=r"NaN/Inf values \(row 150"):
        train(
            bad,
            TrainConfig(n_latents=16, k=2, batch_size=200, steps=1),
            tmp_path / "a",
            progress=False,
        )
    with pytest.raises(sae_core.ShapeError, match=r"targets must be a 2-D .* shape \(200,\)"):
        train(x, cfg, tmp_path / "b", targets=np.zeros(200, np.float32), progress=False)
    with pytest.raises(sae_core.ShapeError, match="zero variance"):
        train(np.ones((200, 8), np.float32), cfg, tmp_path / "c", progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(sae_core.ConfigError, match="is a file; pass a folder"):
        train(x, cfg, tmp_path / "file", progress=False)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "trainer_state.pt").write_bytes(b"garbage")
    with pytest.raises(sae_core.ConfigError, match="cannot resume from .*delete it to start over"):
        train(x, cfg, tmp_path / "d", progress=False)


def test_evaluate_bad_input():
    sae = sae_core.SparseCoder(sae_core.SAEConfig(d_in=8, n_latents=16, k=2))
    with pytest.raises(sae_core.ShapeError, match=r"N > 0, d\], got shape \(0, 8\)"):
        evaluate(sae, torch.zeros(0, 8))
    with pytest.raises(sae_core.ShapeError, match="zero variance"):
        evaluate(sae, torch.ones(4, 8))
    with pytest.raises(sae_core.ConfigError, match="batch must be positive"):
        evaluate(sae, torch.randn(4, 8), batch=0)
