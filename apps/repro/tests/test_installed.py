"""The scaffold is a real installable project: it imports and its version matches its metadata."""

from importlib.metadata import version

import repro


def test_version_matches_distribution_metadata() -> None:
    assert repro.__version__ == version("ivory-repro")
