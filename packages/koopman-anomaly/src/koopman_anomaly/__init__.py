"""Anomaly detection on DPK forecasts: xarray/netCDF in and out, calibrated nulls, type I/II error control."""

__version__ = "0.1.0"

from .combine import hotelling, ledoit_wolf_corr, stouffer  # noqa: E402
from .decide import adjust  # noqa: E402
from .detector import DetectorConfig, KoopmanAnomalyDetector  # noqa: E402
from .errors import AnomalyError, ConfigError, InvalidDataError  # noqa: E402
from .forecast import DPKForecaster, Forecaster, HarmonicForecaster, Predictive  # noqa: E402
from .grid import pca_fit, pca_zscores  # noqa: E402
from .null import BootstrapNull, EmpiricalNull, HACNull, InsampleNull  # noqa: E402
from .sequential import cusum, glr  # noqa: E402
from .windows import window_stats  # noqa: E402

__all__ = [
    "AnomalyError",
    "BootstrapNull",
    "ConfigError",
    "DPKForecaster",
    "DetectorConfig",
    "EmpiricalNull",
    "Forecaster",
    "HACNull",
    "HarmonicForecaster",
    "InsampleNull",
    "InvalidDataError",
    "KoopmanAnomalyDetector",
    "Predictive",
    "adjust",
    "cusum",
    "glr",
    "hotelling",
    "ledoit_wolf_corr",
    "pca_fit",
    "pca_zscores",
    "stouffer",
    "window_stats",
]
