"""The scaffold is a real installable project: it imports and its version matches its metadata."""

from importlib.metadata import version

import elk_quirky


def test_version_matches_distribution_metadata() -> None:
    assert elk_quirky.__version__ == version("ivory-elk-quirky")
