"""`koopman-dpk` command line: fit / predict / backtest on CSV or netCDF files.

    koopman-dpk fit data.csv --target Demand --covariates Temperature,WorkDay \
        --periods 24h,168h --out model/
    koopman-dpk predict model/ --horizon 336 --out forecast.csv
    koopman-dpk predict model/ --data future.csv --out forecast.nc
    koopman-dpk backtest data.csv --target Demand --origins 2014-09-01,2014-10-01 \
        --horizon month --baselines seasonal_naive:336,mstl:48+336 --out-dir runs/bt

Exit codes: 0 ok, 2 usage error, 3 invalid data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from .errors import DPKError

app = typer.Typer(add_completion=False, help="Deep Probabilistic Koopman forecasting.")


def _fail(msg: str, code: int = 3) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def read_table(path: Path, time_col: str | None) -> pd.DataFrame:
    """CSV (time column parsed into a DatetimeIndex) or netCDF (via xarray) as a DataFrame."""
    if not path.exists():
        _fail(f"{path} does not exist", 2)
    if path.suffix in (".nc", ".nc4", ".cdf"):
        import xarray as xr

        try:
            ds = xr.open_dataset(path)
        except Exception as exc:  # noqa: BLE001 - report the engine problem with the path
            _fail(f"cannot open {path} as netCDF ({exc}); is the netCDF4 package installed?")
        if "time" not in ds.dims:
            _fail(f"{path} has no 'time' dimension (dims: {list(ds.dims)})")
        return ds.to_dataframe()
    df = pd.read_csv(path)
    col = time_col or next(
        (c for c in df.columns if c.lower() in ("time", "date", "datetime", "ds", "timestamp")),
        None,
    )
    if col is None:
        _fail(
            f"{path} has no time column; name it 'time' or pass --time-col (columns: {list(df.columns)})",
            2,
        )
    if col not in df.columns:
        _fail(f"time column {col!r} not in {path} (columns: {list(df.columns)})", 2)
    df[col] = pd.to_datetime(df[col])
    return df.set_index(col)


def _split(s: str | None) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()] if s else []


def _periods(s: str | None) -> list | None:
    items = _split(s)
    if not items:
        return None
    return [float(x) if x.replace(".", "", 1).isdigit() else x for x in items]


SET_HELP = (
    "any other DPK setting as KEY=VALUE (repeatable); VALUE is read as JSON when it parses "
    '(3, 0.5, true, null, ["24h"]) and as a string otherwise, e.g. --set level_method=ets '
    "--set level_window=24h --set calibration=scale"
)


def _settings(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--set {item!r}: expected KEY=VALUE, e.g. --set level_window=24h", 2)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


@app.command()
def fit(
    data: Path = typer.Argument(..., help="CSV with a time column, or netCDF with a time dim"),
    target: str = typer.Option(..., "--target", "-y", help="column/variable to forecast"),
    out: Path = typer.Option(..., "--out", "-o", help="model directory to write"),
    covariates: str = typer.Option("", help="comma-separated covariate columns"),
    dist: str = typer.Option(
        "normal", help="normal, skewnormal, studentt, gamma, poisson, negbin, mse"
    ),
    periods: str = typer.Option("", help="pinned periods, e.g. 24h,168h"),
    n_search: int = typer.Option(None, help="frequencies found by search per parameter"),
    trend: str = typer.Option(
        "linear",
        help="none|constant|linear|quadratic|piecewise, or auto (chosen on the last val_span)",
    ),
    epochs: int = typer.Option(200),
    seed: int = typer.Option(0),
    time_col: str = typer.Option(None, help="name of the CSV time column"),
    overwrite: bool = typer.Option(False, help="replace an existing model directory"),
    settings: list[str] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Fit a DPK model and save it (model.safetensors + config.json)."""
    from .model import DPK

    df = read_table(data, time_col)
    cols = _split(covariates)
    missing = [c for c in [target, *cols] if c not in df.columns]
    if missing:
        _fail(f"column(s) {missing} not in {data} (present: {list(df.columns)})", 2)
    try:
        model = DPK(
            dist,
            periods=_periods(periods),
            n_search=n_search,
            trend=trend,
            epochs=epochs,
            seed=seed,
            progress=True,
            **_settings(settings),
        )
        model.fit(df[target], covariates=df[cols] if cols else None)
        model.save(out, overwrite=overwrite)
    except (DPKError, FileExistsError) as exc:
        _fail(str(exc))
    typer.echo(
        f"saved {out} ({model.n_parameters_} parameters; periods {np.round(model.periods_[0], 3).tolist()}; "
        f"trend {model.trend_})"
    )


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="directory written by `fit`"),
    out: Path = typer.Option(..., "--out", "-o", help="forecast file: .csv or .nc"),
    horizon: int = typer.Option(None, help="steps after the end of training"),
    data: Path = typer.Option(None, help="file with forecast times (and covariates)"),
    time_col: str = typer.Option(None),
) -> None:
    """Write mean, std, parameters and deciles at the requested times."""
    from .model import DPK

    try:
        model = DPK.load(model_dir)
        if data is not None:
            df = read_table(data, time_col)
            cov = df[model.covariate_names_] if model.covariate_names_ else None
            fc = model.predict(times=df.index, covariates=cov)
        elif horizon is not None:
            fc = model.predict(horizon=horizon)
        else:
            _fail("pass --horizon N or --data FILE with the forecast times", 2)
    except DPKError as exc:
        _fail(str(exc))
    if out.suffix in (".nc", ".nc4"):
        fc.to_xarray().to_netcdf(out)
    else:
        fc.to_pandas().to_csv(out)
    typer.echo(f"wrote {out} ({fc.horizon} times)")


BASELINE_HELP = "seasonal_naive:M, mstl:M1+M2, autoets:M, fourier:K (comma-separated)"


def _baselines(spec: str) -> dict:
    from .baselines import FourierBaseline, SeasonalNaive, StatsforecastModel

    out: dict = {}
    for item in _split(spec):
        name, _, arg = item.partition(":")
        if name == "seasonal_naive":
            out[f"SeasonalNaive({arg})"] = lambda a=arg: SeasonalNaive(int(a))
        elif name == "mstl":
            out["MSTL"] = lambda a=arg: StatsforecastModel("MSTL", [int(x) for x in a.split("+")])
        elif name == "autoets":
            out["AutoETS"] = lambda a=arg: StatsforecastModel("AutoETS", int(a))
        elif name == "fourier":
            out["Fourier"] = lambda a=arg: FourierBaseline(int(a or 3))
        else:
            _fail(f"unknown baseline {name!r}; use {BASELINE_HELP}", 2)
    return out


@app.command()
def backtest(
    data: Path = typer.Argument(...),
    target: str = typer.Option(..., "--target", "-y"),
    origins: str = typer.Option(..., help="comma-separated origins, e.g. 2014-09-01,2014-10-01"),
    out_dir: Path = typer.Option(..., help="result directory (resumable)"),
    horizon: str = typer.Option("month", help="'month' or a duration such as 14D"),
    window: str = typer.Option(None, help="fixed training window such as 112D (default expanding)"),
    gap: str = typer.Option("0D"),
    covariates: str = typer.Option(""),
    dist: str = typer.Option("normal"),
    periods: str = typer.Option(""),
    trend: str = typer.Option("constant"),
    epochs: int = typer.Option(60),
    baselines: str = typer.Option("", help=BASELINE_HELP),
    time_col: str = typer.Option(None),
    force: bool = typer.Option(False, help="add to an out_dir made with another configuration"),
    settings: list[str] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Rolling-origin backtest of DPK against baselines; prints the ratio table."""
    from .backtest import backtest as run_backtest
    from .backtest import summarize
    from .model import DPK

    df = read_table(data, time_col)
    cols = _split(covariates)
    extra = {"search_cutoff": 0, **_settings(settings)}
    cfg = {
        "dist": dist,
        "periods": periods,
        "trend": trend,
        "epochs": epochs,
        "covariates": cols,
        **extra,
    }
    try:
        DPK(dist, periods=_periods(periods), trend=trend, epochs=epochs, **extra)  # validate
        res = run_backtest(
            lambda: DPK(dist, periods=_periods(periods), trend=trend, epochs=epochs, **extra),
            df[target],
            df[cols] if cols else None,
            origins=_split(origins),
            horizon=horizon,
            gap=gap,
            window=window,
            baselines=_baselines(baselines),
            out_dir=out_dir,
            force=force,
            config=cfg,
        )
    except DPKError as exc:
        _fail(str(exc))
    typer.echo(res.to_string(index=False))
    if res["model"].nunique() > 1:
        typer.echo(summarize(res).to_string(index=False))


if __name__ == "__main__":  # pragma: no cover
    app()
