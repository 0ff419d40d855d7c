"""Bad LLM behaviour is recorded per latent: never a crash of the run, never a silent zero, never
a silently dropped batch."""

import asyncio
import dataclasses

from autointerp.config import preset
from autointerp.pipeline import Pipeline, load_scores
from autointerp.schema import Explanation
from autointerp.scorers import get_scorer
from autointerp.testing import OracleClient, OracleEmbedder
from lm_kit.llm import LLMTimeoutError, RateLimited


def _det(client, ex, text, **kw):
    return asyncio.run(
        get_scorer("detection", client=client, bootstrap_b=50, **kw).score(
            ex, Explanation(latent=ex.latent, explainer="x", text=text)
        )
    )


def test_wrong_number_of_answers_is_never_dropped(planted, examples):
    ex = examples[0]
    client = OracleClient(mode="wrong_length")
    r = _det(client, ex, planted.latents[0].true, sequential=False, n_pos=20, n_neg=20)
    assert len(r.predictions) == 40  # every example is accounted for
    assert r.n_failed == 40 and all(p.failed for p in r.predictions)
    assert r.value is None and "all_failed" in r.flags and "insufficient" in r.flags
    assert client.n_calls == 2 * 8  # one repair retry per batch of 5
    assert "wrong-length" in r.error


def test_garbage_answers_are_failures_not_zeros(planted, examples):
    r = _det(
        OracleClient(mode="garbage"),
        examples[0],
        planted.latents[0].true,
        sequential=False,
        n_pos=10,
        n_neg=10,
    )
    assert r.value is None and r.n_failed == 20 and r.coverage == 0.0


def test_partial_failures_lower_coverage_and_keep_the_rest(planted, examples):
    client = OracleClient(exception=lambda: RateLimited(3600, 120), fail_every=3)
    r = _det(client, examples[0], planted.latents[0].true, sequential=False, n_pos=30, n_neg=30)
    assert 0 < r.n_failed < 60 and r.value == 1.0  # successes are scored; failures counted
    assert r.coverage == (60 - r.n_failed) / 60
    assert "RateLimited" in r.error


def test_no_logprobs_gives_nan_auroc_flag(planted, examples):
    r = _det(
        OracleClient(logprobs=False),
        examples[0],
        planted.latents[0].true,
        sequential=False,
        n_pos=10,
        n_neg=10,
    )
    assert r.value == 1.0 and r.metrics["auroc"] is None and "no_logprobs" in r.flags


def test_pipeline_survives_timeouts_and_counts_failures(planted, tmp_path):
    cfg = preset("quick")
    cfg = dataclasses.replace(
        cfg, score=dataclasses.replace(cfg.score, scorers=("detection", "fuzzing", "embedding"))
    )
    client = OracleClient(exception=lambda: LLMTimeoutError(6, 120.0))
    p = Pipeline(tmp_path, cfg, client, OracleEmbedder(), source=planted.source, progress=False)
    out = p.run(latents=[0, 1, 2])
    assert out["explain"]["failed"] == 3
    scores = load_scores(tmp_path)
    det = [s for s in scores if s.scorer == "detection"]
    assert len(det) == 3 and all(s.value is None and "explanation_failed" in s.flags for s in det)
    import json

    summ = json.loads((tmp_path / "summary.json").read_text())
    assert summ["explanations_failed"] == 3
    assert "explanations" in (tmp_path / "report.md").read_text()
    # a healthy client on rerun fills the failures in (failed records are retried)
    p2 = Pipeline(
        tmp_path, cfg, OracleClient(), OracleEmbedder(), source=planted.source, progress=False
    )
    out2 = p2.run(latents=[0, 1, 2])
    assert out2["explain"]["done"] == 3
    assert all(s.value is not None for s in load_scores(tmp_path) if s.scorer == "detection")
