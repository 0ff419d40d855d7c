"""Neuronpedia export: one JSON file per latent.

Fields (recalled from Neuronpedia's upload format, pinned by the golden fixture
``tests/data/neuronpedia_golden.json``)::

    {"modelId", "source", "index",
     "explanations": [{"description", "explanationModelName", "typeName"}],
     "activations": [{"tokens", "values", "maxValue", "maxValueTokenIndex"}]}

``index`` is a string, as in Neuronpedia's URLs and API. Activations are the latent's positive
windows (train + test), strongest first; failed explanations are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from autointerp.schema import Explanation, LatentExamples
from autointerp.store import atomic_write_text, read_record

NEURONPEDIA_VERSION = 1


def neuronpedia_record(
    ex: LatentExamples,
    explanations: list[Explanation],
    model_id: str,
    source: str,
    explanation_model: str,
    max_activations: int = 20,
) -> dict:
    wins = sorted((w for w in ex.train + ex.test if w.is_positive), key=lambda w: -w.max_act)
    acts = []
    for w in wins[:max_activations]:
        peak = max(range(len(w.acts)), key=lambda t: w.acts[t])
        acts.append(
            {
                "tokens": list(w.tokens),
                "values": [float(a) for a in w.acts],
                "maxValue": float(w.acts[peak]),
                "maxValueTokenIndex": int(peak),
            }
        )
    expl = [
        {
            "description": e.text,
            "explanationModelName": "none" if e.explainer == "token_list" else explanation_model,
            "typeName": f"autointerp-{e.explainer}",
        }
        for e in explanations
        if not e.failed and e.text and e.latent == ex.latent
    ]
    return {
        "modelId": model_id,
        "source": source,
        "index": str(ex.latent),
        "explanations": expl,
        "activations": acts,
    }


def export_neuronpedia(
    run_dir: str | Path,
    out_dir: str | Path,
    model_id: str,
    source: str,
    explanation_model: str | None = None,
    max_activations: int = 20,
) -> list[Path]:
    """Write ``out_dir/<index>.json`` for every latent with examples in ``run_dir``."""
    from autointerp.pipeline import load_explanations

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    ex_files = sorted((run_dir / "examples").glob("latent_*.json"))
    if not ex_files:
        raise FileNotFoundError(
            f"no examples in {run_dir / 'examples'}; run `interp run` (or the examples stage) first"
        )
    if explanation_model is None:
        man = run_dir / "manifest.json"
        explanation_model = (
            json.loads(man.read_text()).get("llm_model", "unknown") if man.exists() else "unknown"
        )
    by_latent: dict[int, list[Explanation]] = {}
    for e in load_explanations(run_dir):
        by_latent.setdefault(e.latent, []).append(e)
    written = []
    for p in ex_files:
        rec = read_record(p)
        if rec is None:
            continue
        ex = LatentExamples.model_validate(rec)
        obj = neuronpedia_record(
            ex, by_latent.get(ex.latent, []), model_id, source, explanation_model, max_activations
        )
        path = out_dir / f"{ex.latent}.json"
        atomic_write_text(path, json.dumps(obj, indent=1))
        written.append(path)
    return written
