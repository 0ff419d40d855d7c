"""Anomaly detection on DPK forecasts: xarray/netCDF in and out, calibrated nulls, type I/II error control."""

__version__ = "0.1.0"
