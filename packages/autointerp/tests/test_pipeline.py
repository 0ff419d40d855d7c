import dataclasses
import json

import pyarrow.parquet as pq
import pytest
from autointerp.config import PipelineConfig, preset
from autointerp.pipeline import Pipeline, RunDirError, load_explanations, load_scores
from autointerp.schema import SCHEMA_VERSION, SchemaVersionError, ScoreResult
from autointerp.testing import OracleClient, OracleEmbedder, OracleLogprob


def _cfg():
    cfg = preset("quick")
    return dataclasses.replace(
        cfg,
        score=dataclasses.replace(
            cfg.score, scorers=("detection", "fuzzing", "embedding", "surprisal", "intruder")
        ),
    )


def test_resume_repeats_no_request_and_tables_are_identical(planted, tmp_path):
    cfg = _cfg()
    c1 = OracleClient()
    Pipeline(
        tmp_path, cfg, c1, OracleEmbedder(), OracleLogprob(), planted.source, progress=False
    ).run(latents=[0, 1, 6])
    first = (tmp_path / "scores.parquet").read_bytes()
    assert c1.n_calls > 0
    # "kill": lose one score record and leave a truncated temp file behind
    victim = tmp_path / "scores" / "fuzzing" / "default" / "latent_0000001.json"
    victim.unlink()
    (victim.parent / ".latent_0000001.json.abc.tmp").write_text('{"key": "trunc')
    c2 = OracleClient()
    out = Pipeline(
        tmp_path, cfg, c2, OracleEmbedder(), OracleLogprob(), planted.source, progress=False
    ).run(latents=[0, 1, 6])
    assert out["examples"]["skipped"] == 3 and out["explain"]["skipped"] == 3
    assert out["score"]["done"] == 1  # only the lost record is recomputed
    assert (tmp_path / "scores.parquet").read_bytes() == first
    # and a third run makes no request at all
    c3 = OracleClient()
    Pipeline(
        tmp_path, cfg, c3, OracleEmbedder(), OracleLogprob(), planted.source, progress=False
    ).run(latents=[0, 1, 6])
    assert c3.n_calls == 0


def test_config_change_recomputes_only_affected_stage(planted, tmp_path):
    cfg = _cfg()
    Pipeline(
        tmp_path,
        cfg,
        OracleClient(),
        OracleEmbedder(),
        OracleLogprob(),
        planted.source,
        progress=False,
    ).run(latents=[0])
    cfg2 = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, n_per_prompt=4))
    out = Pipeline(
        tmp_path,
        cfg2,
        OracleClient(),
        OracleEmbedder(),
        OracleLogprob(),
        planted.source,
        progress=False,
    ).run(latents=[0])
    assert out["explain"]["skipped"] == 1 and out["score"]["done"] == 5


def test_results_schema_one_record_per_latent_per_scorer(planted, tmp_path):
    cfg = _cfg()
    Pipeline(
        tmp_path,
        cfg,
        OracleClient(),
        OracleEmbedder(),
        OracleLogprob(),
        planted.source,
        explainers=("default", "token_list"),
        progress=False,
    ).run(latents=[0, 1])
    t = pq.read_table(tmp_path / "scores.parquet").to_pylist()
    assert len(t) == 2 * 5 * 2
    assert {(r["latent"], r["scorer"], r["explainer"]) for r in t}.__len__() == len(t)
    assert all(r["schema_version"] == SCHEMA_VERSION for r in t)
    for col in (
        "value",
        "ci_lo",
        "ci_hi",
        "n_pos",
        "n_neg",
        "n_failed",
        "stopped_at",
        "flags",
        "tokens",
    ):
        assert col in t[0]
    lines = (tmp_path / "scores.jsonl").read_text().splitlines()
    assert len(lines) == len(t) and json.loads(lines[0])["latent"] in (0, 1)
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!doctype html>")
    # examples by quantile: one collapsible block per latent, firing tokens shaded
    assert page.count("<details><summary>latent ") == 2 and "quantile 9" in page
    assert "background:rgba(255,140,0," in page and "<h4>negatives</h4>" in page
    assert (tmp_path / "figures" / "score_distributions.png").exists()
    assert (tmp_path / "figures" / "scorer_correlations.png").exists()
    assert pq.read_table(tmp_path / "predictions.parquet").num_rows > 0


def test_newer_schema_and_other_cache_are_refused(planted, tmp_path):
    with pytest.raises(ValueError, match="upgrade"):
        ScoreResult(
            latent=0,
            scorer="x",
            explainer="y",
            metric="m",
            value=1.0,
            schema_version=SCHEMA_VERSION + 1,
        )
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(SchemaVersionError, match="upgrade"):
        Pipeline(newer, _cfg(), OracleClient(), progress=False)
    Pipeline(tmp_path, _cfg(), OracleClient(), source=planted.source, progress=False)
    from autointerp.synthetic import make_planted_corpus

    other = make_planted_corpus(n_docs=50, seed=1)
    with pytest.raises(RunDirError, match="different activation cache"):
        Pipeline(tmp_path, _cfg(), OracleClient(), source=other.source, progress=False)


def test_config_round_trip():
    cfg = preset("delphi")
    assert PipelineConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ValueError, match="valid presets"):
        preset("nope")


def test_unknown_scorer_is_named(planted, tmp_path):
    p = Pipeline(tmp_path, _cfg(), OracleClient(), source=planted.source, progress=False)
    p.run(stages=["examples"], latents=[0])
    with pytest.raises(ValueError, match="valid: .*detection"):
        p.run(stages=["score"], latents=[0], scorers=["nope"])
    assert load_scores(tmp_path) == []


def test_shuffled_baseline_is_a_derangement_and_scores_lower(planted, tmp_path):
    cfg = preset("quick")
    cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, scorers=("detection",)))
    lat = [0, 1, 2, 3, 4, 5]  # the six token-class latents: each class differs from the others

    def run(client):
        p = Pipeline(
            tmp_path,
            cfg,
            client,
            OracleEmbedder(),
            source=planted.source,
            explainers=("default", "shuffled"),
            progress=False,
        )
        return p.run(latents=lat)

    out = run(OracleClient())
    expl = {(e.latent, e.explainer): e for e in load_explanations(tmp_path)}
    donors = set()
    for i in lat:
        sh = expl[(i, "shuffled")]
        j = int(sh.flags[0].split(":")[1])
        assert j != i and sh.text == expl[(j, "default")].text
        donors.add(j)
    assert donors == set(lat)  # a permutation: every explanation is reused exactly once
    det = {(s.latent, s.explainer): s.value for s in load_scores(tmp_path)}
    for i in lat:
        assert det[(i, "default")] > det[(i, "shuffled")]
    # a rerun changes nothing and asks nothing
    c2 = OracleClient()
    out = run(c2)
    assert c2.n_calls == 0 and out["explain"]["skipped"] == 12 and out["score"]["skipped"] == 12


def test_shuffled_baseline_needs_two_latents(planted, tmp_path):
    cfg = preset("quick")
    cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, scorers=("detection",)))
    Pipeline(
        tmp_path,
        cfg,
        OracleClient(),
        OracleEmbedder(),
        source=planted.source,
        explainers=("default", "shuffled"),
        progress=False,
    ).run(latents=[0])
    e = next(e for e in load_explanations(tmp_path) if e.explainer == "shuffled")
    assert e.failed and ">= 2 latents" in e.error


def test_usd_per_stage_from_price_table_and_unknown_without(planted, tmp_path):
    from lm_kit.llm import PriceTable

    cfg = preset("quick")
    cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, scorers=("detection",)))
    client = OracleClient()
    client.usage.prices = PriceTable({"oracle": {"input": 1.0, "output": 2.0}})
    Pipeline(
        tmp_path / "a", cfg, client, OracleEmbedder(), source=planted.source, progress=False
    ).run(latents=[0, 1])
    usage = json.loads((tmp_path / "a" / "summary.json").read_text())["usage"]
    for st in ("explain", "score:detection"):
        u = usage[st]
        assert u["requests"] > 0
        expected = (u["prompt_tokens"] * 1.0 + u["completion_tokens"] * 2.0) / 1e6
        assert u["cost_usd"] == pytest.approx(expected)
    assert "| explain |" in (tmp_path / "a" / "report.md").read_text()
    Pipeline(
        tmp_path / "b", cfg, OracleClient(), OracleEmbedder(), source=planted.source, progress=False
    ).run(latents=[0])
    usage = json.loads((tmp_path / "b" / "summary.json").read_text())["usage"]
    assert usage["explain"]["cost_usd"] is None  # unknown price: never reported as $0
    assert "unknown" in (tmp_path / "b" / "report.md").read_text()
