"""Bad input gets an error that names the problem and the fix (or a recorded, flagged result):
never a traceback from deep inside numpy/json/pydantic, a hang, or a silently wrong score."""

import asyncio
import dataclasses
import json
import warnings

import numpy as np
import pytest
from autointerp.config import (
    ConfigError,
    ExampleConfig,
    ExplainConfig,
    PipelineConfig,
    ScoreConfig,
    preset,
)
from autointerp.explainers import get_explainer
from autointerp.neurons import compare_units
from autointerp.parse import parse_explanation
from autointerp.pipeline import (
    DamagedRecordWarning,
    Pipeline,
    RunDirError,
    load_scores,
)
from autointerp.schema import SCHEMA_VERSION, Explanation, SchemaVersionError, ScoreResult
from autointerp.scorers import get_scorer
from autointerp.scorers.prompts import FEWSHOTS, classifier_messages
from autointerp.sequential import SequentialRule
from autointerp.similarity import SAEView, agreement, match_saes, mmcs
from autointerp.source import InMemorySource, SaeCoreCacheSource, SourceError, UnknownLatentError
from autointerp.store import write_record
from autointerp.testing import OracleClient, OracleEmbedder
from lm_kit.llm import BaseLLMClient, Completion


class Scripted(BaseLLMClient):
    """Replies with fixed texts (the last one repeats)."""

    def __init__(self, *replies: str) -> None:
        super().__init__()
        self.replies, self.model, self.n_calls = list(replies), "scripted", 0

    async def aclose(self) -> None:
        return None

    async def _complete(self, prompt, params):
        return await self._chat([], params)

    async def _chat(self, messages, params, json_mode=None):
        text = self.replies[min(self.n_calls, len(self.replies) - 1)]
        self.n_calls += 1
        return Completion(text=text, finish_reason="stop", logprobs=None, model=self.model)


def _cfg():
    cfg = preset("quick")
    return dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, scorers=("detection",)))


def _pipe(path, source=None, **kw):
    cfg = kw.pop("cfg", _cfg())
    return Pipeline(
        path, cfg, OracleClient(), OracleEmbedder(), source=source, progress=False, **kw
    )


# ---- settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ExampleConfig(ctx=0), "ctx must be >= 4, got 0"),
        (lambda: ExampleConfig(peak_offset=40), "peak_offset must be < ctx"),
        (lambda: ExampleConfig(train_per_bin=0), "train_per_bin must be >= 1"),
        (lambda: ExampleConfig(test_per_bin=-1), "test_per_bin must be >= 1"),
        (lambda: ExampleConfig(n_negatives=-3), "n_negatives must be >= 0"),
        (lambda: ExampleConfig(neg_mix=(0.5, 0.5, 0.5)), "summing to 1"),
        (lambda: ExampleConfig(align="middle"), "unknown align 'middle'; valid: peak, grid"),
        (lambda: ExampleConfig(sampler="nope"), "unknown sampler"),
        (lambda: ExampleConfig(train_pct=90, test_pct=80), "0 < train_pct < test_pct < 100"),
        (lambda: ExampleConfig(seed=-1), "seed must be >= 0"),
        (lambda: ExampleConfig(n_bins=2.5), "n_bins must be an integer"),
        (lambda: ExplainConfig(n_train=0), "n_train must be >= 1"),
        (lambda: ExplainConfig(k=0), "k must be >= 1"),
        (lambda: ExplainConfig(select_by="vibes"), "unknown select_by"),
        (lambda: ScoreConfig(n_per_prompt=0), "n_per_prompt must be >= 1"),
        (lambda: ScoreConfig(n_pos=-1), "n_pos must be >= 1"),
        (lambda: ScoreConfig(n_neg=0), "n_neg must be >= 1"),
        (lambda: ScoreConfig(n_fewshot=3), "has only 1 few-shot"),
        (lambda: ScoreConfig(scorers="detection"), "tuple of scorer names"),
        (lambda: ScoreConfig(n_intruder_trials=0), "n_intruder_trials must be >= 1"),
        (lambda: ScoreConfig(n_sim_windows=0), "n_sim_windows must be >= 1"),
        (lambda: ScoreConfig(bootstrap_b=-1), "bootstrap_b must be >= 0"),
        (lambda: ScoreConfig(fuzz_mode="loud"), "unknown fuzz_mode"),
        (lambda: PipelineConfig(concurrency=0), "concurrency must be >= 1"),
        (lambda: SequentialRule(round_size=0), "round_size must be >= 2"),
        (lambda: SequentialRule(level=1.5), r"level must be in \(0, 1\)"),
    ],
)
def test_bad_config_values_are_refused_by_name(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_valid_presets_and_delphi_fewshots_still_pass():
    for name in ("default", "delphi", "demo", "quick"):
        preset(name)
    assert ScoreConfig(n_fewshot=3, prompt_style="delphi").n_fewshot == 3
    # the limit matches the prompts: every allowed shot is really sent
    for style, n in FEWSHOTS.items():
        msgs = classifier_messages("detection", style, "x", ["a"], n)
        assert len(msgs) == 2 + 2 * n


def test_from_dict_names_unknown_fields_and_sections():
    with pytest.raises(
        ConfigError, match=r"unknown field\(s\) \['nope'\] in config section 'score'"
    ):
        PipelineConfig.from_dict({"score": {"nope": 1}})
    with pytest.raises(ConfigError, match="must be an object of fields"):
        PipelineConfig.from_dict({"examples": [1, 2]})
    with pytest.raises(ConfigError, match=r"unknown config section\(s\) \['scores'\]"):
        PipelineConfig.from_dict({"scores": {}})
    with pytest.raises(ConfigError, match="in score.rule"):
        PipelineConfig.from_dict({"score": {"rule": {"rounds": 3}}})


@pytest.mark.parametrize(
    ("name", "kw", "match"),
    [
        ("detection", {"n_per_prompt": 0}, "detection scorer: n_per_prompt must be >= 1"),
        ("fuzzing", {"n_neg": -1}, "fuzzing scorer: n_neg must be >= 1"),
        ("detection", {"n_fewshot": 5}, "has only 1 few-shot"),
        ("detection", {"prompt_style": "haiku"}, "unknown prompt_style"),
        ("embedding", {"n_pos": 0}, "embedding scorer: n_pos must be >= 1"),
        ("example_embedding", {"n_neg": 0}, "example_embedding scorer: n_neg"),
        ("surprisal", {"bootstrap_b": -5}, "surprisal scorer: bootstrap_b must be >= 0"),
        ("simulation", {"n_sim_windows": 0}, "n_sim_windows must be >= 1"),
        ("intruder", {"n_intruder_trials": -1}, "n_intruder_trials must be >= 1"),
    ],
)
def test_scorer_settings_are_refused_before_any_call(name, kw, match):
    with pytest.raises(ConfigError, match=match):
        get_scorer(name, client=OracleClient(), embedder=OracleEmbedder(), lm=None, **kw)


@pytest.mark.parametrize(
    ("name", "kw", "match"),
    [
        ("default", {"n_train": 0}, "n_train must be >= 1"),
        ("default", {"n_train": -1}, "n_train must be >= 1"),
        ("best_of_k", {"k": 0}, "k must be >= 1"),
        ("best_of_k", {"select_by": "vibes"}, "unknown select_by 'vibes'"),
        ("contrastive", {"n_pos": 0}, "n_pos must be >= 1"),
        ("token_list", {"n": 0}, "token_list explainer: n must be >= 1"),
    ],
)
def test_explainer_settings_are_refused(name, kw, match):
    with pytest.raises(ConfigError, match=match):
        get_explainer(name, client=OracleClient(), embedder=OracleEmbedder(), **kw)


# ---- sources and latent ids -------------------------------------------------------------------
def test_non_integer_latent_ids_are_named(builder):
    with pytest.raises(UnknownLatentError, match=r"must be integers, got 1.5 \(float\)"):
        builder.build(1.5)
    with pytest.raises(UnknownLatentError, match="must be integers, got '3'"):
        builder.build("3")
    assert builder.build(np.int64(0)).latent == 0  # numpy integers are fine


def test_sources_refuse_paths_and_inconsistent_arrays():
    with pytest.raises(SourceError, match=r"not a path .*LatentCache.open\(path\)"):
        SaeCoreCacheSource("cache_dir", None)
    with pytest.raises(SourceError, match="needs a sae_core LatentCache"):
        SaeCoreCacheSource(object(), None)
    with pytest.raises(SourceError, match="doc_ids has 5 entries but there are 10 tokens"):
        InMemorySource(
            np.arange(10), np.arange(5), np.zeros((10, 2)), lambda ids: list(map(str, ids))
        )


def test_pipeline_checks_latents_up_front(planted, tmp_path):
    p = _pipe(tmp_path, planted.source)
    with pytest.raises(UnknownLatentError, match=r"latents=range\(100\)"):
        p.run(latents=3)
    with pytest.raises(UnknownLatentError, match="must be integers"):
        p.run(latents=[0, 1.5])
    with pytest.raises(UnknownLatentError, match="0..10"):
        p.run(latents=[0, 99])
    assert not (tmp_path / "examples").exists()  # refused before any work
    out = p.run(stages="examples", latents=[0, 0])  # a plain stage name; duplicates run once
    assert out == {"examples": {"built": 1, "skipped": 0}}


def test_pipeline_names_are_checked_at_construction(planted, tmp_path):
    with pytest.raises(ValueError, match=r"unknown explainer\(s\) \['nope'\]; valid: .*shuffled"):
        _pipe(tmp_path / "a", planted.source, explainers=("default", "nope"))
    cfg = _cfg()
    bad = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, scorers=("nope",)))
    with pytest.raises(ValueError, match=r"unknown scorer\(s\) \['nope'\]; valid: .*detection"):
        _pipe(tmp_path / "b", planted.source, cfg=bad)
    p = _pipe(tmp_path / "c", planted.source, explainers="token_list")  # one name, not letters
    assert p.explainers == ("token_list",)
    with pytest.raises(ValueError, match=r"unknown scorer\(s\) \['nope'\]"):
        p.run(latents=[0], scorers=["nope"])
    assert not (tmp_path / "c" / "examples").exists()  # refused before the examples stage


# ---- run directories --------------------------------------------------------------------------
def test_run_dir_that_is_a_file_or_has_a_damaged_manifest(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        _pipe(tmp_path / "f")
    for i, text in enumerate(['{"schema_version": 1, "sour', "[1, 2]", '{"schema_version": "x"}']):
        d = tmp_path / f"m{i}"
        d.mkdir()
        (d / "manifest.json").write_text(text)
        with pytest.raises(RunDirError, match="manifest.json is damaged.*delete it"):
            _pipe(d)


def test_damaged_examples_record_is_named(planted, tmp_path):
    _pipe(tmp_path, planted.source).run(stages=["examples"], latents=[0, 1])
    ex = tmp_path / "examples"
    (ex / "latent_0000000.json").write_text('{"key": "abc", "rec')
    (ex / "latent_0000001.json").write_text('{"key": "abc", "record": {"latent": 1}}')
    for i in (0, 1):
        with pytest.raises(RunDirError, match=f"latent_000000{i}.json is damaged; rerun"):
            _pipe(tmp_path).load_examples(i)
    rec = json.loads((ex / "latent_0000001.json").read_text())
    rec["record"]["schema_version"] = SCHEMA_VERSION + 1
    (ex / "latent_0000001.json").write_text(json.dumps(rec))
    with pytest.raises(SchemaVersionError, match="upgrade"):
        _pipe(tmp_path).load_examples(1)


def _score(i, v=0.8):
    return ScoreResult(latent=i, scorer="detection", explainer="default", metric="m", value=v)


def test_damaged_score_records_are_left_out_with_a_warning(tmp_path):
    d = tmp_path / "scores" / "detection" / "default"
    for i in range(3):
        write_record(d / f"latent_{i:07d}.json", "k", _score(i).model_dump())
    (d / "latent_0000001.json").write_text('{"key": "k", "rec')
    (d / "latent_0000002.json").write_text('{"key": "k", "record": {"latent": 2}}')
    with pytest.warns(DamagedRecordWarning, match=r"2 damaged record file\(s\).*latent_0000001"):
        scores = load_scores(tmp_path)
    assert [s.latent for s in scores] == [0]
    newer = _score(5).model_dump() | {"schema_version": SCHEMA_VERSION + 1}
    (d / "latent_0000005.json").write_text(json.dumps({"key": "k", "record": newer}))
    with pytest.raises(SchemaVersionError, match="upgrade"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        load_scores(tmp_path)
    with pytest.raises(RunDirError, match="does not exist"):
        load_scores(tmp_path / "nope")


def test_compare_units_refuses_missing_and_empty_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="does not exist"):
        compare_units({"sae": tmp_path / "nope"})
    with pytest.raises(RunDirError, match="unit 'sae': no score records"):
        compare_units({"sae": tmp_path / "empty"})


# ---- explanations and LLM replies -------------------------------------------------------------
def test_blank_explanation_is_flagged_not_scored(examples):
    client = OracleClient()
    s = get_scorer("detection", client=client, bootstrap_b=0, sequential=False)
    r = asyncio.run(s.score(examples[0], Explanation(latent=0, explainer="x", text=" \n ")))
    assert r.value is None and "explanation_failed" in r.flags and client.n_calls == 0


def test_bare_explanation_tag_is_an_empty_reply(examples):
    assert parse_explanation("[EXPLANATION]:") == (None, ["empty_explanation"])
    assert parse_explanation('thinking\n[EXPLANATION]:  "" ') == (None, ["empty_explanation"])
    assert parse_explanation("[EXPLANATION]:\nnames of fruits") == ("names of fruits", [])
    client = Scripted("Let me think.\n[EXPLANATION]:")
    e = asyncio.run(get_explainer("default", client=client).explain(examples[0]))
    assert e.failed and e.text == "" and "empty_explanation" in e.flags and client.n_calls == 2


def test_classifier_without_negatives_says_so(planted, examples):
    ex = examples[0].model_copy(update={"negatives": []})
    s = get_scorer("detection", client=OracleClient(), bootstrap_b=0, sequential=False, n_pos=10)
    r = asyncio.run(s.score(ex, Explanation(latent=0, explainer="x", text=planted.latents[0].true)))
    assert r.value is None and r.flags == ["no_negatives"] and r.n_pos == 10


# ---- SAE <-> SAE ------------------------------------------------------------------------------
def test_match_saes_refuses_unusable_decoders_and_settings():
    ok = np.eye(3, 4)
    for W, match in [
        (np.ones(4), r"got shape \(4,\)"),
        (np.zeros((0, 4)), r"got shape \(0, 4\)"),
        (np.full((3, 4), np.nan), r"NaN/inf in 3 row\(s\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            match_saes(SAEView(W_dec=W), SAEView(W_dec=ok), "decoder")
    with pytest.raises(ConfigError, match="max_latents must be >= 1"):
        match_saes(SAEView(W_dec=ok), SAEView(W_dec=ok), "decoder", max_latents=0)
    with pytest.raises(ConfigError, match="topk must be >= 1"):
        match_saes(SAEView(W_dec=ok), SAEView(W_dec=ok), "decoder", topk=0)
    with pytest.raises(ConfigError, match="block must be >= 1"):
        mmcs(ok, ok, block=0)
    z = match_saes(SAEView(W_dec=np.vstack([ok, np.zeros(4)])), SAEView(W_dec=ok), "decoder")
    assert "zero_rows" in z.flags


def test_blank_explanations_do_not_count_and_no_overlap_warns():
    from autointerp.embed import HashingEmbedder

    with pytest.raises(ValueError, match="A has none"):
        match_saes(SAEView({0: "  ", 1: ""}), SAEView({1: "x"}), "explanations", HashingEmbedder(8))
    r = match_saes(SAEView(W_dec=np.eye(3)), SAEView(W_dec=np.eye(3)), "decoder")
    empty = dataclasses.replace(r, pairs=np.zeros((0, 2), int))
    with pytest.warns(RuntimeWarning, match="share no latent of A"):
        assert np.isnan(agreement(r, empty))
