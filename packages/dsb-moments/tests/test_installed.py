"""The scaffold is a real installable project: it imports and its version matches its metadata."""

from importlib.metadata import version

import dsb_moments


def test_version_matches_distribution_metadata() -> None:
    assert dsb_moments.__version__ == version("ivory-dsb-moments")
