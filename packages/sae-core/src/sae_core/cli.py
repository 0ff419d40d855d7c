"""``sae-core`` command line: inspect, convert, cache, stats, train-sae, demo, export-delphi."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer
from lm_kit.cli_support import one_line_errors
from lm_kit.errors import LmKitError

from sae_core.errors import SAECoreError, ShapeError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


# bad input (the package's own errors, or an lm-kit error such as an unknown model) prints one
# 'error: ...' line and exits 1, no traceback
_clean_errors = one_line_errors(SAECoreError, LmKitError)


def parse_count(text: str) -> int:
    """'10M' → 10_000_000, '200k' → 200_000, '5000' → 5000."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise typer.BadParameter(f"not a count: {text!r} (use e.g. 200k or 10M)")
    mult = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def _read_docs(data: str) -> list[str]:
    if data == "demo":
        from sae_core.data import demo_texts

        return demo_texts()
    p = Path(data)
    if not p.is_file():
        raise typer.BadParameter(f"--data {data!r} is neither 'demo' nor a text file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SAECoreError(
            f"--data {p} is not UTF-8 text ({e.reason}); pass a .txt or .jsonl"
        ) from None
    if p.suffix == ".jsonl":
        return _jsonl_texts(p, text)
    docs = [d.strip() for d in re.split(r"\n\s*\n", text) if d.strip()]
    if not docs:
        raise typer.BadParameter(f"{p} holds no text: the dataset is empty")
    return docs


def _jsonl_texts(p: Path, text: str) -> list[str]:
    """The "text" field of every JSONL line, with the line number on bad lines."""
    docs = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise SAECoreError(
                f"--data {p}:{i}: not valid JSON ({e.msg}); each line must be an object "
                '{"text": "..."}'
            ) from None
        if not isinstance(rec, dict) or "text" not in rec:
            got = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
            raise SAECoreError(
                f'--data {p}:{i}: each line needs a "text" key (got {got}); write {{"text": "..."}}'
            )
        if not isinstance(rec["text"], str):
            raise SAECoreError(
                f'--data {p}:{i}: "text" must be a string, got {type(rec["text"]).__name__}'
            )
        docs.append(rec["text"])
    return docs


def _load_training_data(store: Path, site: str | None) -> tuple[Any, str | None]:
    """A [N, d] .npy file, or one site of an lm-kit ActivationStore folder."""
    import numpy as np

    if store.suffix == ".npy":
        if not store.is_file():
            raise SAECoreError(f"{store} does not exist (or is not a file); check the path")
        try:
            return np.load(store, mmap_mode="r"), site
        except (ValueError, OSError, EOFError) as e:
            raise ShapeError(
                f"{store} is not a readable numeric .npy array ({e}); save activations with "
                "numpy.save(path, array_of_shape_[tokens, d])"
            ) from None
    from lm_kit.extract import ActivationStore

    try:
        st = ActivationStore(store)
    except FileNotFoundError as e:
        raise SAECoreError(f"{e}; pass a store folder or a [N, d] .npy file") from None
    if not st.sites:
        raise SAECoreError(f"activation store {store} holds no sites")
    site = site or st.sites[0]
    if site not in st.sites:
        raise SAECoreError(f"site {site!r} is not in store {store}; it has {st.sites}")
    return st[site], site


@app.command()
@_clean_errors
def inspect(
    path: str, hookpoint: str = typer.Option(None, help="sub-folder of a multi-coder root")
) -> None:
    """Show the layout, architecture and site of a coder folder."""
    from sae_core.formats import load

    sae = load(path, hookpoint)
    typer.echo(
        json.dumps(
            {k: v for k, v in sae.cfg.to_dict().items() if v not in (None, [], {})}, indent=2
        )
    )


@app.command()
@_clean_errors
def convert(
    src: str,
    dst: str,
    to: str = typer.Option(..., help="sparsify | saelens | gemmascope"),
    hookpoint: str = typer.Option(None),
) -> None:
    """Convert a coder between layouts (exact foldings where needed)."""
    from sae_core.formats import load, save

    typer.echo(str(save(load(src, hookpoint), dst, to)))


@app.command()
@_clean_errors
def cache(
    model: str = typer.Argument(..., help="lm-kit model spec: smollm2, tiny, a folder, a hub id"),
    saes: list[str] = typer.Argument(..., help="coder folders; SITE=PATH overrides the site"),
    data: str = typer.Option(
        "demo", help="'demo', a .txt (blank-line separated docs) or .jsonl {text}"
    ),
    tokens: str = typer.Option("200k", help="max tokens to cache (e.g. 200k, 10M)"),
    out: Path = typer.Option(..., help="output cache folder (rerun to resume)"),
    ctx: int = 256,
    batch_rows: int = 16,
    top_n: int = 256,
    reservoir: int = 256,
    window: int = typer.Option(32, help="example window width W (<= ctx)"),
    ram_budget_mb: float = typer.Option(
        2048.0, help="RAM for tables, buffers, one encode chunk and spills (refused if too small)"
    ),
    cooccurrence_bins: int = typer.Option(
        0, help="MinHash bins per latent for Jaccard co-occurrence (0 = off; e.g. 128)"
    ),
    neurons: list[int] = typer.Option(
        [], help="also cache NeuronCoder top-k units of these layers"
    ),
    neuron_k: int = 32,
) -> None:
    """Stream sparse latents of one or more coders to OUT in one forward pass per batch."""
    from lm_kit import load_model

    from sae_core.cache import CacheConfig, LatentCache, cache_latents
    from sae_core.formats import load

    docs = _read_docs(data)
    max_tokens = parse_count(tokens)
    m, tok = load_model(model)
    coders: dict[str, dict] = {}
    for spec in saes:
        site, _, path = spec.rpartition("=") if "=" in spec else (None, "", spec)
        sae = load(path)
        site = site or sae.cfg.site
        if not site:
            raise typer.BadParameter(f"{path} records no site; pass SITE=PATH")
        coders.setdefault(site, {})[Path(path).name or "sae"] = sae
    for layer in neurons:
        from sae_core.neurons import NeuronCoder

        nc = NeuronCoder.from_model(m, layer, k=neuron_k)
        coders.setdefault(nc.cfg.site, {})[f"neurons_k{neuron_k}"] = nc
    cfg = CacheConfig(
        ctx=ctx,
        batch_rows=batch_rows,
        max_tokens=max_tokens,
        top_n=top_n,
        reservoir=reservoir,
        window=window,
        ram_budget_mb=ram_budget_mb,
        cooccurrence_bins=cooccurrence_bins,
    )
    path = cache_latents(m, coders, docs, out, cfg, tokenizer=tok)
    for c in LatentCache.list_coders(path):
        typer.echo(f"{c}: {json.dumps(LatentCache.open(path, c).stats.summary())}")


@app.command()
@_clean_errors
def stats(
    path: Path, plot: Path = typer.Option(None, help="write a log10-density histogram PNG")
) -> None:
    """Firing statistics of every coder in a cache (alive, >1%, >10%, L0, single-token latents)."""
    from sae_core.cache import LatentCache

    for c in LatentCache.list_coders(path):
        lc = LatentCache.open(path, c)
        s = lc.stats.summary()
        s["single_token_latents"] = int(lc.single_token_latents().sum())
        s["nnz"] = lc.meta.get("nnz")
        typer.echo(f"{c}: {json.dumps(s)}")
        if plot is not None:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            counts, edges = lc.stats.density_histogram()
            plt.stairs(counts, edges, label=c)
    if plot is not None:
        plt.xlabel("log10 firing frequency")
        plt.ylabel("latents")
        plt.legend()
        plt.savefig(plot, dpi=120, bbox_inches="tight")
        typer.echo(f"wrote {plot}")


@app.command("train-sae")
@_clean_errors
def train_sae(
    store: Path = typer.Argument(..., help="lm-kit ActivationStore folder or a [N, d] .npy file"),
    site: str = typer.Option(None, help="site inside the store (default: its only site)"),
    k: int = 32,
    latents: int = 4608,
    batch_size: int = 1024,
    epochs: float = 1.0,
    lr: float = typer.Option(None, help="default 2e-4/sqrt(latents/2^14)"),
    out: Path = typer.Option(..., help="output folder (sparsify layout; rerun to resume)"),
) -> None:
    """Train a TopK SAE (AuxK, decoder renormalisation) on stored activations."""
    from sae_core.train import TrainConfig, train

    data, site = _load_training_data(store, site)
    sae = train(
        data,
        TrainConfig(n_latents=latents, k=k, batch_size=batch_size, epochs=epochs, lr=lr, site=site),
        out,
    )
    typer.echo(f"saved {out} ({sae.n_latents} latents, k={k})")


@app.command()
@_clean_errors
def demo(
    out: Path = typer.Option(None, help="default ~/.cache/sae-core/demo-..."),
    tokens: str = "300k",
    latents: int = 4608,
    k: int = 32,
) -> None:
    """Train (or load the cached) demo TopK SAE on SmolLM2 resid_post.6 and print FVU / dead fraction."""
    from sae_core.demo import train_demo_sae

    _, m = train_demo_sae(out, n_tokens=parse_count(tokens), n_latents=latents, k=k)
    typer.echo(json.dumps(m, indent=2))


@app.command("export-delphi")
@_clean_errors
def export_delphi(path: Path, out: Path, coder: str = typer.Option(None)) -> None:
    """Write a cache in delphi's layout (safetensors locations/activations/tokens per latent range)."""
    from sae_core.cache import LatentCache
    from sae_core.cache.export import to_delphi

    to_delphi(LatentCache.open(path, coder), out)
    typer.echo(str(out))


if __name__ == "__main__":  # pragma: no cover
    app()
