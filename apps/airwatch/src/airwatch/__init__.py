"""Forecasting and anomaly detection on station or grid netCDF."""

__version__ = "0.1.0"
