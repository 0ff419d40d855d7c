"""Deep Probabilistic Koopman forecasting: periodic, long-horizon, calibrated predictive distributions."""

__version__ = "0.1.0"
