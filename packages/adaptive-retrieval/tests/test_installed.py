"""The scaffold is a real installable project: it imports and its version matches its metadata."""

from importlib.metadata import version

import adaptive_retrieval


def test_version_matches_distribution_metadata() -> None:
    assert adaptive_retrieval.__version__ == version("ivory-adaptive-retrieval")
