"""Neurons vs latents vs a random SAE (paper §4): the same harness on several unit types, compared
per scorer and explainer by medians, IQRs and a two-sided Mann-Whitney U test against a reference
unit type. Unit types are separate run directories (one sae-core coder each: ``SparseCoder``,
``NeuronCoder``, ``randomized(sae)``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from autointerp.pipeline import RunDirError, load_scores


def compare_units(
    runs: dict[str, str | Path], reference: str | None = None
) -> list[dict[str, object]]:
    """One row per (unit, scorer, explainer): n, median, q25, q75 and the Mann-Whitney p-value of
    this unit's scores against the ``reference`` unit (default: the first) for the same scorer and
    explainer. Latents without a value (failed, flagged) are left out and counted in ``n_missing``."""
    if not runs:
        raise ValueError("compare_units needs at least one {unit: run_dir}")
    reference = reference or next(iter(runs))
    if reference not in runs:
        raise ValueError(f"reference unit {reference!r} is not one of {sorted(runs)}")
    vals: dict[tuple[str, str, str], list[float]] = {}
    missing: dict[tuple[str, str, str], int] = {}
    for unit, d in runs.items():
        scores = load_scores(d)  # a missing run directory is refused by name
        if not scores:
            raise RunDirError(
                f"unit {unit!r}: no score records in {d}; run the score stage there first"
            )
        for s in scores:
            k = (unit, s.scorer, s.explainer)
            if s.value is None:
                missing[k] = missing.get(k, 0) + 1
            else:
                vals.setdefault(k, []).append(float(s.value))
    rows = []
    for k in sorted(set(vals) | set(missing), key=lambda k: (k[1], k[2], list(runs).index(k[0]))):
        unit, scorer, expl = k
        v = np.array(vals.get(k, []), float)
        ref = np.array(vals.get((reference, scorer, expl), []), float)
        p = None
        if unit != reference and len(v) and len(ref):
            p = float(mannwhitneyu(v, ref, alternative="two-sided").pvalue)
        rows.append(
            {
                "unit": unit,
                "scorer": scorer,
                "explainer": expl,
                "n": int(len(v)),
                "n_missing": int(missing.get(k, 0)),
                "median": float(np.median(v)) if len(v) else None,
                "q25": float(np.quantile(v, 0.25)) if len(v) else None,
                "q75": float(np.quantile(v, 0.75)) if len(v) else None,
                "p_vs_reference": p,
            }
        )
    return rows


def units_markdown(rows: list[dict[str, object]], reference: str) -> str:
    f = lambda x: "—" if x is None else f"{x:.3f}"  # noqa: E731
    out = [
        f"| scorer | explainer | unit | n | median | IQR | Mann-Whitney p vs {reference} |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['scorer']} | {r['explainer']} | {r['unit']} | {r['n']} (+{r['n_missing']} missing) | "
            f"{f(r['median'])} | {f(r['q25'])}–{f(r['q75'])} | {f(r['p_vs_reference'])} |"
        )
    return "\n".join(out) + "\n"
