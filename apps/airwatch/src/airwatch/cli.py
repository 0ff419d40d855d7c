"""`airwatch`: fit / detect / report / synth / demo for station or grid netCDF.

Exit codes: 0 ok; 2 usage error; 3 invalid data or configuration; 4 interrupted (resumable);
5 finished with failed stations (listed).
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from koopman_anomaly import KoopmanAnomalyDetector, baselines, io, synth
from koopman_anomaly.detector import DetectorConfig, _whole_hours, parse_period
from koopman_anomaly.errors import AnomalyError
from rich.console import Console
from rich.markup import escape

from .report import BASELINE_PREFIX, labels_for, write_report

app = typer.Typer(
    add_completion=False, help="Calibrated anomaly detection on station or grid netCDF."
)
console = Console(stderr=True)

EXIT_INVALID, EXIT_INTERRUPTED, EXIT_FAILED_STATIONS = 3, 4, 5


def _fail(msg: str, code: int = EXIT_INVALID) -> None:
    console.print(f"[red]error:[/red] {escape(msg)}")
    raise typer.Exit(code)


FIT_KEYS = (
    "var",
    "reference",
    "covariates",
    "train",
    "calib",
    "periods",
    "dist",
    "forecaster",
    "epochs",
    "ref_offset",
    "floor",
)
DETECT_KEYS = (
    "monitor",
    "window",
    "side",
    "alpha",
    "null",
    "correction",
    "method",
    "combine",
    "stat",
    "baselines",
)


def _merge(cli: dict[str, Any], config: Path | None) -> dict[str, Any]:
    """Flags override the TOML config; None means 'not given'. One TOML file may hold the keys
    of both `fit` and `detect`; any other key is refused (a typo would be silently ignored)."""
    base: dict[str, Any] = {}
    if config is not None:
        try:
            base = tomllib.loads(config.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            _fail(f"config {config}: {exc}")
        unknown = sorted(set(base) - set(FIT_KEYS) - set(DETECT_KEYS))
        if unknown:
            _fail(
                f"config {config}: unknown key(s) {unknown}; valid keys: "
                f"{sorted(FIT_KEYS + DETECT_KEYS)}."
            )
    base.update({k: v for k, v in cli.items() if v is not None})
    return base


def _split(s: str | list[str] | None, name: str = "list") -> tuple[str, ...]:
    if s is None:
        return ()
    if isinstance(s, list) and all(isinstance(x, str) for x in s):
        return tuple(s)
    if not isinstance(s, str):
        _fail(f"{name} must be a comma-separated string or a list of strings, got {s!r}.")
    return tuple(x.strip() for x in s.split(",") if x.strip())


def _period(p: str | list[str] | None, name: str = "period") -> tuple[str, str] | None:
    if p is None:
        return None
    if isinstance(p, list):
        if len(p) != 2:
            _fail(f"{name} {p!r} must have two entries [start, end], e.g. 2019-01-01:2019-06-30.")
        return (str(p[0]), str(p[1]))
    if not isinstance(p, str):
        _fail(f"{name} {p!r} must look like 2019-01-01:2019-06-30.")
    return parse_period(p)


def _guard(fn: Any) -> Any:
    """Map library errors to exit codes."""
    try:
        return fn()
    except AnomalyError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/yellow]: finished stations are saved; rerun the same command to resume."
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


def synth_cmd(
    out: Path = typer.Argument(..., help="output netCDF file"),
    seed: int = typer.Option(0),
    grid: str | None = typer.Option(
        None, help="write a (time, lat, lon) grid of this size, e.g. 32x48"
    ),
    anomalies: bool = typer.Option(True, "--anomalies/--no-anomalies"),
    quick: bool = typer.Option(False, help="4 stations x 1.5 years instead of 8 x 3"),
) -> None:
    """Write realistic synthetic data (with a model twin and labelled anomalies) to netCDF."""
    if grid:
        try:
            shape = tuple(int(v) for v in grid.lower().split("x"))
        except ValueError:
            shape = ()
        if len(shape) != 2 or min(shape) < 1:
            _fail(f"--grid {grid!r} must look like 32x48 (two positive sizes, lat x lon)")
        ds = synth.make_grid(seed=seed, anomalies=anomalies, shape=shape)  # type: ignore[arg-type]
    elif quick:
        ds = synth.make_stations(
            seed=seed, anomalies=anomalies, n_stations=4, start="2019-01-01", end="2020-06-30 23:00"
        )
    else:
        ds = synth.make_stations(seed=seed, anomalies=anomalies)
    _guard(lambda: io.write_netcdf_atomic(ds, out))
    console.print(f"wrote {out} ({dict(ds.sizes)})")


app.command("synth")(synth_cmd)


@app.command()
def fit(
    data: Path = typer.Argument(..., help="netCDF with (time, station) or (time, lat, lon)"),
    run: Path = typer.Option(..., "--run", help="run directory (models, manifest)"),
    var: str | None = typer.Option(None, "--var"),
    ref_var: str | None = typer.Option(None, "--ref-var", help="reference (model twin) variable"),
    covariates: str | None = typer.Option(None, help="comma-separated covariate variables"),
    train: str | None = typer.Option(None, help="2018-01-01:2019-06-30"),
    calib: str | None = typer.Option(None, help="2019-07-01:2019-12-31"),
    periods: str | None = typer.Option(None, help="24h,168h,8766h"),
    dist: str | None = typer.Option(None, help="predictive distribution for DPK (normal, ...)"),
    forecaster: str | None = typer.Option(None, help="auto (DPK if installed) | dpk | harmonic"),
    epochs: int | None = typer.Option(None, help="DPK epochs"),
    ref_offset: str | None = typer.Option(None, help="shift of the reference, e.g. -30min"),
    floor: str | None = typer.Option(None, help="mask | half_min"),
    config: Path | None = typer.Option(None, help="TOML file with the same keys"),
    resume: bool = typer.Option(True, "--resume/--no-resume"),
    force: bool = typer.Option(
        False, "--force", help="overwrite a run with a different configuration"
    ),
) -> None:
    """Fit one forecaster per station (and per reference series) on the training period."""
    o = _merge(
        dict(
            var=var,
            reference=ref_var,
            covariates=covariates,
            train=train,
            calib=calib,
            periods=periods,
            dist=dist,
            forecaster=forecaster,
            epochs=epochs,
            ref_offset=ref_offset,
            floor=floor,
        ),
        config,
    )

    if o.get("forecaster") == "harmonic" and (
        o.get("dist") is not None or o.get("epochs") is not None
    ):
        _fail(
            "--dist and --epochs apply to the DPK forecaster only; drop them or use --forecaster dpk."
        )
    if o.get("epochs") is not None and (
        isinstance(o["epochs"], bool) or not isinstance(o["epochs"], int) or o["epochs"] < 1
    ):
        _fail(f"epochs must be a positive integer, got {o['epochs']!r}.")

    def go() -> None:
        ds = io.open_dataset(data)
        fopts: dict[str, Any] = {}
        if o.get("dist"):
            fopts["distribution"] = o["dist"]
        if o.get("epochs"):
            fopts["epochs"] = int(o["epochs"])
        cfg = DetectorConfig(
            var=o.get("var", "no2"),
            reference=o.get("reference"),
            covariates=_split(o.get("covariates"), "covariates"),
            train=_period(o.get("train"), "train"),
            calib=_period(o.get("calib"), "calib"),
            periods=_split(o.get("periods"), "periods") or ("24h", "168h", "8766h"),
            forecaster=o.get("forecaster", "auto"),
            forecaster_options=fopts,
            ref_offset=o.get("ref_offset", "0min"),
            floor=o.get("floor", "mask"),
        )
        if io.layout_of(io.get_variable(io.canonical_dims(ds), cfg.var)) == "grid":
            cfg.validate()
            manifest = {
                "config_hash": cfg.hash(),
                "config": json.loads(cfg.to_json()),
                "layout": "grid",
                "stations": {},
            }
            io.write_json_atomic(manifest, run / "manifest.json")
            console.print(
                f"grid input: per-pixel models are fitted chunk-wise during detect; wrote {run}/manifest.json"
            )
            return
        det = KoopmanAnomalyDetector(cfg)
        t0 = time.time()
        det.fit(ds, run_dir=run, resume=resume, force=force, progress=True)
        bad = [s for s, v in det.status_.items() if v != "ok"]
        console.print(
            f"fitted {sum(v == 'ok' for v in det.status_.values())} stations in {time.time() - t0:.1f} s -> {run}"
        )
        if any(v == "failed" for v in det.status_.values()):
            console.print(f"[yellow]failed stations:[/yellow] {bad}")
            raise typer.Exit(EXIT_FAILED_STATIONS)
        if not any(v == "ok" for v in det.status_.values()):
            _fail(
                f"no station could be fitted: all {len(bad)} have insufficient data in the training "
                f"period {cfg.train}. Check --var and --train against the data."
            )
        if bad:
            console.print(f"[yellow]stations without a model (insufficient data):[/yellow] {bad}")

    _guard(go)


BASELINE_FNS = ("zscore", "level_shift", "seasonal_esd")


def add_baselines(det_ds: Any, ds: Any, cfg: DetectorConfig, names: tuple[str, ...]) -> Any:
    """Run baselines on the same (transformed) series and store their flags as
    baseline_<name>_flag(time, station), restricted to the monitoring period."""
    from koopman_anomaly.detector import _mask, _period

    times = pd.DatetimeIndex(det_ds.time.values)
    x = det_ds["obs"].values
    tr = _mask(times, _period(cfg.train, "train"))
    mon = det_ds["in_monitor"].values == 1
    side = cfg.side
    for name in names:
        if name == "zscore":
            r = baselines.zscore(x, times, tr, side=side)
        elif name == "level_shift":
            r = baselines.level_shift(x, tr, window=cfg.k, side=side)
        elif name == "seasonal_esd":
            r = baselines.seasonal_esd(x, times, side=side)
        else:
            _fail(f"unknown baseline {name!r}; choose from {BASELINE_FNS}")
        f = np.where(mon[:, None], r.flag, False).astype(np.int8)
        det_ds[f"{BASELINE_PREFIX}{name}_flag"] = (
            ("time", "station"),
            f,
            {"long_name": f"{name} baseline flag"},
        )
    return det_ds


@app.command()
def detect(
    data: Path = typer.Argument(...),
    run: Path = typer.Option(..., "--run"),
    monitor: str | None = typer.Option(None, help="2020-01-01:2020-12-31"),
    out: Path = typer.Option(Path("detections.nc"), "--out"),
    window: str | None = typer.Option(None, help="e.g. 168h"),
    side: str | None = typer.Option(None, help="lower | upper | both"),
    alpha: float | None = typer.Option(None),
    null: str | None = typer.Option(
        None, help="hac | hac_t (Student-t, for Holm/maxT) | empirical | bootstrap | insample"
    ),
    correction: str | None = typer.Option(None, help="none | bonferroni | holm | bh | by | maxt"),
    method: str | None = typer.Option(None, help="window | cusum | glr"),
    combine: str | None = typer.Option(None, help="stouffer | hotelling | none"),
    stat: str | None = typer.Option(None, help="mean | msq"),
    baselines_: str | None = typer.Option(
        None, "--baselines", help="zscore,level_shift,seasonal_esd"
    ),
    config: Path | None = typer.Option(None),
) -> None:
    """Standardised residuals, window statistics, calibrated p-values and flags -> netCDF."""
    o = _merge(
        dict(
            monitor=monitor,
            window=window,
            side=side,
            alpha=alpha,
            null=null,
            correction=correction,
            method=method,
            combine=combine,
            stat=stat,
            baselines=baselines_,
        ),
        config,
    )

    def go() -> None:
        manifest = (
            json.loads((run / "manifest.json").read_text())
            if (run / "manifest.json").exists()
            else {}
        )
        if manifest.get("layout") == "grid":
            _detect_grid(data, manifest, o, out)
            return
        ds = io.open_dataset(data)
        det = KoopmanAnomalyDetector.load(run)
        c = det.config
        for key in ("window", "side", "alpha", "null", "correction", "method", "combine", "stat"):
            if o.get(key) is not None:
                v = o[key]
                if key == "combine" and str(v).lower() == "none":
                    v = None
                elif key == "alpha":
                    try:
                        v = float(v)
                    except (TypeError, ValueError):
                        _fail(f"alpha must be a number in (0, 0.5], got {v!r}.")
                elif not isinstance(v, str):
                    _fail(f"{key} must be a string, got {v!r} (e.g. window = '168h').")
                setattr(c, key, v)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = det.detect(ds, monitor=_period(o.get("monitor"), "monitor"), progress=True)
        names = _split(o.get("baselines"), "baselines")
        if names:
            res = add_baselines(res, ds, c, names)
        io.write_netcdf_atomic(res, out)
        n = int((res["flag"] != 0).sum())
        st, cnt = np.unique(res["status"].values.astype(str), return_counts=True)
        by_status = ", ".join(f"{a}: {int(b)}" for a, b in zip(st, cnt, strict=True))
        console.print(f"wrote {out}: {n} flags; stations {by_status}")
        failed = [
            str(s)
            for s, v in zip(res.station.values, res.status.values, strict=True)
            if v == "failed"
        ]
        if failed:
            console.print(f"[yellow]failed stations:[/yellow] {failed}")
            raise typer.Exit(EXIT_FAILED_STATIONS)

    _guard(go)


def _detect_grid(data: Path, manifest: dict[str, Any], o: dict[str, Any], out: Path) -> None:
    from dask.diagnostics import ProgressBar
    from koopman_anomaly.grid import GridConfig, detect_grid, finalize_grid

    c = manifest["config"]
    ds = io.canonical_dims(io.open_dataset(data, chunks={"time": -1, "lat": 90, "lon": 180}))

    def given(key: str, default: Any) -> Any:
        return o[key] if o.get(key) is not None else default

    try:
        alpha = float(given("alpha", c["alpha"]))
    except (TypeError, ValueError):
        _fail(f"alpha must be a number in (0, 0.5], got {o.get('alpha')!r}.")
    gcfg = GridConfig(
        window=_whole_hours(given("window", c["window"]), "window"),
        side=given("side", c["side"]),
        alpha=alpha,
        correction=given("correction", "by"),
        transform=c.get("transform", "log"),
    )
    mon = _period(o.get("monitor"), "monitor")
    if mon is None:
        _fail("grid detection needs --monitor START:END")
    da = io.get_variable(ds, c["var"])
    lazy = detect_grid(da, tuple(c["train"]), tuple(c["calib"]), mon, gcfg)
    with ProgressBar():
        res = finalize_grid(lazy, gcfg)
    res.attrs.update(
        {"variable": c["var"], "method": "window", "null": "hac", "config": json.dumps(c)}
    )
    io.write_netcdf_atomic(res, out)
    console.print(f"wrote {out}: flag fraction {float(res['flag'].astype(bool).mean()):.4f}")


@app.command()
def report(
    detections: Path = typer.Argument(...),
    out: Path = typer.Option(Path("report"), "--out"),
    truth: str | None = typer.Option(None, help="DATA.nc:anomaly  (labels to score against)"),
) -> None:
    """index.html with PNG figures and FAR/power/delay tables against the baselines."""

    def go() -> None:
        det = io.open_dataset(detections).load()
        need = ("flag_fraction",) if "station" not in det.dims else ("flag", "status", "in_monitor")
        missing = [v for v in need if v not in det]
        if missing:
            _fail(
                f"{detections} is not an airwatch detections file (missing {missing}); run "
                "`airwatch detect` first and report on its --out file."
            )
        labels = None
        if truth:
            path, _, var = truth.rpartition(":")
            if not path:
                _fail("--truth must look like DATA.nc:anomaly")
            tds = io.canonical_dims(io.open_dataset(Path(path)))
            tvar = io.get_variable(tds, var)
            if "station" not in det.dims:
                _fail("--truth scores station detections only; this is a grid detections file.")
            try:
                labels = labels_for(det, tvar)
            except (KeyError, ValueError) as exc:
                _fail(
                    f"--truth {truth} does not cover the detections' times and stations ({exc}); "
                    "pass the labels of the same data file that was detected."
                )
        page = write_report(det, out, labels)
        console.print(f"wrote {page}")

    _guard(go)


@app.command()
def demo(
    out: Path = typer.Option(Path("airwatch-demo"), "--out"),
    quick: bool = typer.Option(False, help="small data and the fast harmonic forecaster (CI)"),
    forecaster: str = typer.Option(
        "harmonic",
        help="harmonic (fast, default for the demo) | dpk | auto; DPK fits take minutes per "
        "station on 2 shared cores",
    ),
    epochs: int = typer.Option(40, help="DPK epochs (demo keeps them short)"),
) -> None:
    """Generate synthetic data, fit, detect (lockdown: lower side; wildfires: upper side, k=24 h)
    and write the report, all offline."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / "stations.nc"
    t0 = time.time()
    if quick:
        synth_cmd(data, seed=0, grid=None, anomalies=True, quick=True)
        train, calib, monitor = (
            "2019-01-01:2019-09-30",
            "2019-10-01:2019-12-31",
            "2020-01-01:2020-06-30",
        )
        fc = forecaster
    else:
        synth_cmd(data, seed=0, grid=None, anomalies=True, quick=False)
        train, calib, monitor = (
            "2018-01-01:2019-06-30",
            "2019-07-01:2019-12-31",
            "2020-01-01:2020-12-31",
        )
        fc = forecaster
    fit(
        data,
        run=out / "run",
        var="no2",
        ref_var="model_no2",
        covariates="temperature,wind",
        train=train,
        calib=calib,
        periods=None,
        dist=None,
        forecaster=fc,
        epochs=epochs if fc != "harmonic" else None,
        ref_offset=None,
        floor=None,
        config=None,
        resume=True,
        force=True,
    )
    detect(
        data,
        run=out / "run",
        monitor=monitor,
        out=out / "detections.nc",
        window="168h",
        side="lower",
        alpha=0.01,
        null="hac",
        correction="bh",
        method="window",
        combine="stouffer",
        stat=None,
        baselines_="zscore,level_shift,seasonal_esd",
        config=None,
    )
    detect(
        data,
        run=out / "run",
        monitor=monitor,
        out=out / "detections_spikes.nc",
        window="24h",
        side="upper",
        alpha=0.01,
        null="hac",
        correction="bh",
        method="window",
        combine=None,
        stat=None,
        baselines_="zscore,level_shift,seasonal_esd",
        config=None,
    )
    report(out / "detections.nc", out=out / "report", truth=f"{data}:anomaly")
    report(out / "detections_spikes.nc", out=out / "report_spikes", truth=f"{data}:anomaly")
    console.print(
        f"demo finished in {time.time() - t0:.0f} s: open {out / 'report' / 'index.html'}"
    )


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
