"""``repe`` command line: train, read, steer, eval (sweep | mc | ab), export-gguf."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from lm_kit.cli_support import one_line_errors
from lm_kit.errors import LmKitError

from .errors import RepeError

app = typer.Typer(
    help="Representation engineering: reading vectors, steering, vector files.",
    no_args_is_help=True,
)
eval_app = typer.Typer(
    help="Evaluate steering: coefficient x layer sweeps, MC1/MC2, A/B probability.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")

ModelOpt = Annotated[
    str, typer.Argument(help="model: 'smollm2', 'tiny', a folder, a .gguf or a hub id")
]


# bad input (the package's own errors, or an lm-kit error such as an unknown model) prints one
# 'error: ...' line and exits 1, no traceback
_clean_errors = one_line_errors(RepeError, LmKitError)


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise RepeError(f"--{name} must be >= 1, got {value}")


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise RepeError(f"--{name} must be a finite number, got {value}")


def _floats(name: str, text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise RepeError(f"--{name} {text!r}: write comma-separated numbers, e.g. -1,0,1") from None
    if not out or not all(math.isfinite(x) for x in out):
        raise RepeError(f"--{name} {text!r}: give at least one finite number, e.g. -1,0,1")
    return out


def _read_jsonl(path: Path, what: str) -> list[dict[str, Any]]:
    from .data.jsonl import read_json_objects

    out = [d for _, d in read_json_objects(path, what)]
    if not out:
        raise RepeError(f"{what} file {path} holds no records")
    return out


def _layer_list(text: str) -> list[int]:
    """'1,2,5' or '14-20' -> block numbers (checked against the vector on use)."""
    from .errors import LayerError

    try:
        if "-" in text.strip()[1:]:
            a, b = text.split("-", 1)
            out = list(range(int(a), int(b) + 1))
        else:
            out = [int(x) for x in text.split(",")]
    except ValueError:
        raise LayerError(f"--layers {text!r}: write e.g. '14-20' or '1,4,7'") from None
    if not out:
        raise LayerError(f"--layers {text!r} selects no layers; write e.g. '14-20' or '1,4,7'")
    return out


def _load(spec: str) -> tuple[Any, Any]:
    from lm_kit import load_model  # type: ignore[attr-defined]

    return load_model(spec)


def _layers(s: str | None) -> Any:
    if s is None or s == "all":
        return "all"
    return s


def _echo_json(d: Any) -> None:
    typer.echo(json.dumps(d, indent=2, default=str))


@app.command()
@_clean_errors
def train(
    model: ModelOpt,
    pairs: Annotated[
        Path, typer.Argument(help="JSONL of contrast pairs (positive, negative, group)")
    ],
    out: Annotated[Path, typer.Option(help="output .safetensors")] = Path("vector.safetensors"),
    method: str = "mean_diff",
    layers: str = "all",
    site: str = "resid_post",
    read: str = "last",
    split: float = 0.2,
    seed: int = 0,
    k: int = 1,
    batch_size: int = 16,
    figure: Annotated[Path | None, typer.Option(help="per-layer AUROC figure (.png)")] = None,
) -> None:
    """Fit a reading vector on contrast pairs and save it (with per-layer validation AUROC)."""
    from .data import load_pairs_jsonl
    from .io import save_vector
    from .metrics import LayerMetrics, LayerReport
    from .reader import fit_reading_vector

    _positive("k", k)
    _positive("batch-size", batch_size)
    data = load_pairs_jsonl(str(pairs))
    m, tok = _load(model)
    v = fit_reading_vector(
        m,
        tok,
        data,
        _layers(layers),
        site,
        read,
        method,
        split,
        seed,
        k=k,
        batch_size=batch_size,
        progress=True,
    )
    save_vector(v, out)
    rep = v.meta.get("report")
    if rep:
        report = LayerReport(
            [
                LayerMetrics(
                    int(layer),
                    r["auroc"],
                    tuple(r["auroc_ci"]),
                    r["accuracy"],
                    r["threshold"],
                    r["n"],
                )
                for layer, r in rep.items()
            ]
        )
        typer.echo(report.table())
        typer.echo(f"best layer (validation): {report.best_layer}")
        if figure:
            report.plot(str(figure))
    typer.echo(f"saved {out}")


@app.command("read")
@_clean_errors
def read_cmd(
    model: ModelOpt,
    vector: Path,
    pairs: Annotated[
        Path | None, typer.Option(help="held-out pairs JSONL: AUROC per layer")
    ] = None,
    text: Annotated[str | None, typer.Option(help="text to scan token by token")] = None,
    heatmap: Annotated[Path | None, typer.Option(help="scan heatmap (.png)")] = None,
    figure: Annotated[Path | None, typer.Option(help="per-layer AUROC figure (.png)")] = None,
    strict: bool = True,
) -> None:
    """Evaluate a vector on held-out pairs and/or scan a text (one forward, all layers)."""
    from .data import load_pairs_jsonl
    from .io import load_vector
    from .reader import evaluate_vector
    from .scan import scan

    held_out = load_pairs_jsonl(str(pairs)) if pairs is not None else None
    m, tok = _load(model)
    v = load_vector(vector, m, strict=strict)
    if held_out is not None:
        rep = evaluate_vector(m, tok, v, held_out)
        typer.echo(rep.table())
        if figure:
            rep.plot(str(figure))
    if text is not None:
        s = scan(m, tok, text, v)
        det = s.detector()
        for t, d in zip(s.tokens, det, strict=True):
            typer.echo(f"{d:+8.3f}  {t!r}")
        if heatmap:
            s.heatmap(heatmap, title=str(vector.name))
            typer.echo(f"wrote {heatmap}")


@app.command("steer")
@_clean_errors
def steer_cmd(
    model: ModelOpt,
    vector: Path,
    prompt: Annotated[str, typer.Option(help="user message")],
    coeff: float = 1.0,
    layers: Annotated[
        str | None, typer.Option(help="e.g. '14-20'; default: the vector's layers")
    ] = None,
    operator: str = "add",
    units: str = "unit",
    positions: str = "response",
    prefix: str = "",
    max_new_tokens: int = 40,
    strict: bool = True,
) -> None:
    """Generate greedily without and with steering, side by side."""
    import torch

    from .activations import pad_id_of
    from .control import SteerSpec, steer
    from .data import Stimulus, render
    from .io import load_vector

    _positive("max-new-tokens", max_new_tokens)
    _finite("coeff", coeff)
    m, tok = _load(model)
    v = load_vector(vector, m, strict=strict)
    r = render(Stimulus(user=prompt, prefix=prefix), tok)
    ids = torch.tensor([r.ids])
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id_of(tok))
    base = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw)
    spec = SteerSpec(v, coeff=coeff, layers=layers, operator=operator, units=units)
    with steer(m, [spec], positions=positions):
        st = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw)
    n = ids.shape[1]
    typer.echo("--- baseline ---\n" + prefix + tok.decode(base[0, n:], skip_special_tokens=True))
    typer.echo(
        f"--- steered (c={coeff}, {operator}, {units}) ---\n"
        + prefix
        + tok.decode(st[0, n:], skip_special_tokens=True)
    )


@eval_app.command("sweep")
@_clean_errors
def eval_sweep(
    model: ModelOpt,
    vector: Path,
    prompt: Annotated[str, typer.Option(help="user message for the behaviour prompt")],
    pos_words: Annotated[str, typer.Option(help="comma-separated positive next words")],
    neg_words: Annotated[str, typer.Option(help="comma-separated negative next words")],
    neutral: Annotated[Path, typer.Option(help="neutral text file for the KL cost")],
    out: Path = Path("sweep"),
    prefix: str = "",
    coeffs: str = "-1,-0.5,0,0.5,1",
    layer_sets: Annotated[str, typer.Option(help="name=a-b;name2=c-d")] = "all=all",
    units: str = "diff",
    max_tokens: int = 2048,
    strict: bool = True,
) -> None:
    """Coefficient x layer-set sweep: token-set log-odds vs KL on neutral text (resumable)."""
    from .data import Stimulus
    from .eval import plot_sweep, sweep, token_set_logodds
    from .io import load_vector
    from .sites import normalise_layers, num_layers

    _positive("max-tokens", max_tokens)
    cs = _floats("coeffs", coeffs)
    pw = [w for w in pos_words.split(",") if w.strip()]
    nw = [w for w in neg_words.split(",") if w.strip()]
    if not pw or not nw:
        raise RepeError("--pos-words and --neg-words need at least one word each, e.g. good,great")
    if not neutral.is_file():
        raise RepeError(f"--neutral {neutral} does not exist (or is not a file); check the path")
    parts = [p for p in layer_sets.split(";") if p.strip()]
    if not parts or any("=" not in p for p in parts):
        raise RepeError(f"--layer-sets {layer_sets!r}: write name=a-b;name2=c-d (or all=all)")
    m, tok = _load(model)
    v = load_vector(vector, m, strict=strict)
    n = num_layers(m)
    sets = {}
    for part in parts:
        name, _, spec = part.partition("=")
        sets[name.strip()] = v.layers if spec.strip() == "all" else normalise_layers(spec, n)
    stim = [Stimulus(user=prompt, prefix=prefix)]

    def behaviour(factory: Any) -> dict[str, float]:
        return token_set_logodds(m, tok, stim, pw, nw, factory)

    texts = [t for t in neutral.read_text().split("\n\n") if t.strip()]
    if not texts:
        raise RepeError(f"--neutral {neutral} holds no text; give paragraphs of neutral prose")
    ds = sweep(
        m,
        tok,
        v,
        cs,
        sets,
        behaviour,
        texts,
        out_dir=out,
        units=units,
        max_tokens=max_tokens,
    )
    plot_sweep(ds, "logodds", out / "sweep.png")
    typer.echo(ds.to_dataframe().to_string())
    typer.echo(f"wrote {out}/sweep.nc, sweep.parquet, sweep.png")


@eval_app.command("mc")
@_clean_errors
def eval_mc(
    model: ModelOpt,
    data: Annotated[
        Path, typer.Argument(help="TruthfulQA-format JSONL (question, mc1_targets, mc2_targets)")
    ],
    vector: Path | None = None,
    coeff: float = 0.0,
    layers: str | None = None,
    units: str = "unit",
    reduce: str = "sum",
) -> None:
    """MC1/MC2 accuracy, optionally under steering."""
    from .control import SteerSpec, steer
    from .eval import load_mc_jsonl, mc_score
    from .io import load_vector

    _finite("coeff", coeff)
    if reduce not in ("sum", "mean"):
        raise RepeError(f"--reduce must be 'sum' or 'mean', got {reduce!r}")
    recs = load_mc_jsonl(str(data))
    m, tok = _load(model)
    factory = None
    if vector is not None:
        v = load_vector(vector, m)
        spec = SteerSpec(v, coeff=coeff, layers=layers, units=units)

        def factory() -> Any:
            return steer(m, [spec], positions="all")

    r = mc_score(m, tok, recs, factory, reduce=reduce)
    _echo_json(r.__dict__)


@eval_app.command("ab")
@_clean_errors
def eval_ab(
    model: ModelOpt,
    data: Annotated[
        Path, typer.Argument(help="JSONL: question, answer_a, answer_b, match ('A'|'B')")
    ],
    vector: Path | None = None,
    coeff: float = 0.0,
    layers: str | None = None,
    units: str = "diff",
) -> None:
    """Mean A/B probability of the matching answer, optionally steered at response positions."""
    import numpy as np

    from .control import SteerSpec, steer
    from .eval import ABItem, ab_prob
    from .io import load_vector

    _finite("coeff", coeff)
    fields = ("question", "answer_a", "answer_b", "match")
    items = []
    for i, d in enumerate(_read_jsonl(data, "A/B data"), 1):
        missing = [f for f in fields if not isinstance(d.get(f), str)]
        if missing:
            raise RepeError(
                f"{data}: record {i} lacks string field(s) {missing}; each needs {list(fields)}"
            )
        items.append(ABItem(**{f: d[f] for f in fields}))
    m, tok = _load(model)
    factory = None
    if vector is not None:
        v = load_vector(vector, m)
        spec = SteerSpec(v, coeff=coeff, layers=layers, units=units)

        def factory() -> Any:
            return steer(m, [spec], positions="response")

    p = ab_prob(m, tok, items, factory)
    _echo_json({"ab_prob": float(np.mean(p)), "n": len(p)})


@app.command("export-gguf")
@_clean_errors
def export_gguf_cmd(
    vector: Path,
    out: Path,
    coeff: float = 1.0,
    layers: str | None = None,
    units: str = "unit",
    drop_layer0: bool = False,
    import_: Annotated[
        bool, typer.Option("--import", help="read VECTOR as GGUF and write OUT as .safetensors")
    ] = False,
) -> None:
    """Write a llama.cpp control vector (``--control-vector``), or import one with ``--import``."""
    from .io import export_gguf, import_gguf, load_vector, save_vector

    if import_:
        v = import_gguf(vector)
        save_vector(v, out)
        typer.echo(f"imported {len(v.layers)} layers (hidden size {v.hidden_size}) -> {out}")
        return
    _finite("coeff", coeff)
    v = load_vector(vector)
    ls = None if layers is None else _layer_list(layers)
    export_gguf(v, out, coeff, ls, units=units, drop_layer0=drop_layer0)
    typer.echo(f"wrote {out} (llama.cpp: --control-vector-scaled {out} 1.0)")


if __name__ == "__main__":  # pragma: no cover
    app()
