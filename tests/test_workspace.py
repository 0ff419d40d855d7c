"""Cross-package invariants of the workspace layout."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = sorted([*ROOT.glob("packages/*/pyproject.toml"), *ROOT.glob("apps/*/pyproject.toml")])
PREFIX = "ivory-"


def _project(pp: Path) -> dict:
    return tomllib.loads(pp.read_text())["project"]


def _import_name(pp: Path) -> str:
    (src,) = [p for p in (pp.parent / "src").iterdir() if p.is_dir() and not p.name.startswith(".")]
    return src.name


def test_all_members_present() -> None:
    names = {pp.parent.name for pp in MEMBERS}
    assert names == {
        "lm-kit",
        "sae-core",
        "autointerp",
        "scalable-elicit",
        "dsb-moments",
        "elk-quirky",
        "repe",
        "adaptive-retrieval",
        "koopman-dpk",
        "koopman-anomaly",
        "interp",
        "airwatch",
        "repro",
    }


def test_distribution_names_share_prefix() -> None:
    for pp in MEMBERS:
        assert _project(pp)["name"] == PREFIX + pp.parent.name


def test_no_undeclared_sibling_imports() -> None:
    """A package imports a workspace sibling only if its pyproject declares it."""
    import_to_dist = {_import_name(pp): _project(pp)["name"] for pp in MEMBERS}
    for pp in MEMBERS:
        own = _import_name(pp)
        declared = {
            d.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip()
            for d in _project(pp).get("dependencies", [])
        }
        for py in (pp.parent / "src").rglob("*.py"):
            tree = ast.parse(py.read_text())
            for node in ast.walk(tree):
                mods: list[str] = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    mods = [node.module]
                for m in mods:
                    top = m.split(".")[0]
                    if top in import_to_dist and top != own:
                        assert import_to_dist[top] in declared, (
                            f"{py.relative_to(ROOT)} imports {top} but "
                            f"{pp.relative_to(ROOT)} does not declare {import_to_dist[top]}"
                        )


def test_python_version() -> None:
    assert sys.version_info >= (3, 11)
