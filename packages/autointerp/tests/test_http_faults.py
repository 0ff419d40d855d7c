"""Through lm-kit's real OpenAI-compatible client against its fake server: garbage, persistent
429s and timeouts become recorded failures per latent; the run completes and the report counts them."""

import dataclasses
import json

import pytest
from autointerp.config import preset
from autointerp.pipeline import Pipeline, load_explanations, load_scores
from autointerp.testing import OracleEmbedder
from lm_kit.llm import OpenAICompatClient, RetryPolicy
from lm_kit.testing.fake_openai import FakeOpenAIServer, Fault, Rule

CASES = {
    "garbage": Rule(reply="lorem ipsum, no tag and no list"),
    "429": Rule(faults=[Fault(429, retry_after="0", times=None)]),
    "timeout": Rule(faults=[Fault(delay_s=1.5, times=None)]),
    # a list of the wrong length for every batch: never a silently dropped batch
    "wrong_length": Rule(reply="[1, 0]\n[EXPLANATION]: some words"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_server_yields_recorded_failures(planted, tmp_path, case):
    cfg = preset("quick")
    cfg = dataclasses.replace(
        cfg, score=dataclasses.replace(cfg.score, scorers=("detection", "embedding"))
    )
    with FakeOpenAIServer([CASES[case]]) as server:
        client = OpenAICompatClient(
            server.url,
            "fake-model",
            api_key_env="AUTOINTERP_TEST_KEY",
            retry=RetryPolicy(max_attempts=2, base=0.0, cap=0.0),
            timeout=0.3,
            cache_dir=tmp_path / "llm_cache",
        )
        p = Pipeline(
            tmp_path / "run",
            cfg,
            client,
            OracleEmbedder(),
            source=planted.source,
            explainers=("default", "token_list"),
            progress=False,
        )
        p.run(latents=[0, 1])
    expls = {(e.latent, e.explainer): e for e in load_explanations(tmp_path / "run")}
    summ = json.loads((tmp_path / "run" / "summary.json").read_text())
    scores = load_scores(tmp_path / "run")
    md = (tmp_path / "run" / "report.md").read_text()
    row = next(r for r in md.splitlines() if r.startswith("| detection | default |"))
    assert f"| {summ['scorers']['detection/default']['failed_examples']} |" in row
    if case == "wrong_length":
        det = [s for s in scores if s.scorer == "detection"]
        assert all(s.value is None and s.n_failed == len(s.predictions) > 0 for s in det)
        assert all("wrong-length" in (s.error or "") for s in det)
    elif case == "garbage":
        # the untagged reply is used, flagged; detection answers are unparseable -> failed examples
        assert all("missing_tag" in expls[(i, "default")].flags for i in (0, 1))
        det = [s for s in scores if s.scorer == "detection"]
        assert all(s.value is None and s.n_failed > 0 and s.coverage == 0 for s in det)
        assert summ["scorers"]["detection/default"]["failed_examples"] > 0
    else:
        assert all(expls[(i, "default")].failed for i in (0, 1))
        assert summ["explanations_failed"] == 2
        assert "4 explanations (2 failed)" in md
        det = [s for s in scores if s.scorer == "detection" and s.explainer == "token_list"]
        assert all(
            s.value is None and s.n_failed == s.n_pos + s.n_neg + s.n_failed > 0 for s in det
        )
    # model-free parts of the run are unaffected
    emb = [s for s in scores if s.scorer == "embedding" and s.explainer == "token_list"]
    assert all(s.value is not None for s in emb)
