"""``lm-kit`` command line: demo, convert-gguf, sites, extract (+ LLM commands below the marker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="lm-kit: load models offline, list hookpoints, extract activations, talk to LLM servers.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _load(spec: str, head: bool = True):
    from lm_kit.loading import load_model

    with console.status(f"[bold]loading {spec}[/] (first GGUF load converts it once: 30-80 s)"):
        return load_model(spec, head=head)


@app.command()
def demo(
    prompt: Annotated[
        str, typer.Option(help="prompt for the greedy completion")
    ] = "The capital of France is",
    model: Annotated[str, typer.Option(help="model spec")] = "smollm2",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 12,
) -> None:
    """Load SmolLM2 offline; print a greedy completion, the hookpoints found and residual norms."""
    import time

    import torch

    from lm_kit.hookpoints import list_sites, probe_widths, resolve
    from lm_kit.hooks import capture

    # transformers imports its modeling code lazily on first use; time that apart from the load
    t0 = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationMixin  # noqa: F401

    t_imports = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    m, tok = _load(model)
    console.print(
        f"loaded [bold]{model}[/] ({type(m).__name__}) in {time.perf_counter() - t0:.1f} s "
        f"(CPU {time.process_time() - c0:.1f} s; + {t_imports:.1f} s importing transformers)"
    )
    batch = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = m.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
    completion = tok.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    console.print(f"[bold]greedy completion:[/] {prompt}[green]{completion}[/]")

    names = list_sites(m)
    sites = [s for n in names for s in resolve(m, n)]
    widths = probe_widths(m, sites)
    table = Table(title=f"hookpoints ({len(sites)} sites)")
    for col in ("site", "module", "dir", "width", "TransformerLens"):
        table.add_column(col)
    kinds_shown: set[str] = set()
    for s in sites:
        if s.layer not in (None, 0) and s.kind in kinds_shown:
            continue
        kinds_shown.add(s.kind)
        layered = s.layer is not None and s.kind != "embed"
        shown = f"{s.kind}.{{0..{_n_layers(m) - 1}}}" if layered else s.name
        module = s.module_path.replace(".0.", ".{L}.", 1) if layered else s.module_path
        if layered and module == s.module_path:  # the block itself: "...layers.0"
            module = s.module_path.rsplit(".", 1)[0] + ".{L}"
        tl = (s.tl_name or "").replace(".0.", ".{L}.", 1) if layered else s.tl_name or ""
        table.add_row(shown, module, s.direction, str(widths[(s.module_path, s.direction)]), tl)
    console.print(table)

    with capture(m, ["embed", "resid_post.*"]) as acts, torch.no_grad():
        m(**batch)
    norms = Table(title=f"residual L2 norms for {prompt!r}")
    norms.add_column("site")
    norms.add_column("mean over tokens", justify="right")
    norms.add_column("without first token", justify="right")
    norms.add_column("last token", justify="right")
    for name in acts:
        per_token = acts[name][0].norm(dim=-1)
        rest = per_token[1:].mean().item() if per_token.numel() > 1 else float("nan")
        norms.add_row(
            name, f"{per_token.mean().item():.2f}", f"{rest:.2f}", f"{per_token[-1].item():.2f}"
        )
    console.print(norms)


def _n_layers(model) -> int:
    from lm_kit.arch import find_blocks

    return len(find_blocks(model)[1])


@app.command("convert-gguf")
def convert_gguf_cmd(path: Annotated[Path, typer.Argument(help="a .gguf file")]) -> None:
    """Convert a GGUF file once into the cached Hugging Face folder; print the folder."""
    from lm_kit.errors import LmKitError
    from lm_kit.loading import convert_gguf

    try:
        with console.status(f"converting {path.name} (30-80 s the first time)"):
            folder = convert_gguf(path)
    except LmKitError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(str(folder))


@app.command()
def sites(
    model: Annotated[
        str,
        typer.Argument(help="model spec: smollm2, tiny, tiny:gpt2, a folder, a .gguf, a hub id"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List every canonical hookpoint of MODEL with module, width and TransformerLens name."""
    from lm_kit.hookpoints import list_sites, probe_widths, resolve

    m, _ = _load(model)
    all_sites = [s for n in list_sites(m) for s in resolve(m, n)]
    widths = probe_widths(m, all_sites)
    rows = [
        {
            "site": s.name,
            "module": s.module_path,
            "direction": s.direction,
            "width": widths[(s.module_path, s.direction)],
            "tl_name": s.tl_name,
            "editable": s.editable,
        }
        for s in all_sites
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table(title=f"{model}: {len(rows)} sites")
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    console.print(table)


@app.command()
def extract(
    model: Annotated[str, typer.Argument(help="model spec")],
    data: Annotated[
        Path, typer.Argument(help="text file (one document per line) or JSONL with a 'text' field")
    ],
    sites: Annotated[list[str], typer.Option("--sites", "-s", help="site names (repeatable)")],
    out: Annotated[Path, typer.Option(help="output folder (resumable)")],
    mode: Annotated[str, typer.Option(help="last | mean | all")] = "last",
    batch_tokens: Annotated[int, typer.Option(help="padded tokens per batch")] = 8192,
    max_length: Annotated[
        int | None, typer.Option(help="truncate documents to this many tokens")
    ] = None,
) -> None:
    """Extract activations of MODEL at SITES for DATA into OUT (fp16 .npy + manifest; resumable)."""
    from lm_kit.extract import ActivationStore
    from lm_kit.extract import extract as run_extract

    texts = _read_texts(data)
    m, tok = _load(model, head=False)
    store = run_extract(
        m, tok, texts, sites, mode, batch_tokens=batch_tokens, out=out, max_length=max_length
    )
    assert isinstance(store, ActivationStore)
    console.print(f"wrote {store.manifest['n_rows']} rows x {len(store.sites)} sites to {out}")


def _read_texts(path: Path) -> list[str]:
    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if path.suffix == ".jsonl":
        return [json.loads(ln)["text"] for ln in lines]
    return lines


# --- llm commands ---


@app.command("llm-ping")
def llm_ping(
    url: Annotated[
        str, typer.Argument(help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    ],
    model: Annotated[str, typer.Argument(help="model name served there")],
    api_key_env: Annotated[
        str, typer.Option(help="environment variable holding the API key (loopback: may be unset)")
    ] = "OPENAI_API_KEY",
    timeout: Annotated[float, typer.Option(help="seconds per attempt")] = 30.0,
) -> None:
    """Send one short chat request to URL/MODEL and print the reply, latency and token counts."""
    from lm_kit.llm.errors import LLMError
    from lm_kit.llm.report import ping

    try:
        info = ping(url, model, api_key_env=api_key_env, timeout=timeout)
    except LLMError as e:
        console.print(f"[red]llm-ping failed:[/] {e}")
        raise typer.Exit(1) from None
    console.print(f"reply: {info['text']!r} (finish_reason={info['finish_reason']})")
    console.print(
        f"latency {info['latency_s']} s, attempts {info['attempts']}, "
        f"tokens {info['prompt_tokens']} in / {info['completion_tokens']} out"
    )
    if info["models"]:
        console.print(f"models listed: {', '.join(info['models'][:20])}")


@app.command("usage")
def usage_cmd(
    directory: Annotated[Path, typer.Argument(help="folder (or file) with audit *.jsonl logs")],
    prices: Annotated[
        Path | None, typer.Option(help="YAML/JSON {model: {input, output}} in $/1M tokens")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Sum the LLM audit logs in DIRECTORY per stage and model: requests, hits, tokens, cost."""
    from lm_kit.llm.meter import PriceTable
    from lm_kit.llm.report import summarise_audit

    try:
        meter = summarise_audit(directory, PriceTable.from_yaml(prices) if prices else None)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    rows = meter.to_json()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"LLM usage in {directory}")
    for col in (
        "stage",
        "model",
        "requests",
        "cache hits",
        "retries",
        "failures",
        "prompt tok",
        "completion tok",
        "saved tok",
        "cost $",
    ):
        table.add_column(col)
    for r in rows:
        cost = "unknown" if r["cost_usd"] is None else f"{r['cost_usd']:.4f}"
        saved = r["saved_prompt_tokens"] + r["saved_completion_tokens"]
        table.add_row(
            r["stage"],
            r["model"],
            str(r["requests"]),
            str(r["cache_hits"]),
            str(r["retries"]),
            str(r["failures"]),
            str(r["prompt_tokens"]),
            str(r["completion_tokens"]),
            str(saved),
            cost,
        )
    console.print(table)
