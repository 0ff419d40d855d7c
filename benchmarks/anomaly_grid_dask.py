"""koopman-anomaly grid path through dask on a (time, lat, lon) cube stored on disk as netCDF.

1. Generate the cube chunk by chunk (dask, never whole in memory) and write it to netCDF
   (netCDF4/HDF5, float32, on-disk chunks spanning the full time axis, no compression: noise
   barely compresses and zlib would dominate the run). Default 8760 h x 360 x 720 = 2.27 G cells,
   9.1 GB on disk (18 GB as float64; the eager computation would also hold mu, residual, z and
   the window arrays, ~100 GB: far beyond one process on a 24 GiB machine). The write is atomic
   (temporary file + rename) and an existing cube with the same shape and seed is reused.
2. Open it lazily with chunks {time: -1, lat: 90, lon: 180} and run the per-pixel path: harmonic
   least-squares forecast per pixel, standardised residuals, trailing windows (k = 168 h), a
   per-pixel HAC null fitted on the calibration months, p-values at weekly decision times, BY
   across all pixels and decisions. Reports wall time, grid cells per second and the peak RSS of
   this process (the OS page cache is not counted).
3. Side by side: the same computation without dask on one chunk read from the file (equality).

    uv run python benchmarks/anomaly_grid_dask.py [--lat 360 --lon 720 --time 8760]
        [--store /tmp/airwatch_grid/cube.nc] [--keep] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import psutil
from dask.callbacks import Callback
from koopman_anomaly import grid, io, synth
from koopman_anomaly.windows import decision_index

CUBE_VERSION = 1


class PeakRSS:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.2)

    def __enter__(self) -> PeakRSS:
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


class TaskLog(Callback):
    """Prints each finished pixel-block task with the running throughput (the log shows
    progress, and a partial number survives an interrupted run)."""

    def __init__(self, t0: float, n_tasks: int, cells_per_task: float) -> None:
        super().__init__()
        self.t0, self.n_tasks, self.cpt, self.done = t0, n_tasks, cells_per_task, 0

    def _posttask(self, key, result, dsk, state, worker_id):  # noqa: ANN001
        name = str(key[0] if isinstance(key, tuple) else key)
        if name.startswith("pixel_pvalues-"):  # the (fused) per-block kernel task
            self.done += 1
            dt = time.time() - self.t0
            print(
                f"  block {self.done}/{self.n_tasks} at {dt:.0f} s "
                f"({self.done * self.cpt / dt:.3e} cells/s so far)",
                flush=True,
            )


def cube_ok(path: Path, n_time: int, lat: int, lon: int, seed: int) -> bool:
    if not path.exists():
        return False
    try:
        ds = io.open_dataset(path)
    except Exception:
        return False
    with ds:
        return (
            ds.sizes.get("time") == n_time
            and ds.sizes.get("lat") == lat
            and ds.sizes.get("lon") == lon
            and int(ds.attrs.get("seed", -1)) == seed
            and int(ds.attrs.get("cube_version", -1)) == CUBE_VERSION
        )


def write_cube(path: Path, n_time: int, lat: int, lon: int, seed: int, workers: int) -> None:
    # generation chunks are small (float64 intermediates ~1 GB per task); on-disk chunks divide
    # them and the read chunks (90 x 180), and span the full time axis
    ds = synth.lazy_grid(
        n_time=n_time,
        shape=(lat, lon),
        chunks=(min(45, lat), min(90, lon)),
        seed=seed,
        start="2019-01-01",
        drop=("2019-10-15", "2019-11-30"),
        drop_size=-0.35,
    )
    ds.attrs["cube_version"] = CUBE_VERSION
    enc = {
        "log_no2": {
            "zlib": False,
            "chunksizes": (n_time, min(15, lat), min(30, lon)),
            "dtype": "float32",
        }
    }
    with dask.config.set(scheduler="threads", num_workers=workers):
        io.write_netcdf_atomic(ds, path, encoding=enc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time", type=int, default=8760)
    ap.add_argument("--lat", type=int, default=360)
    ap.add_argument("--lon", type=int, default=720)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--store", type=Path, default=Path("/tmp/airwatch_grid/cube.nc"))
    ap.add_argument("--keep", action="store_true", help="keep the cube file for reruns")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.lat, a.lon = 90, 180
        a.store = a.store.with_name("cube_quick.nc")
    cells = a.time * a.lat * a.lon
    need = cells * 4 * 1.05
    free = shutil.disk_usage(a.store.parent if a.store.parent.exists() else "/").free
    print(
        f"cube {a.time} x {a.lat} x {a.lon} = {cells / 1e9:.2f} G cells; "
        f"{cells * 4 / 1e9:.1f} GB on disk (float32), {cells * 8 / 1e9:.1f} GB as float64; "
        f"RAM {psutil.virtual_memory().total / 2**30:.0f} GiB, {psutil.cpu_count()} cores, "
        f"disk free {free / 1e9:.0f} GB"
    )
    t0 = time.time()
    if cube_ok(a.store, a.time, a.lat, a.lon, a.seed):
        print(f"reusing {a.store} ({a.store.stat().st_size / 1e9:.2f} GB)")
        t_write = float("nan")
    else:
        if free < need + 2e9:
            raise SystemExit(f"not enough disk at {a.store.parent}: need {need / 1e9:.1f} GB")
        a.store.parent.mkdir(parents=True, exist_ok=True)
        with PeakRSS() as mem_w:
            write_cube(a.store, a.time, a.lat, a.lon, a.seed, a.workers)
        t_write = time.time() - t0
        print(
            f"generated and wrote {a.store} ({a.store.stat().st_size / 1e9:.2f} GB) in "
            f"{t_write:.0f} s, peak RSS {mem_w.peak / 1e9:.2f} GB",
            flush=True,
        )

    chunks = {"time": -1, "lat": min(90, a.lat), "lon": min(180, a.lon)}
    ds = io.open_dataset(a.store, chunks=chunks)
    print(f"{ds['log_no2'].data.npartitions} dask tasks of {chunks}", flush=True)
    cfg = grid.GridConfig(
        periods=("24h", "168h", "8766h"),
        harmonics=(2, 2, 1),
        window=168,
        side="lower",
        alpha=0.01,
        correction="by",
    )
    per = dict(
        train=("2019-01-01", "2019-06-30"),
        calib=("2019-07-01", "2019-09-30"),
        monitor=("2019-10-01", "2019-12-31"),
    )
    lazy = grid.detect_grid(ds["log_no2"], cfg=cfg, **per)
    n_tasks = ds["log_no2"].data.npartitions
    t0 = time.time()
    with (
        PeakRSS() as mem,
        dask.config.set(scheduler="threads", num_workers=a.workers),
        TaskLog(t0, n_tasks, cells / n_tasks),
    ):
        res = grid.finalize_grid(lazy, cfg)
    wall = time.time() - t0
    la, lo = np.meshgrid(res.lat.values, res.lon.values, indexing="ij")
    region = (la > 35) & (la < 60) & (lo > -10) & (lo < 40)
    times = pd.DatetimeIndex(res.decision_time.values)
    in_drop = np.asarray((times >= "2019-10-22") & (times <= "2019-12-06"))
    flags = res["flag"].values != 0
    print(
        f"dask run (read from disk + detect): {wall:.1f} s wall, peak RSS {mem.peak / 1e9:.2f} GB"
    )
    print(
        f"flagged share of region pixel-windows inside the drop: {flags[in_drop][:, region].mean():.3f}; "
        f"outside the region: {flags[:, ~region].mean():.5f}"
    )
    out_nc = a.store.with_name(a.store.stem + "_detections.nc")
    io.write_netcdf_atomic(res, out_nc)
    print(f"wrote {out_nc} ({out_nc.stat().st_size / 1e6:.1f} MB)")

    # eager equivalence on one chunk read from the file
    sub = ds["log_no2"].isel(lat=slice(0, chunks["lat"]), lon=slice(0, chunks["lon"]))
    t_idx = pd.DatetimeIndex(ds.time.values)

    def m(p: tuple[str, str]) -> np.ndarray:
        return np.asarray(
            (t_idx >= p[0]) & (t_idx <= pd.Timestamp(p[1]) + pd.Timedelta("23h59min"))
        )

    mon = np.flatnonzero(m(per["monitor"]))
    dec = decision_index(len(t_idx), mon[0], mon[-1] + 1, cfg.window)
    t1 = time.time()
    eager = grid.grid_stats_eager(sub.values, t_idx, m(per["train"]), m(per["calib"]), dec, cfg)
    t_eager = time.time() - t1
    got = (
        res["p_value"]
        .isel(lat=slice(0, chunks["lat"]), lon=slice(0, chunks["lon"]))
        .transpose("lat", "lon", "decision_time")
        .values
    )
    diff = float(np.nanmax(np.abs(got - eager[:, :, 1, :])))
    n_chunk = chunks["lat"] * chunks["lon"]
    print(
        f"eager one chunk ({n_chunk} pixels): {t_eager:.1f} s "
        f"({a.time * n_chunk / t_eager:.3e} cells/s, one thread); "
        f"max |p dask - p eager| = {diff:.2e}"
    )
    ds.close()
    if not a.keep:
        a.store.unlink(missing_ok=True)
        print(f"removed {a.store} (use --keep to reuse it)")
    print("(2 CPU cores shared with other jobs: absolute throughput is contention-dependent)")
    print()
    print(f"grid cube size GB on disk: {cells * 4 / 1e9:.1f}")
    print(f"grid cells: {cells:.3e}")
    print(f"grid cube write seconds: {t_write:.0f}")
    print(f"grid cells per second: {cells / wall:.3e}")
    print(f"grid wall seconds: {wall:.1f}")
    print(f"grid peak RSS GB: {mem.peak / 1e9:.2f}")
    print(f"grid max abs difference dask vs eager: {diff:.2e}")
    print(f"grid drop-region detection share: {flags[in_drop][:, region].mean():.3f}")
    print(f"grid flag fraction outside region: {flags[:, ~region].mean():.5f}")


if __name__ == "__main__":
    main()
