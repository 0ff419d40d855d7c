import json
import re

import pytest
from interp.cli import app
from lm_kit.testing.fake_openai import FakeOpenAIServer, Rule
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.slow
def test_run_end_to_end_on_a_tiny_model_and_sae(tiny_cache, tmp_path, monkeypatch):
    """interp run over a real sae-core cache (tiny Llama + tiny TopK SAE): token-list explanations,
    MiniLM embedding scores; the LLM endpoint echoes garbage, so LLM stages record failures, and the
    run completes, resumes with nothing to redo, and the report counts the failures."""
    run_dir = tmp_path / "run"
    with FakeOpenAIServer([Rule(reply="no idea")]) as server:
        args = [
            "run",
            "--cache",
            str(tiny_cache / "cache"),
            "--model",
            str(tiny_cache / "model"),
            "--run-dir",
            str(run_dir),
            "--latents",
            "0,1,2,3",
            "--preset",
            "quick",
            "--llm",
            server.url,
            "--llm-model",
            "fake-model",
            "--explainers",
            "token_list,default",
            "--scorers",
            "detection,embedding",
        ]
        res = runner.invoke(app, args, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        n_req = len(server.requests)
        res2 = runner.invoke(app, args, catch_exceptions=False)
        assert res2.exit_code == 0
        assert (
            len(server.requests) == n_req
        )  # resumed: no repeated request (response cache + records)
    summ = json.loads((run_dir / "summary.json").read_text())
    emb = summ["scorers"]["embedding/token_list"]
    assert emb["latents"] == 4
    det = summ["scorers"]["detection/token_list"]
    assert det["failed_examples"] > 0  # echoed garbage is counted, not scored as 0
    assert (run_dir / "report.html").exists()
    res = runner.invoke(app, ["status", "--run-dir", str(run_dir)])
    assert "examples: 4 latents" in res.output
    res = runner.invoke(app, ["report", "--run-dir", str(run_dir)])
    assert res.exit_code == 0 and "embedding" in res.output


def test_bad_llm_target_is_explained(tmp_path):
    res = runner.invoke(app, ["explain", "--run-dir", str(tmp_path), "--llm", "ftp://x"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.startswith("error: ")
    assert "OpenAI-compatible URL or local:<model>" in res.stderr


def test_bad_options_and_missing_run_dirs_are_one_line_errors(tmp_path):
    """Each bad value is refused before any model, cache or LLM is loaded: one 'error:' line on
    stderr, exit 1, no traceback (a missing run dir used to get an empty report written into it)."""
    (tmp_path / "file.txt").write_text("x")
    nope, empty = tmp_path / "nope", tmp_path / "empty"
    empty.mkdir()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{oops")
    run = ["run", "--cache", str(nope), "--model", "tiny", "--run-dir", str(tmp_path / "r")]
    cases = [
        (run + ["--scorers", "detection,foo"], "--scorers: unknown name(s) ['foo']"),
        (run + ["--explainers", "nope"], "--explainers: unknown name(s) ['nope']"),
        (run + ["--llm", "http://127.0.0.1:9/v1"], "needs --llm-model NAME"),
        (run + ["--prices", str(nope / "p.yaml")], "--prices"),
        (run[:-1] + [str(tmp_path / "file.txt")], "is a file; pass a folder"),
        (run, "is not a latent cache"),
        (["score", "--run-dir", str(tmp_path), "--scorers", ","], "--scorers names nothing"),
        (["explain", "--run-dir", str(empty)], "not an interp run directory"),
        (["explain", "--run-dir", str(damaged)], "manifest.json is damaged"),
        (["report", "--run-dir", str(nope)], "does not exist"),
        (["status", "--run-dir", str(nope)], "does not exist"),
        (["export", "--run-dir", str(nope), "--format", "jsonl"], "does not exist"),
        (["compare", str(nope), str(empty)], "does not exist"),
        (["demo", "--out", str(tmp_path / "file.txt")], "is a file; pass a folder"),
        (["demo", "--units", "foo", "--out", str(tmp_path / "d")], "--units must include"),
    ]
    for args, needle in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output, res.exception)
        assert res.stderr.startswith("error: ") and needle in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not nope.exists()  # nothing was written for a run dir that does not exist


def test_latents_option_is_checked_against_the_cache():
    from interp.cli import InterpInputError, _latents

    assert _latents("3", 128) == [0, 1, 2] and _latents("5,1,5", 128) == [5, 1]
    for spec, needle in (
        ("0", "N >= 1"),
        ("500", "only 128 latents"),
        ("a,b", "comma list of latent ids"),
        ("-1", "ids [-1] do not exist; valid ids are 0..127"),
        ("3,128", "ids [128] do not exist"),
        (",", "names no latents"),
    ):
        with pytest.raises(InterpInputError, match=re.escape(needle)):
            _latents(spec, 128)


def test_missing_examples_named(tmp_path):
    from autointerp.config import preset
    from autointerp.pipeline import Pipeline, RunDirError

    with pytest.raises(RunDirError, match="examples stage"):
        Pipeline(tmp_path, preset("quick"), progress=False).load_examples(3)


def test_intervention_scorer_from_the_cli(tiny_cache, tmp_path):
    """`interp run --scorers intervention --subject M --sae S` steers the tiny SAE's decoder rows
    into the tiny Llama (KL-matched), scores token-list explanations with the subject model as
    judge, reports them, and a rerun of `interp score` skips every finished record."""
    run_dir = tmp_path / "run"
    common = [
        "--subject",
        str(tiny_cache / "model"),
        "--sae",
        str(tiny_cache / "sae" / "resid_post.1"),
    ]
    args = ["run", "--cache", str(tiny_cache / "cache"), "--model", str(tiny_cache / "model"),
            "--run-dir", str(run_dir), "--latents", "0,1,2", "--preset", "quick",
            "--explainers", "token_list", "--scorers", "intervention", *common]  # fmt: skip
    res = runner.invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summ = json.loads((run_dir / "summary.json").read_text())
    row = summ["scorers"]["intervention/token_list"]
    assert row["metric"] == "nll_delta" and row["latents"] == 3
    assert "intervention" in (run_dir / "report.md").read_text()
    from autointerp.pipeline import load_scores

    scored = [r for r in load_scores(run_dir) if r.scorer == "intervention" and r.value is not None]
    assert scored and all(r.metrics["kl"] is not None for r in scored)
    assert all(r.ci_lo <= r.value <= r.ci_hi for r in scored if r.n_pos >= 2)
    # one stored generation run per latent that had steering prompts
    assert len(list((run_dir / "steering").glob("latent_*.json"))) == len(scored)
    res = runner.invoke(app, ["score", "--run-dir", str(run_dir), "--explainers", "token_list",
                              "--scorers", "intervention", *common], catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0 and "'skipped': 3" in res.output.replace("\n", "")


def test_intervention_without_subject_names_the_fix(tmp_path):
    res = runner.invoke(app, ["score", "--run-dir", str(tmp_path), "--scorers", "intervention"])
    assert res.exit_code != 0
    text = " ".join(res.output.replace("│", " ").split())
    assert "pass --subject MODEL and --sae CODER_FOLDER" in text
