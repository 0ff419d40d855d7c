"""Offline demo text: the gensim Wikipedia sample when gensim is installed, else English
docstrings of the Python standard library (read with ``ast``, nothing imported)."""

from __future__ import annotations

import ast
import bz2
import json
import re
import sysconfig
from pathlib import Path


def stdlib_docstrings(min_chars: int = 300) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    for p in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if "test" in p.parts or "tests" in p.parts or "idlelib" in p.parts:
            continue
        try:
            tree = ast.parse(p.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                d = ast.get_docstring(node)
                if d and len(d) >= min_chars:
                    docs.append(d)
    return docs


def gensim_wikipedia() -> list[str] | None:
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(spec.submodule_search_locations[0]) / "test" / "test_data"
    dumps = sorted(data.glob("enwiki-*.bz2"), key=lambda f: f.stat().st_size, reverse=True)
    if not dumps:
        return None
    with bz2.open(dumps[0], "rt", encoding="utf-8") as f:
        text = f.read()
    pages = re.findall(r"<text[^>]*>(.*?)</text>", text, re.S)
    clean = []
    for p in pages:
        p = re.sub(
            r"\{\{.*?\}\}|\[\[(?:[^|\]]*\|)?([^\]]*)\]\]|<[^>]+>|&[a-z]+;|'{2,}",
            r"\1",
            p,
            flags=re.S,
        )
        p = re.sub(r"\s+", " ", p).strip()
        if len(p) > 300:
            clean.append(p)
    return clean or None


def demo_corpus(cache_file: Path) -> tuple[list[str], str]:
    """Documents and the name of their source, cached as JSON in ``cache_file``."""
    if cache_file.exists():
        obj = json.loads(cache_file.read_text())
        return obj["docs"], obj["source"]
    docs, name = gensim_wikipedia(), "gensim Wikipedia sample"
    if docs is None:
        docs, name = stdlib_docstrings(), "Python stdlib docstrings"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"source": name, "docs": docs}))
    tmp.replace(cache_file)
    return docs, name
