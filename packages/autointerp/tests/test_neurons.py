"""Unit-type comparison (SAE vs neurons vs random SAE): medians, IQRs, Mann-Whitney p."""

import pytest
from autointerp.neurons import compare_units, units_markdown
from autointerp.schema import ScoreResult
from autointerp.store import write_record


def _run(root, vals, scorer="detection", expl="default"):
    for i, v in enumerate(vals):
        r = ScoreResult(
            latent=i, scorer=scorer, explainer=expl, metric="balanced_accuracy", value=v
        )
        write_record(root / "scores" / scorer / expl / f"latent_{i:07d}.json", "k", r.model_dump())
    return root


def test_compare_units_medians_iqr_and_exact_p(tmp_path):
    runs = {
        "sae": _run(tmp_path / "a", [0.9, 0.8, 0.85, None]),
        "neurons": _run(tmp_path / "b", [0.5, 0.6, 0.55]),
    }
    rows = {r["unit"]: r for r in compare_units(runs)}
    assert rows["sae"]["median"] == pytest.approx(0.85) and rows["sae"]["n_missing"] == 1
    assert rows["neurons"]["q25"] == pytest.approx(0.525)  # numpy linear: 0.5 + 0.5*(0.55-0.5)
    # fully separated 3 vs 3, exact two-sided U test: 2 / C(6, 3) = 0.1
    assert rows["neurons"]["p_vs_reference"] == pytest.approx(0.1)
    assert rows["sae"]["p_vs_reference"] is None
    md = units_markdown(list(rows.values()), "sae")
    assert "| detection | default | neurons | 3 (+0 missing) | 0.550 |" in md


def test_compare_units_bad_reference(tmp_path):
    with pytest.raises(ValueError, match="not one of"):
        compare_units({"sae": tmp_path}, reference="neurons")
