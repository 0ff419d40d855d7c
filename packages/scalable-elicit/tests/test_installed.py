"""The scaffold is a real installable project: it imports and its version matches its metadata."""

from importlib.metadata import version

import scalable_elicit


def test_version_matches_distribution_metadata() -> None:
    assert scalable_elicit.__version__ == version("ivory-scalable-elicit")
