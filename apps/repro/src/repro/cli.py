"""`repro`: small-scale reproductions of each paper's headline result, with an HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__)


@app.callback()
def main() -> None:
    """Small-scale reproductions with figures and an HTML report."""


@app.command()
def dpk(
    out: Path = typer.Option(Path("repro-out/dpk"), "--out", "-o", help="output directory"),
    quick: bool = typer.Option(False, help="two origins (Oct, Dec) instead of May-December"),
    origins: str = typer.Option("", help="comma-separated origins (overrides --quick)"),
    epochs: int = typer.Option(None, help="override the benchmark's DPK epochs (smoke runs)"),
    component_epochs: int = typer.Option(60, help="epochs of the SkewNormal component model"),
) -> None:
    """Deep Probabilistic Koopman on offline elecdemand: DPK vs Vanilla/MSTL/AutoETS/seasonal
    naive month-ahead, and the hour/weekday variation of the predictive scale and skewness.
    Resumable: finished origins and the component model are reused on a rerun."""
    from .dpk import MONTHLY_ORIGINS, QUICK_ORIGINS, DPKDemoConfig, run

    chosen = [o.strip() for o in origins.split(",") if o.strip()]
    if not chosen:
        chosen = list(QUICK_ORIGINS if quick else MONTHLY_ORIGINS)
    cfg = DPKDemoConfig(
        out_dir=out, origins=chosen, epochs=epochs, component_epochs=component_epochs
    )
    headline = run(cfg)
    typer.echo(f"report: {out / 'report.html'}")
    for k, v in headline.items():
        typer.echo(f"{k}: {v}")


if __name__ == "__main__":  # pragma: no cover
    app()
