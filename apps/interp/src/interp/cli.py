"""``interp``: cache -> examples -> explain -> score -> report, resumable at every stage."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

RunDir = Annotated[Path, typer.Option("--run-dir", "-r", help="run directory (created if missing)")]
Llm = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="OpenAI-compatible base URL (http://host:port/v1) or local:<model>, e.g. local:smollm2",
    ),
]
LlmModel = Annotated[
    str | None, typer.Option("--llm-model", help="model name served at --llm (HTTP endpoints)")
]
Prices = Annotated[
    Path | None,
    typer.Option(
        "--prices",
        help="YAML/JSON {model: {input: $/1M, output: $/1M}}: USD per stage in status and report",
    ),
]
Explainers = Annotated[
    str,
    typer.Option(
        "--explainers",
        help="comma list: default, contrastive, token_list, best_of_k, intervention (needs "
        "--subject/--sae), shuffled (baseline)",
    ),
]


Subject = Annotated[
    str | None,
    typer.Option(
        "--subject",
        help="intervention explainer/scorer: the subject model (lm-kit spec: smollm2, a folder)",
    ),
]
SaePath = Annotated[
    Path | None,
    typer.Option("--sae", help="intervention: the sae-core coder folder whose latents are steered"),
]
Site = Annotated[
    str | None, typer.Option("--site", help="intervention: hookpoint (default: the coder's site)")
]
JudgeModel = Annotated[
    str | None,
    typer.Option("--judge", help="intervention scorer's judge LM (default: the subject model)"),
]


class InterpInputError(ValueError):
    """Bad command-line input (a missing run directory, a bad option value)."""


def _clean_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input prints one 'error: ...' line on stderr and exits 1, with no traceback: our own
    checks, and the ValueError / missing-file errors that autointerp, sae-core and lm-kit raise
    with the problem and the fix in the message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from autointerp.embed import MissingEmbedderError
        from lm_kit.errors import LmKitError

        try:
            return fn(*args, **kwargs)
        except json.JSONDecodeError as e:
            typer.echo(f"error: a JSON file is damaged ({e}); fix or delete it and rerun", err=True)
            raise typer.Exit(1) from None
        except (
            ValueError,
            LmKitError,
            MissingEmbedderError,
            FileNotFoundError,
            NotADirectoryError,
            IsADirectoryError,
            FileExistsError,
        ) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _require_run_dir(run_dir: Path) -> Path:
    """An existing run directory (one that ``interp run`` made: it holds manifest.json)."""
    if not run_dir.is_dir():
        raise InterpInputError(
            f"run directory {run_dir} does not exist; create it with `interp run --cache CACHE "
            "--model MODEL --run-dir DIR` (or check --run-dir)"
        )
    if not (run_dir / "manifest.json").is_file():
        raise InterpInputError(
            f"{run_dir} is not an interp run directory (no manifest.json); point --run-dir at a "
            "folder made by `interp run`"
        )
    return run_dir


def _check_llm(llm: str | None, llm_model: str | None) -> None:
    """The --llm target's form, checked before anything is loaded."""
    if llm is None:
        return
    if not llm.startswith(("http://", "https://", "local:")) or llm in ("local:",):
        raise InterpInputError(
            f"--llm must be an http(s):// OpenAI-compatible URL or local:<model>, got {llm!r}"
        )
    if llm.startswith(("http://", "https://")) and not llm_model:
        raise InterpInputError(
            f"--llm {llm} needs --llm-model NAME (the model served at that endpoint)"
        )


def _check_names(explainers: str | None = None, scorers: str | None = None) -> None:
    """Unknown explainer/scorer names, refused before any model or cache is loaded."""
    from autointerp.explainers.base import EXPLAINERS
    from autointerp.pipeline import SCORERS

    for opt, given, valid in (
        ("--explainers", explainers, {*EXPLAINERS, "shuffled"}),
        ("--scorers", scorers, set(SCORERS)),
    ):
        if given is None:
            continue
        names = _split(given)
        if not names:
            raise InterpInputError(f"{opt} names nothing; valid: {', '.join(sorted(valid))}")
        bad = [n for n in names if n not in valid]
        if bad:
            raise InterpInputError(
                f"{opt}: unknown name(s) {bad}; valid: {', '.join(sorted(valid))}"
            )


def _check_prices(prices: Path | None) -> None:
    if prices is not None and not prices.is_file():
        raise InterpInputError(f"--prices {prices} does not exist (or is not a file)")


def _check_steering_args(subject, sae, needed: bool) -> None:
    if needed and (subject is None or sae is None):
        raise typer.BadParameter(
            "the intervention explainer/scorer steers the coder's decoder directions into the "
            "subject model: pass --subject MODEL and --sae CODER_FOLDER",
            param_hint="--subject/--sae",
        )


def _steering(subject, sae, site, judge, needed: bool):
    if not needed:
        return None, None
    _check_steering_args(subject, sae, needed)
    from interp.llm_setup import make_steering

    return make_steering(subject, sae, site, judge)


def _split(s: str | None) -> list[str]:
    return [x.strip() for x in (s or "").split(",") if x.strip()]


def _load_cfg(run_dir: Path, preset_name: str | None):
    from autointerp.config import PipelineConfig, preset

    if preset_name:
        return preset(preset_name)
    man = run_dir / "manifest.json"
    if man.exists():
        try:
            return PipelineConfig.from_dict(json.loads(man.read_text())["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise InterpInputError(
                f"{man} is damaged ({type(e).__name__}: {e}); restore it, or pass --preset NAME "
                "to use a preset config instead"
            ) from None
    return preset("default")


def _pipeline(
    run_dir: Path,
    cfg,
    llm: str | None,
    llm_model: str | None,
    explainers: str,
    source=None,
    need_llm: bool = True,
    need_embed: bool = True,
    prices: Path | None = None,
    steering=(None, None),
):
    from autointerp.pipeline import Pipeline

    from interp.llm_setup import make_embedder, make_llm

    client = make_llm(llm, llm_model, run_dir / "llm_cache", cfg.concurrency) if llm else None
    if client is not None and prices is not None:
        from lm_kit.llm import PriceTable

        client.usage.prices = PriceTable.from_yaml(prices)
    embedder = make_embedder() if need_embed else None
    steerer, judge = steering
    return Pipeline(
        run_dir,
        cfg,
        client,
        embedder,
        source=source,
        explainers=tuple(_split(explainers)),
        steerer=steerer,
        judge=judge,
    )


def _latents(spec: str | None, n_latents: int | None) -> list[int] | None:
    if spec is None:
        return None
    spec = spec.strip()
    if spec.isdigit():
        n = int(spec)
        if n < 1:
            raise InterpInputError(f"--latents {spec}: give N >= 1 (the first N latents)")
        if n_latents is not None and n > n_latents:
            raise InterpInputError(
                f"--latents {spec}: the cache has only {n_latents} latents; pass N <= {n_latents}"
            )
        return list(range(n))
    try:
        out = [int(x) for x in _split(spec)]
    except ValueError:
        raise InterpInputError(
            f"--latents {spec!r}: write N (the first N latents) or a comma list of latent ids, "
            "e.g. 0,5,17"
        ) from None
    if not out:
        raise InterpInputError(f"--latents {spec!r} names no latents; write e.g. 16 or 0,5,17")
    hi = n_latents if n_latents is not None else None
    bad = [i for i in out if i < 0 or (hi is not None and i >= hi)]
    if bad:
        valid = f"0..{hi - 1}" if hi is not None else ">= 0"
        raise InterpInputError(f"--latents: ids {bad} do not exist; valid ids are {valid}")
    return list(dict.fromkeys(out))


@app.command()
@_clean_errors
def run(
    cache: Annotated[Path, typer.Option(help="sae-core latent cache directory")],
    model: Annotated[
        str,
        typer.Option(
            help="tokenizer/model of the cache (lm-kit spec: smollm2, a folder, a hub id)"
        ),
    ],
    run_dir: RunDir = Path("interp_run"),
    llm: Llm = None,
    llm_model: LlmModel = None,
    latents: Annotated[
        str | None, typer.Option(help="N (the first N latents) or a comma list")
    ] = "16",
    coder: Annotated[
        str | None, typer.Option(help="coder key in the cache, e.g. resid_post.6/sae")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="default | delphi | demo | quick")] = None,
    explainers: Explainers = "default,token_list",
    scorers: Annotated[
        str, typer.Option(help="comma list of scorers")
    ] = "detection,fuzzing,embedding",
    prices: Prices = None,
    subject: Subject = None,
    sae: SaePath = None,
    site: Site = None,
    judge: JudgeModel = None,
) -> None:
    """cache -> examples -> explain -> score -> report; each stage skips finished latents.
    The intervention explainer/scorer also need --subject and --sae."""
    from autointerp.source import SaeCoreCacheSource
    from lm_kit import load_model
    from sae_core.cache import LatentCache

    _check_names(explainers, scorers)
    _check_llm(llm, llm_model)
    _check_prices(prices)
    need = "intervention" in _split(scorers) + _split(explainers)
    _check_steering_args(subject, sae, need)
    if run_dir.exists() and not run_dir.is_dir():
        raise InterpInputError(f"--run-dir {run_dir} is a file; pass a folder")
    cfg = _load_cfg(run_dir, preset)
    cfg = dataclasses.replace(
        cfg, score=dataclasses.replace(cfg.score, scorers=tuple(_split(scorers)))
    )
    latent_cache = LatentCache.open(cache, coder=coder)  # a bad path fails before the model loads
    _, tok = load_model(model)
    source = SaeCoreCacheSource(latent_cache, tok)
    lat = _latents(latents, source.n_latents)
    pipe = _pipeline(
        run_dir,
        cfg,
        llm,
        llm_model,
        explainers,
        source=source,
        prices=prices,
        steering=_steering(subject, sae, site, judge, need),
    )
    console.print(pipe.run(latents=lat))


@app.command()
@_clean_errors
def explain(
    run_dir: RunDir,
    llm: Llm = None,
    llm_model: LlmModel = None,
    explainers: Explainers = "default",
    preset: Annotated[str | None, typer.Option()] = None,
    prices: Prices = None,
    subject: Subject = None,
    sae: SaePath = None,
    site: Site = None,
) -> None:
    """Explain every latent with examples in RUN_DIR (skips finished ones)."""
    need = "intervention" in _split(explainers)
    _check_names(explainers)
    _check_llm(llm, llm_model)
    _check_prices(prices)
    _check_steering_args(subject, sae, need)
    _require_run_dir(run_dir)
    pipe = _pipeline(
        run_dir,
        _load_cfg(run_dir, preset),
        llm,
        llm_model,
        explainers,
        need_embed="best_of_k" in explainers,
        prices=prices,
        steering=_steering(subject, sae, site, None, need),
    )
    console.print(pipe.run(stages=["explain"]))


@app.command()
@_clean_errors
def score(
    run_dir: RunDir,
    scorers: Annotated[
        str,
        typer.Option(
            help="comma list, e.g. detection,fuzzing,embedding,simulation,intruder,"
            "example_embedding,intervention (needs --subject and --sae)"
        ),
    ] = "detection,fuzzing,embedding",
    llm: Llm = None,
    llm_model: LlmModel = None,
    explainers: Explainers = "default",
    preset: Annotated[str | None, typer.Option()] = None,
    prices: Prices = None,
    subject: Subject = None,
    sae: SaePath = None,
    site: Site = None,
    judge: JudgeModel = None,
) -> None:
    """Score the stored explanations with any scorers (skips finished ones), then rebuild the report."""
    _check_names(explainers, scorers)
    _check_llm(llm, llm_model)
    _check_prices(prices)
    _check_steering_args(subject, sae, "intervention" in _split(scorers))
    _require_run_dir(run_dir)
    pipe = _pipeline(
        run_dir,
        _load_cfg(run_dir, preset),
        llm,
        llm_model,
        explainers,
        prices=prices,
        steering=_steering(subject, sae, site, judge, "intervention" in _split(scorers)),
    )
    console.print(pipe.run(stages=["score", "report"], scorers=_split(scorers)))


@app.command()
@_clean_errors
def report(run_dir: RunDir) -> None:
    """Tables and figures: scores.parquet/jsonl, summary.json, report.md, report.html, figures/."""
    from autointerp.report import write_report

    path = write_report(_require_run_dir(run_dir))
    summ = json.loads((run_dir / "summary.json").read_text())
    t = Table(title="scores")
    for c in (
        "scorer",
        "explainer",
        "metric",
        "latents",
        "median",
        "failed latents",
        "failed examples",
    ):
        t.add_column(c)
    for v in summ["scorers"].values():
        med = "—" if v["median"] is None else f"{v['median']:.3f}"
        t.add_row(
            v["scorer"],
            v["explainer"],
            v["metric"],
            str(v["latents"]),
            med,
            str(v["failed_latents"]),
            str(v["failed_examples"]),
        )
    console.print(t)
    console.print(f"report: {path}")


@app.command()
@_clean_errors
def export(
    run_dir: RunDir,
    format: Annotated[
        str, typer.Option("--format", help="parquet | jsonl | neuronpedia")
    ] = "parquet",
    out: Annotated[
        Path | None, typer.Option(help="output file (parquet/jsonl) or folder (neuronpedia)")
    ] = None,
    model_id: Annotated[
        str, typer.Option(help="Neuronpedia modelId, e.g. gemma-2-2b")
    ] = "unknown-model",
    source: Annotated[
        str, typer.Option(help="Neuronpedia source (SAE set), e.g. 6-res-topk-4608")
    ] = "unknown-source",
) -> None:
    """Export the scores table (parquet/jsonl, schema in autointerp's README) or Neuronpedia JSON."""
    import shutil

    from autointerp.report import write_report

    if format not in ("parquet", "jsonl", "neuronpedia"):
        raise typer.BadParameter(
            f"unknown format {format!r}; valid: parquet, jsonl, neuronpedia", param_hint="--format"
        )
    _require_run_dir(run_dir)
    if out is not None and format != "neuronpedia" and out.is_dir():
        raise InterpInputError(
            f"--out {out} is a folder; give a file name, e.g. {out}/scores.{format}"
        )
    if format == "neuronpedia":
        from autointerp.export import export_neuronpedia

        dest = out or run_dir / "neuronpedia"
        paths = export_neuronpedia(run_dir, dest, model_id, source)
        console.print(f"wrote {len(paths)} Neuronpedia latent files to {dest}")
        return
    write_report(run_dir)
    src = run_dir / f"scores.{format}"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
    console.print(f"scores table: {out or src}")


@app.command()
@_clean_errors
def compare(
    run_a: Annotated[Path, typer.Argument(help="run directory of SAE A")],
    run_b: Annotated[Path, typer.Argument(help="run directory of SAE B")],
    explainer: Annotated[str, typer.Option(help="whose explanations to match")] = "default",
    sae_a: Annotated[
        Path | None, typer.Option(help="sae-core coder folder of A (adds decoder matching)")
    ] = None,
    sae_b: Annotated[Path | None, typer.Option(help="sae-core coder folder of B")] = None,
) -> None:
    """SAE<->SAE: match latents by explanation (MiniLM cosine, Hungarian) vs shuffled explanations;
    with --sae-a/--sae-b also by decoder (MMCS, Hungarian) and the agreement of both matchings."""
    from autointerp.pipeline import load_explanations
    from autointerp.similarity import SAEView, agreement, match_saes

    from interp.llm_setup import make_embedder

    def view(run: Path, sae: Path | None) -> SAEView:
        if not run.is_dir():
            raise InterpInputError(f"run directory {run} does not exist; check the path")
        ex = {
            e.latent: e.text
            for e in load_explanations(run)
            if e.explainer == explainer and not e.failed and e.text
        }
        if not ex:
            raise typer.BadParameter(
                f"no {explainer!r} explanations in {run}; run `interp explain` there first"
            )
        w = None
        if sae is not None:
            from sae_core import load

            w = load(sae).W_dec.detach().float().numpy()
        return SAEView(ex, w, run.name)

    a, b = view(run_a, sae_a), view(run_b, sae_b)
    e = match_saes(a, b, "explanations", embedder=make_embedder())
    console.print(
        f"explanation matching: {len(e.pairs)} pairs, mean similarity {e.mean:.3f} "
        f"(shuffled explanations: {e.baseline:.3f})"
    )
    if a.W_dec is not None and b.W_dec is not None:
        d = match_saes(a, b, "decoder")
        console.print(
            f"decoder matching: MMCS {d.mmcs:.3f}, Hungarian mean cosine {d.mean:.3f} "
            f"(random pairing {d.baseline:.3f}); agreement with explanations {agreement(e, d):.3f}"
        )


@app.command()
@_clean_errors
def status(run_dir: RunDir) -> None:
    """Progress per stage and token usage so far."""
    from autointerp.accounting import load_usage, usage_by_stage

    _require_run_dir(run_dir)
    n_ex = len(list((run_dir / "examples").glob("latent_*.json")))
    console.print(f"examples: {n_ex} latents")
    for d in sorted((run_dir / "explanations").glob("*")):
        console.print(f"explanations[{d.name}]: {len(list(d.glob('latent_*.json')))}")
    for d in sorted((run_dir / "scores").glob("*/*")):
        console.print(f"scores[{d.parent.name}/{d.name}]: {len(list(d.glob('latent_*.json')))}")
    for st, u in sorted(usage_by_stage(load_usage(run_dir)).items()):
        console.print(
            f"usage[{st}]: {int(u['requests'])} requests, {int(u['prompt_tokens'])} prompt + "
            f"{int(u['completion_tokens'])} completion tokens, {int(u['failures'])} failures, "
            + (
                "USD unknown (no --prices)"
                if u.get("cost_usd") is None
                else f"${u['cost_usd']:.4f}"
            )
        )


@app.command()
@_clean_errors
def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="small sizes: ~10 min on 2 CPU cores")
    ] = False,
    out: Annotated[Path, typer.Option(help="demo directory (rerun to resume)")] = Path(
        "interp_demo"
    ),
    llm: Llm = None,
    llm_model: LlmModel = None,
    explainers: Explainers = "default,token_list,shuffled",
    units: Annotated[
        str | None,
        typer.Option(
            help="unit types: sae, neurons, random_sae (default: all three; --quick: sae)"
        ),
    ] = None,
    intervention: Annotated[
        bool,
        typer.Option(
            "--intervention",
            help="also run the KL-matched intervention scorer on the SAE latents (slower)",
        ),
    ] = False,
) -> None:
    """Offline end to end: SmolLM2-135M-Instruct + a sae-core TopK SAE, explained and scored by SmolLM2
    (local backend) unless --llm points at an OpenAI-compatible endpoint."""
    from interp.demo import run_demo

    _check_names(explainers)
    _check_llm(llm, llm_model)
    if out.exists() and not out.is_dir():
        raise InterpInputError(f"--out {out} is a file; pass a folder for the demo")
    run_demo(
        out if not quick or out != Path("interp_demo") else Path("interp_demo_quick"),
        quick,
        llm,
        llm_model,
        tuple(_split(explainers)),
        units=tuple(_split(units)) or None,
        intervention=intervention,
    )


if __name__ == "__main__":
    app()
