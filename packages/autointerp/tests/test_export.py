"""Neuronpedia export: field names and layout pinned by a hand-written golden fixture."""

import json
from pathlib import Path

import pytest
from autointerp.export import export_neuronpedia, neuronpedia_record
from autointerp.schema import Explanation, LatentExamples, Window

GOLDEN = Path(__file__).parent / "data" / "neuronpedia_golden.json"


def _examples() -> LatentExamples:
    w = lambda toks, acts, kind: Window(  # noqa: E731
        doc_id=1, start=0, tokens=toks, token_ids=list(range(len(toks))), acts=acts, kind=kind
    )
    return LatentExamples(
        latent=7,
        a_max=3.5,
        n_firing=2,
        density=0.01,
        train=[w([" a", " cat"], [0.0, 2.0], "train")],
        test=[w([" the", " dog", " ran"], [0.0, 3.5, 1.0], "test")],
        negatives=[w([" no"], [0.0], "neg_random")],
    )


def _expls() -> list[Explanation]:
    return [
        Explanation(latent=7, explainer="default", text="names of animals"),
        Explanation(latent=7, explainer="token_list", text='the tokens "cat"'),
        Explanation(latent=7, explainer="contrastive", text="", failed=True, error="timeout"),
        Explanation(latent=8, explainer="default", text="another latent"),
    ]


def test_record_matches_golden_fixture():
    rec = neuronpedia_record(
        _examples(), _expls(), "smollm2-135m-instruct", "6-res-topk-4608", "SmolLM2-135M-Instruct"
    )
    assert rec == json.loads(GOLDEN.read_text())


def test_export_writes_one_file_per_latent(planted, tmp_path):
    import dataclasses

    from autointerp.config import preset
    from autointerp.pipeline import Pipeline
    from autointerp.testing import OracleClient, OracleEmbedder

    cfg = preset("quick")
    cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, scorers=("embedding",)))
    Pipeline(
        tmp_path / "run",
        cfg,
        OracleClient(),
        OracleEmbedder(),
        source=planted.source,
        progress=False,
    ).run(latents=[0, 2])
    paths = export_neuronpedia(tmp_path / "run", tmp_path / "np", "m", "src")
    assert sorted(p.name for p in paths) == ["0.json", "2.json"]
    rec = json.loads(paths[0].read_text())
    assert rec["explanations"][0]["explanationModelName"] == "oracle"  # from the manifest
    assert rec["explanations"][0]["description"] == planted.latents[0].true
    vals = [a["maxValue"] for a in rec["activations"]]
    assert vals == sorted(vals, reverse=True) and all(v > 0 for v in vals)
    for a in rec["activations"]:
        assert a["values"][a["maxValueTokenIndex"]] == a["maxValue"]
        assert len(a["tokens"]) == len(a["values"])


def test_export_without_examples_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="interp run"):
        export_neuronpedia(tmp_path, tmp_path / "np", "m", "src")
