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
