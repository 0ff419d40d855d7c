import warnings

import pytest
from koopman_anomaly import KoopmanAnomalyDetector, synth


@pytest.fixture(scope="session")
def small_stations():
    """Unit-size fixture: 4 stations x 1.5 years, lockdown in spring 2020."""
    return synth.make_stations(
        seed=3, n_stations=4, start="2019-01-01", end="2020-06-30 23:00", n_spikes=0
    )


@pytest.fixture(scope="session")
def small_periods():
    return {
        "train": ("2019-01-01", "2019-09-30"),
        "calib": ("2019-10-01", "2019-12-31"),
        "monitor": ("2020-01-01", "2020-06-30"),
    }


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.fixture(scope="session")
def make_det(small_periods):
    """The tests' detector: harmonic forecaster, both covariates, the small periods, HAC null;
    keyword arguments override any setting."""

    def make(**kw):
        base = dict(
            forecaster="harmonic",
            covariates=("temperature", "wind"),
            train=small_periods["train"],
            calib=small_periods["calib"],
            alpha=0.01,
            null="hac",
            correction="none",
        )
        return KoopmanAnomalyDetector(**{**base, **kw})

    return make
