import json

import numpy as np
import pytest
import xarray as xr
from airwatch.cli import app
from koopman_anomaly import io, synth
from typer.testing import CliRunner

runner = CliRunner()
PER = ["--train", "2019-01-01:2019-09-30", "--calib", "2019-10-01:2019-12-31"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("aw")
    r = runner.invoke(app, ["synth", str(d / "s.nc"), "--quick", "--seed", "1"])
    assert r.exit_code == 0, r.output
    return d


def test_fit_detect_report_roundtrip(data):
    run = data / "run"
    r = runner.invoke(
        app,
        [
            "fit",
            str(data / "s.nc"),
            "--run",
            str(run),
            "--var",
            "no2",
            "--ref-var",
            "model_no2",
            "--covariates",
            "temperature,wind",
            "--forecaster",
            "harmonic",
            *PER,
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((run / "manifest.json").read_text())
    assert set(m["stations"].values()) == {"ok"}
    out = data / "det.nc"
    r = runner.invoke(
        app,
        [
            "detect",
            str(data / "s.nc"),
            "--run",
            str(run),
            "--monitor",
            "2020-01-01:2020-06-30",
            "--out",
            str(out),
            "--alpha",
            "0.01",
            "--null",
            "hac",
            "--correction",
            "bh",
            "--combine",
            "stouffer",
            "--baselines",
            "zscore,level_shift,seasonal_esd",
        ],
    )
    assert r.exit_code == 0, r.output
    det = io.open_dataset(out)
    for v in (
        "mu",
        "sigma",
        "z",
        "zeta",
        "stat",
        "p_value",
        "q_value",
        "flag",
        "baseline_zscore_flag",
        "combined_p",
    ):
        assert v in det
    truth = io.open_dataset(data / "s.nc").anomaly.values
    # lockdown stations (cluster A) are flagged inside the event window
    a = det.cluster.values == "A"
    assert ((det.flag.values[:, a] != 0) & (truth[:, a] == 1)).any()
    rep = data / "rep"
    r = runner.invoke(
        app, ["report", str(out), "--out", str(rep), "--truth", f"{data / 's.nc'}:anomaly"]
    )
    assert r.exit_code == 0, r.output
    html = (rep / "index.html").read_text()
    assert "FAR per decision unit" in html and "level_shift" in html
    assert "point-adjusted F1" in html
    assert len(list(rep.glob("*.png"))) >= 4


def test_bad_inputs_exit_3(data):
    r = runner.invoke(
        app, ["fit", str(data / "s.nc"), "--run", str(data / "r2"), "--var", "o3", *PER]
    )
    assert r.exit_code == 3 and "variables present" in r.output
    r = runner.invoke(app, ["fit", str(data / "missing.nc"), "--run", str(data / "r2"), *PER])
    assert r.exit_code == 3 and "not found" in r.output
    r = runner.invoke(
        app,
        [
            "fit",
            str(data / "s.nc"),
            "--run",
            str(data / "r2"),
            "--train",
            "2019-01-01:2019-10-30",
            "--calib",
            "2019-10-01:2019-12-31",
        ],
    )
    assert r.exit_code == 3 and "overlaps" in r.output
    ds = io.open_dataset(data / "s.nc").load()
    ds["no2"].attrs["units"] = "K"
    io.write_netcdf_atomic(ds, data / "k.nc")
    r = runner.invoke(app, ["fit", str(data / "k.nc"), "--run", str(data / "r3"), *PER])
    assert r.exit_code == 3 and "units" in r.output


def test_config_change_refused_without_force(data):
    run = data / "run4"
    base = ["fit", str(data / "s.nc"), "--run", str(run), "--forecaster", "harmonic", *PER]
    assert runner.invoke(app, base).exit_code == 0
    r = runner.invoke(app, [*base, "--periods", "24h,168h"])
    assert r.exit_code == 3 and "--force" in r.output
    assert runner.invoke(app, [*base, "--periods", "24h,168h", "--force"]).exit_code == 0


def test_toml_config(data, tmp_path):
    cfg = tmp_path / "aw.toml"
    cfg.write_text(
        'var = "no2"\nforecaster = "harmonic"\ntrain = "2019-01-01:2019-09-30"\n'
        'calib = "2019-10-01:2019-12-31"\n'
    )
    r = runner.invoke(
        app, ["fit", str(data / "s.nc"), "--run", str(tmp_path / "run"), "--config", str(cfg)]
    )
    assert r.exit_code == 0, r.output


def test_grid_through_cli(tmp_path):
    g = synth.make_grid(
        seed=0,
        shape=(6, 8),
        start="2019-01-01",
        end="2019-12-31 23:00",
        drop_start="2019-11-01",
        drop_end="2019-12-15",
        drop_size=-1.0,
    )
    io.write_netcdf_atomic(g, tmp_path / "g.nc")
    run = tmp_path / "grun"
    r = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "g.nc"),
            "--run",
            str(run),
            "--train",
            "2019-01-01:2019-08-31",
            "--calib",
            "2019-09-01:2019-10-31",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "detect",
            str(tmp_path / "g.nc"),
            "--run",
            str(run),
            "--monitor",
            "2019-11-01:2019-12-31",
            "--out",
            str(tmp_path / "gd.nc"),
            "--alpha",
            "0.01",
        ],
    )
    assert r.exit_code == 0, r.output
    out = xr.load_dataset(tmp_path / "gd.nc")
    lab = g.anomaly.values.max(0) == 1
    ff = out.flag_fraction.values
    assert ff[lab].mean() > ff[~lab].mean() + 0.2
    assert np.isfinite(out.p_value.values).all()


@pytest.mark.slow
def test_demo_quick(tmp_path):
    r = runner.invoke(app, ["demo", "--quick", "--out", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "demo" / "report" / "index.html").exists()
    assert (tmp_path / "demo" / "report_spikes" / "index.html").exists()


def test_failed_detect_keeps_good_output(data, monkeypatch):
    """A detect run that fails (bad alpha, or a write interrupted half way) leaves an existing
    good detections file byte-identical and no partial file behind."""
    run = data / "run_keep"
    fit_args = ["fit", str(data / "s.nc"), "--run", str(run), "--forecaster", "harmonic", *PER]
    assert runner.invoke(app, fit_args).exit_code == 0
    out = data / "keep" / "det.nc"
    det_args = ["detect", str(data / "s.nc"), "--run", str(run)]
    det_args += ["--monitor", "2020-01-01:2020-06-30", "--out", str(out)]
    r = runner.invoke(app, det_args)
    assert r.exit_code == 0, r.output
    good = out.read_bytes()

    r = runner.invoke(app, [*det_args, "--alpha", "0.7"])
    assert r.exit_code == 3 and "alpha" in r.output
    assert out.read_bytes() == good

    real = xr.Dataset.to_netcdf

    def dies_half_way(self, path, *a, **kw):
        real(self.isel(time=slice(0, 10)), path, *a, **kw)  # a partial file on disk ...
        raise KeyboardInterrupt  # ... then the process is interrupted

    monkeypatch.setattr(xr.Dataset, "to_netcdf", dies_half_way)
    r = runner.invoke(app, det_args)
    assert r.exit_code == 4 and "resume" in r.output
    assert out.read_bytes() == good
    assert sorted(p.name for p in out.parent.iterdir()) == ["det.nc"]


@pytest.fixture(scope="module")
def fitted_run(data):
    run = data / "run_bad"
    r = runner.invoke(
        app, ["fit", str(data / "s.nc"), "--run", str(run), "--forecaster", "harmonic", *PER]
    )
    assert r.exit_code == 0, r.output
    return run


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--window", "abc"], "not a duration"),
        (["--window", "0h"], "positive whole number of hours"),
        (["--monitor", "foo:bar"], "'foo' is not a date"),
        (["--monitor", "2022-01-01:2022-06-30"], "no data inside the monitoring period"),
        (["--monitor", "2019-03-01:2019-04-30"], "overlaps training"),
    ],
)
def test_detect_bad_arguments_exit_3(data, fitted_run, tmp_path, args, match):
    out = tmp_path / "o.nc"
    r = runner.invoke(
        app, ["detect", str(data / "s.nc"), "--run", str(fitted_run), "--out", str(out), *args]
    )
    assert r.exit_code == 3, r.output
    assert match in " ".join(r.output.split())
    assert not out.exists()


def test_detect_out_is_directory_and_combine_none(data, fitted_run, tmp_path):
    base = ["detect", str(data / "s.nc"), "--run", str(fitted_run)]
    base += ["--monitor", "2020-01-01:2020-06-30"]
    r = runner.invoke(app, [*base, "--out", str(tmp_path)])
    assert r.exit_code == 3 and "is a directory" in " ".join(r.output.split())
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "o.nc"), "--combine", "none"])
    assert r.exit_code == 0, r.output
    assert "combined_p" not in io.open_dataset(tmp_path / "o.nc")


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ("alhpa = 0.05\n", "unknown key(s) ['alhpa']"),
        ("alpha = 'abc'\n", "alpha must be a number"),
        ("window = 5\n", "window must be a string"),
    ],
)
def test_detect_bad_toml_exit_3(data, fitted_run, tmp_path, toml, match):
    cfg = tmp_path / "aw.toml"
    cfg.write_text(toml)
    r = runner.invoke(
        app,
        ["detect", str(data / "s.nc"), "--run", str(fitted_run), "--config", str(cfg)]
        + ["--out", str(tmp_path / "o.nc")],
    )
    assert r.exit_code == 3, r.output
    assert match in " ".join(r.output.split())


@pytest.mark.parametrize(
    ("args", "toml", "match"),
    [
        (["--train", "a:b", "--calib", "2019-10-01:2019-12-31"], None, "'a' is not a date"),
        (["--forecaster", "prophet", *PER], None, "forecaster must be"),
        (["--forecaster", "harmonic", "--periods", "abc", *PER], None, "not a duration"),
        (["--forecaster", "harmonic", "--epochs", "5", *PER], None, "DPK forecaster only"),
        (["--ref-var", "model_no2", "--ref-offset", "abc", *PER], None, "ref_offset='abc'"),
        ([], "train = ['2019-01-01']\ncalib = '2019-10-01:2019-12-31'\n", "two entries [start"),
        ([], "train = 5\ncalib = '2019-10-01:2019-12-31'\n", "train 5 must look like"),
        (PER, "covariates = 5\n", "covariates must be a comma-separated"),
    ],
)
def test_fit_bad_arguments_exit_3(data, tmp_path, args, toml, match):
    extra = []
    if toml is not None:
        (tmp_path / "aw.toml").write_text(toml)
        extra = ["--config", str(tmp_path / "aw.toml")]
    r = runner.invoke(
        app, ["fit", str(data / "s.nc"), "--run", str(tmp_path / "run"), *args, *extra]
    )
    assert r.exit_code == 3, r.output
    assert match in " ".join(r.output.split())


def test_fit_without_any_fittable_station_exit_3(data, tmp_path):
    ds = io.open_dataset(data / "s.nc")
    ds["no2"][:] = np.nan
    io.write_netcdf_atomic(ds, tmp_path / "nan.nc")
    r = runner.invoke(
        app,
        ["fit", str(tmp_path / "nan.nc"), "--run", str(tmp_path / "run")]
        + ["--forecaster", "harmonic", *PER],
    )
    assert r.exit_code == 3 and "no station could be fitted" in " ".join(r.output.split())


def test_report_and_synth_bad_inputs_exit_3(data, tmp_path):
    r = runner.invoke(app, ["report", str(data / "s.nc"), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 3 and "not an airwatch detections file" in " ".join(r.output.split())
    for g in ("3x4x5", "0x0", "3x"):
        r = runner.invoke(app, ["synth", str(tmp_path / "g.nc"), "--grid", g])
        assert r.exit_code == 3 and "must look like 32x48" in " ".join(r.output.split())
    r = runner.invoke(app, ["synth", str(tmp_path), "--quick"])
    assert r.exit_code == 3 and "is a directory" in " ".join(r.output.split())


def test_grid_detect_bad_options_exit_3(tmp_path):
    g = synth.make_grid(seed=0, shape=(2, 2), start="2019-01-01", end="2019-03-31 23:00")
    io.write_netcdf_atomic(g, tmp_path / "g.nc")
    run = tmp_path / "grun"
    r = runner.invoke(
        app,
        ["fit", str(tmp_path / "g.nc"), "--run", str(run)]
        + ["--train", "2019-01-01:2019-01-31", "--calib", "2019-02-01:2019-02-28"],
    )
    assert r.exit_code == 0, r.output
    base = ["detect", str(tmp_path / "g.nc"), "--run", str(run), "--out", str(tmp_path / "o.nc")]
    for args, match in [
        (["--monitor", "2019-03-01:2019-03-31", "--alpha", "0"], "alpha must lie"),  # was ignored
        (["--monitor", "2020-01-01:2020-01-31"], "no data inside the monitor period"),
        (["--monitor", "2019-03-01:2019-03-31", "--window", "abc"], "not a duration"),
    ]:
        r = runner.invoke(app, [*base, *args])
        assert r.exit_code == 3, r.output
        assert match in " ".join(r.output.split())
    assert not (tmp_path / "o.nc").exists()
