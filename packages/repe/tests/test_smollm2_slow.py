"""SmolLM2-135M-Instruct, offline: the demo at reduced size must meet the spec's acceptance
(held-out AUROC >= 0.95; log-odds monotone in c with |delta| >= 2 at c = +-0.25 and neutral
KL <= 0.2 nats/token; figures written; save -> load -> apply gives identical logits)."""

from __future__ import annotations

import pytest

# a few CPU-minutes; the generous timeout is for shared, contended machines
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_smollm2_reading_and_steering(tmp_path):
    from lm_kit import load_model
    from repe.demo import run_demo

    model, tok = load_model("smollm2")
    s = run_demo(
        tmp_path,
        model=model,
        tokenizer=tok,
        layers="12-20",
        coeffs=(-0.25, 0.0, 0.25),
        kl_tokens=512,
        methods=("mean_diff",),
        n_boot=200,
    )
    aurocs = s["heldout_auroc_mean_diff"]
    assert max(aurocs.values()) >= 0.95, aurocs
    rows = {r["coeff"]: r for r in s["steering"]["rows"]}
    lo = {c: r["logodds"] for c, r in rows.items()}
    assert lo[-0.25] < lo[0.0] < lo[0.25], lo
    assert lo[0.25] - lo[0.0] >= 2 and lo[0.0] - lo[-0.25] >= 2, lo
    assert abs(rows[0.0]["kl"]) < 1e-9  # c = 0 is the identity
    assert all(0.0 < rows[c]["kl"] <= 0.2 for c in (-0.25, 0.25)), rows
    assert s["save_load_apply_identical_logits"] is True
    for f in ("reading_auroc_mean_diff.png", "steering_logodds_kl.png", "scan_heatmap.png"):
        assert (tmp_path / f).stat().st_size > 1000, f
