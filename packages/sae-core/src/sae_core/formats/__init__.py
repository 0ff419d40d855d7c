"""Detect, load and save sparse coders in every supported layout, from a local folder or a hub id."""

from __future__ import annotations

import os
from pathlib import Path

from sae_core.arch import SparseCoder
from sae_core.errors import FormatError
from sae_core.formats.dictlearn import is_dictlearn, load_dictlearn
from sae_core.formats.gemmascope import is_gemmascope, load_gemmascope, save_gemmascope
from sae_core.formats.saelens import is_saelens, load_saelens, save_saelens
from sae_core.formats.sparsify import is_sparsify, load_sparsify, save_sparsify

FORMATS = ("sparsify", "saelens", "gemmascope", "dictlearn")
_DETECT = {
    "sparsify": is_sparsify,
    "saelens": is_saelens,
    "gemmascope": is_gemmascope,
    "dictlearn": is_dictlearn,
}
_LOAD = {
    "sparsify": load_sparsify,
    "saelens": load_saelens,
    "gemmascope": load_gemmascope,
    "dictlearn": load_dictlearn,
}

__all__ = ["FORMATS", "detect", "load", "save", "list_hookpoints", "download"]


def detect(path: str | Path) -> str:
    """The layout of a coder folder, judged by the files present (never by names)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FormatError(f"{folder} is not a directory")
    found = [name for name, test in _DETECT.items() if test(folder)]
    if len(found) > 1:
        raise FormatError(f"{folder} matches several layouts {found}; keep one set of weight files")
    if not found:
        subs = list_hookpoints(folder)
        hint = f"; it holds coders in sub-folders {subs}: pass hookpoint=" if subs else ""
        raise FormatError(
            f"{folder} holds no known SAE layout (sparsify cfg.json+sae.safetensors, SAELens "
            f"cfg.json+sae_weights.safetensors, Gemma Scope params.npz, dictionary_learning ae.pt){hint}"
        )
    return found[0]


def list_hookpoints(root: str | Path) -> list[str]:
    """Sub-folders of ``root`` (recursively) that hold a coder, relative to ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for dirpath, _, _ in os.walk(root):
        p = Path(dirpath)
        if p != root and any(test(p) for test in _DETECT.values()):
            out.append(str(p.relative_to(root)))
    return sorted(out)


def download(repo_id: str, hookpoint: str | None = None, revision: str | None = None) -> Path:
    """Download (only) the files of one coder from the Hugging Face hub; returns the local folder."""
    from huggingface_hub import snapshot_download

    patterns = [f"{hookpoint}/*"] if hookpoint else ["*.json", "*.safetensors", "*.npz", "*.pt"]
    if os.environ.get("HF_HUB_OFFLINE"):
        raise FormatError(
            f"{repo_id!r} is not a local folder and HF_HUB_OFFLINE is set; pass a local path"
        )
    try:
        local = Path(snapshot_download(repo_id, allow_patterns=patterns, revision=revision))
    except Exception as e:  # offline, unknown repo, gated repo: huggingface_hub's own errors
        raise FormatError(
            f"{repo_id!r} is not a local folder and could not be downloaded from the hub "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); check the path "
            "or the hub id, or download the coder and pass its folder"
        ) from None
    return local / hookpoint if hookpoint else local


def load(
    path_or_hub: str | Path,
    hookpoint: str | None = None,
    device: str = "cpu",
    fmt: str | None = None,
) -> SparseCoder:
    """Load a coder from a local folder (optionally ``root/hookpoint``) or a hub id (``org/repo``)."""
    path = Path(path_or_hub)
    if not path.exists():
        if (
            isinstance(path_or_hub, str)
            and path_or_hub.count("/") == 1
            and not path_or_hub.startswith((".", "/"))
        ):
            path = download(path_or_hub, hookpoint)
            hookpoint = None
        else:
            raise FormatError(f"{path} does not exist (and is not a hub id of the form 'org/repo')")
    folder = path / hookpoint if hookpoint else path
    if hookpoint and not folder.is_dir():
        raise FormatError(
            f"hookpoint {hookpoint!r} not found under {path}; available: {list_hookpoints(path)}"
        )
    kind = fmt or detect(folder)
    if kind not in _LOAD:
        raise FormatError(f"unknown format {kind!r}; use one of {FORMATS}")
    sae = _LOAD[kind](folder, device=device)
    sae.requires_grad_(False)
    return sae.eval()


def save(
    sae: SparseCoder, path: str | Path, fmt: str = "sparsify", hookpoint: str | None = None
) -> Path:
    """Save in ``fmt``; sparsify writes ``path/<hookpoint>/``, the others write ``path/``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FormatError(f"{path} is a file; save into a folder (a new or existing directory)")
    if fmt == "sparsify":
        return save_sparsify(sae, path, hookpoint)
    if fmt == "saelens":
        return save_saelens(sae, path)
    if fmt == "gemmascope":
        return save_gemmascope(sae, path)
    if fmt == "dictlearn":
        raise FormatError("saving in the dictionary_learning layout is not supported (load only)")
    raise FormatError(f"unknown format {fmt!r}; use one of sparsify, saelens, gemmascope")
