"""Tables and figures from a run directory: scores.parquet/jsonl, predictions.parquet,
explanations.jsonl, summary.json, score distributions per scorer, scorer-vs-scorer correlations,
report.md and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.stats import spearmanr

from autointerp.accounting import load_usage, usage_by_stage
from autointerp.pipeline import load_explanations, load_scores
from autointerp.schema import SCHEMA_VERSION, ScoreResult
from autointerp.store import atomic_write_bytes, atomic_write_text

SCORE_COLUMNS = [
    "latent",
    "scorer",
    "explainer",
    "metric",
    "value",
    "ci_lo",
    "ci_hi",
    "n_pos",
    "n_neg",
    "n_failed",
    "coverage",
    "stopped_at",
    "flags",
    "tokens",
    "prompt_tokens",
    "completion_tokens",
    "n_requests",
    "failed",
    "error",
    "metrics_json",
    "schema_version",
]


def score_rows(scores: list[ScoreResult]) -> list[dict]:
    rows = []
    for s in scores:
        rows.append(
            {
                "latent": s.latent,
                "scorer": s.scorer,
                "explainer": s.explainer,
                "metric": s.metric,
                "value": s.value,
                "ci_lo": s.ci_lo,
                "ci_hi": s.ci_hi,
                "n_pos": s.n_pos,
                "n_neg": s.n_neg,
                "n_failed": s.n_failed,
                "coverage": s.coverage,
                "stopped_at": s.stopped_at,
                "flags": list(s.flags),
                "tokens": s.prompt_tokens + s.completion_tokens,
                "prompt_tokens": s.prompt_tokens,
                "completion_tokens": s.completion_tokens,
                "n_requests": s.n_requests,
                "failed": s.failed,
                "error": s.error,
                "metrics_json": json.dumps(s.metrics, sort_keys=True),
                "schema_version": s.schema_version,
            }
        )
    return rows


def _parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> None:
    table = pa.Table.from_pylist(rows, schema=schema) if rows else pa.table({})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def summarize(scores: list[ScoreResult]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for key in sorted({(s.scorer, s.explainer) for s in scores}):
        ss = [s for s in scores if (s.scorer, s.explainer) == key]
        vals = np.array([s.value for s in ss if s.value is not None], dtype=float)
        flags = Counter(f for s in ss for f in s.flags)
        out[f"{key[0]}/{key[1]}"] = {
            "scorer": key[0],
            "explainer": key[1],
            "metric": next((s.metric for s in ss if s.metric), ""),
            "latents": len(ss),
            "scored": int(len(vals)),
            "median": float(np.median(vals)) if len(vals) else None,
            "q25": float(np.quantile(vals, 0.25)) if len(vals) else None,
            "q75": float(np.quantile(vals, 0.75)) if len(vals) else None,
            "failed_latents": sum(1 for s in ss if s.failed),
            "failed_examples": int(sum(s.n_failed for s in ss)),
            "mean_coverage": float(np.mean([s.coverage for s in ss])) if ss else None,
            "prompt_tokens": int(sum(s.prompt_tokens for s in ss)),
            "flags": dict(flags),
        }
    return out


def _save(fig, path: Path) -> str:
    """Render once: write the PNG and return it base64-encoded for the self-contained HTML."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return base64.b64encode(data).decode()


def correlation_matrix(scores: list[ScoreResult]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Spearman ρ between scorers over (latent, explainer) pairs scored by both; counts alongside."""
    table: dict[tuple[int, str], dict[str, float]] = {}
    for s in scores:
        if s.value is not None:
            table.setdefault((s.latent, s.explainer), {})[s.scorer] = s.value
    names = sorted({s.scorer for s in scores})
    n = len(names)
    rho = np.full((n, n), np.nan)
    cnt = np.zeros((n, n), int)
    for a in range(n):
        for b in range(n):
            pts = [
                (v[names[a]], v[names[b]])
                for v in table.values()
                if names[a] in v and names[b] in v
            ]
            cnt[a, b] = len(pts)
            if len(pts) >= 3:
                x, y = np.array(pts).T
                if np.ptp(x) > 0 and np.ptp(y) > 0:
                    rho[a, b] = spearmanr(x, y).statistic
    return names, rho, cnt


def figures(scores: list[ScoreResult], out_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    figs: dict[str, str] = {}
    keys = sorted({(s.scorer, s.explainer) for s in scores})
    if not keys:
        return figs
    ncol = min(4, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False, layout="constrained"
    )
    for ax, key in zip(axes.flat, keys, strict=False):
        vals = [s.value for s in scores if (s.scorer, s.explainer) == key and s.value is not None]
        ax.hist(vals, bins=20, color="tab:blue", alpha=0.8)
        ax.set_title(f"{key[0]} ({key[1]})", fontsize=9)
        ax.set_xlabel(
            next(
                (s.metric for s in scores if (s.scorer, s.explainer) == key and s.metric), "value"
            ),
            fontsize=8,
        )
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle("score distributions per scorer")
    figs["score distributions per scorer"] = _save(fig, out_dir / "score_distributions.png")
    plt.close(fig)
    names, rho, cnt = correlation_matrix(scores)
    if len(names) >= 2:
        n = len(names)
        fig, ax = plt.subplots(figsize=(1.0 + 0.9 * n, 0.8 + 0.8 * n), layout="constrained")
        im = ax.imshow(rho, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
        for a in range(n):
            for b in range(n):
                txt = "—" if np.isnan(rho[a, b]) else f"{rho[a, b]:.2f}"
                ax.text(b, a, f"{txt}\nn={cnt[a, b]}", ha="center", va="center", fontsize=6)
        fig.colorbar(im, ax=ax, shrink=0.8, label="Spearman ρ")
        ax.set_title("scorer vs scorer (per latent x explainer)", fontsize=9)
        figs["scorer vs scorer"] = _save(fig, out_dir / "scorer_correlations.png")
        plt.close(fig)
    return figs


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def write_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    scores = load_scores(run_dir)
    expls = load_explanations(run_dir)
    _parquet(run_dir / "scores.parquet", score_rows(scores))
    atomic_write_text(
        run_dir / "scores.jsonl",
        "".join(json.dumps(r, default=str) + "\n" for r in score_rows(scores)),
    )
    preds = [
        {"latent": s.latent, "scorer": s.scorer, "explainer": s.explainer, **p.model_dump()}
        for s in scores
        for p in s.predictions
    ]
    _parquet(run_dir / "predictions.parquet", preds)
    atomic_write_text(
        run_dir / "explanations.jsonl", "".join(e.model_dump_json() + "\n" for e in expls)
    )
    summary = summarize(scores)
    usage = usage_by_stage(load_usage(run_dir))
    n_expl_failed = sum(1 for e in expls if e.failed)
    atomic_write_text(
        run_dir / "summary.json",
        json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "scorers": summary,
                "usage": usage,
                "explanations": len(expls),
                "explanations_failed": n_expl_failed,
            },
            indent=2,
            default=str,
        ),
    )
    figs = figures(scores, run_dir / "figures")
    # markdown
    md = [
        "# autointerp report",
        "",
        f"schema v{SCHEMA_VERSION}; {len(expls)} explanations ({n_expl_failed} failed)",
        "",
        "| scorer | explainer | metric | latents | scored | median | IQR | failed latents | failed examples | coverage | flags |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in summary.values():
        iqr = f"{_fmt(v['q25'])}–{_fmt(v['q75'])}"
        md.append(
            f"| {v['scorer']} | {v['explainer']} | {v['metric']} | {v['latents']} | {v['scored']} | "
            f"{_fmt(v['median'])} | {iqr} | {v['failed_latents']} | {v['failed_examples']} | "
            f"{_fmt(v['mean_coverage'])} | {', '.join(f'{k}:{c}' for k, c in sorted(v['flags'].items()))} |"
        )
    md += [
        "",
        "## LLM usage per stage",
        "",
        "| stage | requests | cache hits | failures | prompt tokens | completion tokens | USD |",
        "|---|---|---|---|---|---|---|",
    ]
    for st, u in sorted(usage.items()):
        usd = "unknown" if u.get("cost_usd") is None else f"{u['cost_usd']:.4f}"
        md.append(
            f"| {st} | {int(u['requests'])} | {int(u['cache_hits'])} | {int(u['failures'])} | "
            f"{int(u['prompt_tokens'])} | {int(u['completion_tokens'])} | {usd} |"
        )
    md += [
        "",
        "## Figures",
        "",
        "![distributions](figures/score_distributions.png)",
        "",
        "![correlations](figures/scorer_correlations.png)",
        "",
    ]
    atomic_write_text(run_dir / "report.md", "\n".join(md))
    atomic_write_text(
        run_dir / "report.html",
        _html(summary, usage, scores, expls, figs, _examples_html(run_dir)),
    )
    return run_dir / "report.html"


def _examples_html(run_dir: Path, per_quantile: int = 2) -> str:
    """Per latent, a collapsible block of test windows by quantile (highest first), firing tokens
    shaded by activation / a_max; plus two negatives."""
    from autointerp.schema import LatentExamples
    from autointerp.store import read_record

    esc = html.escape
    blocks = []
    for p in sorted((run_dir / "examples").glob("latent_*.json")):
        rec = read_record(p)
        if rec is None:
            continue
        ex = LatentExamples.model_validate(rec)
        amax = ex.a_max or 1.0

        def win(w, amax: float = amax) -> str:
            out = []
            for t, a in zip(w.tokens, w.acts, strict=False):
                if a > 0:
                    alpha = min(1.0, 0.15 + 0.85 * a / amax)
                    out.append(
                        f"<span style='background:rgba(255,140,0,{alpha:.2f})' title='{a:.3g}'>"
                        f"{esc(t)}</span>"
                    )
                else:
                    out.append(esc(t))
            return "<div class='w'>" + "".join(out) + "</div>"

        rows = []
        by_q: dict[int, list] = {}
        for w in ex.test:
            by_q.setdefault(w.quantile if w.quantile is not None else -1, []).append(w)
        for q in sorted(by_q, reverse=True):
            ws = sorted(by_q[q], key=lambda w: -w.max_act)[:per_quantile]
            rows.append(f"<h4>quantile {q}</h4>" + "".join(win(w) for w in ws))
        if ex.negatives:
            rows.append("<h4>negatives</h4>" + "".join(win(w) for w in ex.negatives[:2]))
        flags = f" [{', '.join(ex.flags)}]" if ex.flags else ""
        blocks.append(
            f"<details><summary>latent {ex.latent}: a_max {ex.a_max:.3g}, density "
            f"{ex.density:.2e}{esc(flags)}</summary>{''.join(rows)}</details>"
        )
    return "".join(blocks)


def _html(summary, usage, scores, expls, figs, examples_html: str = "") -> str:
    esc = html.escape
    rows = []
    by_latent: dict[tuple[int, str], dict[str, float]] = {}
    for s in scores:
        by_latent.setdefault((s.latent, s.explainer), {})[s.scorer] = s.value
    text = {(e.latent, e.explainer): e.text for e in expls}
    names = sorted({s.scorer for s in scores})
    for (lat, ex), vals in sorted(by_latent.items()):
        cells = "".join(f"<td>{_fmt(vals.get(n))}</td>" for n in names)
        rows.append(
            f"<tr><td>{lat}</td><td>{esc(ex)}</td><td>{esc(text.get((lat, ex), ''))}</td>{cells}</tr>"
        )
    summ = "".join(
        f"<tr><td>{esc(v['scorer'])}</td><td>{esc(v['explainer'])}</td><td>{v['latents']}</td><td>{_fmt(v['median'])}</td>"
        f"<td>{v['failed_latents']}</td><td>{v['failed_examples']}</td><td>{_fmt(v['mean_coverage'])}</td></tr>"
        for v in summary.values()
    )
    imgs = "".join(
        f"<h3>{esc(k)}</h3><img src='data:image/png;base64,{b}'/>" for k, b in figs.items()
    )
    sort_js = (
        "<script>document.querySelectorAll('th').forEach((th,i)=>th.onclick=()=>{const t=th.closest('table');"
        "const r=[...t.querySelectorAll('tr')].slice(1);const k=x=>{const v=x.children[th.cellIndex].innerText;"
        "const f=parseFloat(v);return isNaN(f)?v:f};const d=th.dataset.d=-(th.dataset.d||-1);"
        "r.sort((a,b)=>k(a)>k(b)?d:k(a)<k(b)?-d:0).forEach(x=>t.appendChild(x))});</script>"
    )
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>autointerp report</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px}th{cursor:pointer}"
        ".w{font-family:monospace;white-space:pre-wrap;margin:2px 0;border-bottom:1px solid #eee}</style>"
        f"</head><body><h1>autointerp report</h1><h2>Summary</h2><table><tr><th>scorer</th><th>explainer</th>"
        f"<th>latents</th><th>median</th><th>failed latents</th><th>failed examples</th><th>coverage</th></tr>{summ}</table>"
        f"<h2>Usage</h2><pre>{esc(json.dumps(usage, indent=1))}</pre><h2>Figures</h2>{imgs}"
        f"<h2>Latents</h2><table><tr><th>latent</th><th>explainer</th><th>explanation</th>{head}</tr>{''.join(rows)}</table>"
        f"<h2>Examples by quantile</h2>{examples_html or '<p>none</p>'}"
        f"{sort_js}</body></html>"
    )
