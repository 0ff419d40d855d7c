import warnings

import pytest
from koopman_anomaly import synth


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
