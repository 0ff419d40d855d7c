"""Offline neutral text for KL cost: prose paragraphs from text that ships with our
dependencies (scikit-learn's dataset descriptions and Python standard-library docstrings).

A stand-in for a Wikipedia sample so that cost numbers need no download; pass your own text
for real evaluations.
"""

from __future__ import annotations

import importlib
import re
from importlib import resources

_MODULES = (
    "argparse",
    "collections",
    "json",
    "logging",
    "pathlib",
    "textwrap",
    "unittest",
    "asyncio",
    "csv",
    "difflib",
    "email",
    "http",
    "sqlite3",
    "tarfile",
    "zipfile",
    "heapq",
    "bisect",
    "functools",
    "itertools",
    "pickle",
    "shutil",
    "subprocess",
    "threading",
    "typing",
)


def _prose(p: str, min_chars: int) -> bool:
    if len(p) < min_chars:
        return False
    letters = sum(ch.isalpha() or ch == " " for ch in p)
    return letters / len(p) > 0.88 and not re.search(r"[=|]{3,}|\.\. |:\w+:`|>>>", p)


def neutral_paragraphs(min_chars: int = 160) -> list[str]:
    out: list[str] = []
    try:
        descr = resources.files("sklearn.datasets") / "descr"
        for f in sorted(descr.iterdir(), key=lambda x: x.name):
            if f.name.endswith(".rst"):
                for para in f.read_text(encoding="utf-8").split("\n\n"):
                    p = " ".join(para.split())
                    if _prose(p, min_chars):
                        out.append(p)
    except Exception:  # noqa: BLE001 - sklearn layout changed
        pass
    for name in _MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001
            continue
        for para in (mod.__doc__ or "").split("\n\n"):
            p = " ".join(para.split())
            if _prose(p, min_chars):
                out.append(p)
    return out


stdlib_paragraphs = neutral_paragraphs
