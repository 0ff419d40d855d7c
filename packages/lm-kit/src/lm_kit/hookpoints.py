"""One naming scheme for hookpoints, resolved to modules on every supported family.

Three spellings resolve to the same :class:`Site` objects:

* canonical ``<site>.<layer>`` (``resid_post.3``, ``mlp_out.-1``, ``attn_out.*``, ``neurons.2-5``),
  plus the layerless ``embed`` and ``final_norm``;
* raw ``module:<path>[:in|:out]`` relative to ``base_model`` (fnmatch wildcards allowed);
* TransformerLens names (``blocks.3.hook_resid_post``), translated with :func:`from_tl`.
"""

from __future__ import annotations

import fnmatch
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from lm_kit.arch import (
    LAYERLESS_SITES,
    SITE_NAMES,
    SITE_TABLE,
    Direction,
    base_model_of,
    family_of,
    find_blocks,
    model_config,
)
from lm_kit.errors import SiteError

# canonical site -> TransformerLens hook (``{L}`` = layer)
_TL_OF_SITE = {
    "resid_pre": "blocks.{L}.hook_resid_pre",
    "resid_mid": "blocks.{L}.hook_resid_mid",
    "resid_post": "blocks.{L}.hook_resid_post",
    "attn_out": "blocks.{L}.hook_attn_out",
    "mlp_out": "blocks.{L}.hook_mlp_out",
    "mlp_in": "blocks.{L}.ln2.hook_normalized",
    "neurons": "blocks.{L}.mlp.hook_post",
    "attn_z": "blocks.{L}.attn.hook_z",
}
_TL_LAYERLESS = {"embed": "blocks.0.hook_resid_pre", "final_norm": "ln_final.hook_normalized"}
_SITE_OF_TL_SUFFIX = {v.split("{L}.", 1)[1]: k for k, v in _TL_OF_SITE.items()}
_TL_RE = re.compile(r"^blocks\.(-?\d+)\.(.+)$")


@dataclass(frozen=True)
class Site:
    """A resolved hookpoint: read/edit the ``direction`` (module input or output) of ``module``."""

    name: str
    module_path: str  # relative to the root model
    direction: Direction
    layer: int | None
    kind: str  # canonical site ("resid_post"...) or "module"
    editable: bool = True
    tl_name: str | None = None
    width: int | None = None
    module: nn.Module | None = field(default=None, compare=False, repr=False, hash=False)


# --------------------------------------------------------------------------- TL translation
def to_tl(name: str) -> str:
    """Canonical name -> TransformerLens hook name (``resid_post.3`` -> ``blocks.3.hook_resid_post``)."""
    if name in _TL_LAYERLESS:
        return _TL_LAYERLESS[name]
    kind, _, layer = name.partition(".")
    if kind not in _TL_OF_SITE or not re.fullmatch(r"-?\d+", layer):
        raise SiteError(
            f"cannot translate {name!r} to a TransformerLens name; expected <site>.<int layer> with "
            f"site in {sorted(_TL_OF_SITE)} or one of {sorted(_TL_LAYERLESS)}"
        )
    return _TL_OF_SITE[kind].format(L=int(layer))


def from_tl(name: str) -> str:
    """TransformerLens hook name -> canonical name (``blocks.3.hook_resid_post`` -> ``resid_post.3``)."""
    if name == _TL_LAYERLESS["final_norm"]:
        return "final_norm"
    if name in ("hook_embed+hook_pos_embed", "embed"):
        return "embed"
    m = _TL_RE.match(name)
    if m and m.group(2) in _SITE_OF_TL_SUFFIX:
        return f"{_SITE_OF_TL_SUFFIX[m.group(2)]}.{int(m.group(1))}"
    raise SiteError(
        f"unknown TransformerLens hook name {name!r}; supported: "
        + ", ".join(
            sorted(["blocks.L." + s for s in _SITE_OF_TL_SUFFIX] + [_TL_LAYERLESS["final_norm"]])
        )
    )


# --------------------------------------------------------------------------- helpers
def describe_valid_sites(model: nn.Module) -> str:
    """Human-readable list of the site names valid for ``model`` (used in error messages)."""
    try:
        fam = family_of(model)
        _, blocks = find_blocks(model)
        n = len(blocks)
        kinds = [k for k in SITE_TABLE[fam] if k not in LAYERLESS_SITES]
        canon = ["embed"] + [f"{k}.{{0..{n - 1}}}" for k in kinds] + ["final_norm"]
        if fam == "gpt_neox" and getattr(model_config(model), "use_parallel_residual", False):
            canon.remove(f"resid_mid.{{0..{n - 1}}}")
        head = "canonical: " + ", ".join(canon) + " (layer may be negative, '*' or 'a-b'); "
    except Exception:  # noqa: BLE001 - unknown family: only raw names
        head = ""
    return (
        head
        + "raw: 'module:<path>[:in|:out]' relative to base_model (fnmatch ok, e.g. 'module:"
        + _example_module(model)
        + "'); TransformerLens names like 'blocks.0.hook_resid_post'"
    )


def list_sites(model: nn.Module) -> list[str]:
    """Every concrete canonical site name of ``model``, in forward order."""
    fam = family_of(model)
    _, blocks = find_blocks(model)
    out = ["embed"]
    parallel = fam == "gpt_neox" and getattr(model_config(model), "use_parallel_residual", False)
    for layer in range(len(blocks)):
        for kind in SITE_TABLE[fam]:
            if kind in LAYERLESS_SITES or (kind == "resid_mid" and parallel):
                continue
            out.append(f"{kind}.{layer}")
    out.append("final_norm")
    return out


def _example_module(model: nn.Module) -> str:
    base = base_model_of(model)
    names = [n for n, _ in base.named_modules() if n]
    return next((n for n in names if n.endswith("mlp")), names[0] if names else "layers.0")


def _parse_layers(spec: str, n: int, name: str, model: nn.Module) -> list[int]:
    if spec == "*":
        return list(range(n))
    m = re.fullmatch(r"(\d+)-(\d+)", spec)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if not (0 <= a <= b < n):
            raise SiteError(f"layer range {spec!r} in {name!r} is outside 0..{n - 1}")
        return list(range(a, b + 1))
    if re.fullmatch(r"-?\d+", spec):
        i = int(spec)
        if not -n <= i < n:
            raise SiteError(
                f"layer {i} in {name!r} is out of range: the model has {n} layers (valid 0..{n - 1} "
                f"or -{n}..-1)"
            )
        return [i % n]
    raise SiteError(
        f"bad layer {spec!r} in {name!r}; use an int, a negative int, '*' or 'a-b'. Valid sites: "
        + describe_valid_sites(model)
    )


def _site_from_rule(
    model: nn.Module, kind: str, layer: int | None, blocks_path: str, fam: str
) -> Site:
    rule = SITE_TABLE[fam][kind]
    if rule.scope == "base":
        base = base_model_of(model)
        base_path = next((p for p, m in model.named_modules() if m is base), "")
        path = ".".join(p for p in (base_path, rule.module) if p)
        name, tl_layer = kind, None
    else:
        blk = 0 if kind == "embed" else layer
        path = ".".join(p for p in (blocks_path, str(blk), rule.module) if p)
        name = kind if kind == "embed" else f"{kind}.{layer}"
        tl_layer = blk
    try:
        module = model.get_submodule(path)
    except AttributeError:
        raise SiteError(
            f"site {name!r} maps to module {path!r}, which {type(model).__name__} does not have; "
            "use a raw 'module:<path>' site"
        ) from None
    tl = _TL_LAYERLESS.get(kind) or _TL_OF_SITE[kind].format(L=tl_layer)
    return Site(
        name=name,
        module_path=path,
        direction=rule.direction,
        layer=tl_layer,
        kind=kind,
        editable=rule.editable,
        tl_name=tl,
        module=module,
    )


def _resolve_raw(model: nn.Module, name: str, inputs: bool) -> list[Site]:
    body = name[len("module:") :]
    direction: Direction = "in" if inputs else "out"
    if body.endswith((":in", ":out")):
        body, _, d = body.rpartition(":")
        direction = d  # type: ignore[assignment]
    base = base_model_of(model)
    base_path = next((p for p, m in model.named_modules() if m is base), "")
    names = dict(base.named_modules())
    hits = [n for n in names if n and fnmatch.fnmatchcase(n, body)]
    prefix = base_path + "." if base_path else ""
    if not hits:  # also accept paths relative to the root model
        root_names = dict(model.named_modules())
        root_hits = [n for n in root_names if n and fnmatch.fnmatchcase(n, body)]
        if root_hits:
            hits, names, prefix = root_hits, root_names, ""
    if not hits:
        close = [n for n in names if n and n.split(".")[-1] == body.split(".")[-1]][:8]
        raise SiteError(
            f"no module matches {body!r} under base_model ({type(base).__name__}); "
            + (f"similar: {', '.join(close)}. " if close else "")
            + "Valid sites: "
            + describe_valid_sites(model)
        )
    out = []
    blocks_path, _ = _try_blocks(model)
    for n in hits:
        full = prefix + n
        layer = None
        if blocks_path and full.startswith(blocks_path + "."):
            head = full[len(blocks_path) + 1 :].split(".")[0]
            layer = int(head) if head.isdigit() else None
        out.append(
            Site(
                name=f"module:{n}:{direction}",
                module_path=full,
                direction=direction,
                layer=layer,
                kind="module",
                editable=True,
                tl_name=None,
                module=names[n],
            )
        )
    return out


def _try_blocks(model: nn.Module) -> tuple[str | None, nn.ModuleList | None]:
    try:
        return find_blocks(model)
    except Exception:  # noqa: BLE001
        return None, None


def resolve(
    model: nn.Module,
    name: str | Site,
    *,
    inputs: bool = False,
    probe: bool = False,
    layers_path: str | None = None,
) -> list[Site]:
    """Resolve a site name (canonical, ``module:...`` or TransformerLens) to concrete :class:`Site` s.

    ``inputs=True`` makes raw ``module:`` names without ``:in/:out`` read the module input.
    ``probe=True`` fills ``Site.width`` with one dummy forward (cached per model).
    Unknown names raise :class:`SiteError` listing the valid ones.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"sites are resolved on a torch.nn.Module (e.g. from load_model), got "
            f"{type(model).__name__}"
        )
    if isinstance(name, Site):
        sites = [name]
    elif not isinstance(name, str):
        raise SiteError(f"site names must be strings or Site objects, got {type(name).__name__}")
    elif name.startswith("module:"):
        sites = _resolve_raw(model, name, inputs)
    else:
        canonical = from_tl(name) if name.startswith(("blocks.", "ln_final")) else name
        kind, _, layer_spec = canonical.partition(".")
        try:
            fam = family_of(model)
        except SiteError as exc:
            raise SiteError(f"{exc}. Valid sites: {describe_valid_sites(model)}") from None
        if kind not in SITE_NAMES:
            raise SiteError(f"unknown site {name!r}. Valid sites: {describe_valid_sites(model)}")
        blocks_path, blocks = find_blocks(model, layers_path)
        if kind in LAYERLESS_SITES:
            if layer_spec:
                raise SiteError(f"site {kind!r} takes no layer (got {name!r})")
            layers: list[int | None] = [None]
        else:
            if not layer_spec:
                raise SiteError(
                    f"site {name!r} needs a layer, e.g. '{kind}.0', '{kind}.-1' or '{kind}.*'"
                )
            layers = list(_parse_layers(layer_spec, len(blocks), name, model))
        if (
            kind == "resid_mid"
            and fam == "gpt_neox"
            and getattr(model_config(model), "use_parallel_residual", False)
        ):
            raise SiteError(
                "resid_mid does not exist on GPT-NeoX with use_parallel_residual=True: attention and "
                "MLP both read the block input; use resid_pre or resid_post"
            )
        sites = [_site_from_rule(model, kind, layer, blocks_path, fam) for layer in layers]
    if probe:
        widths = probe_widths(model, sites)
        sites = [_with_width(s, widths.get((s.module_path, s.direction))) for s in sites]
    return sites


def resolve_many(model: nn.Module, names: Any, *, inputs: bool = False) -> list[Site]:
    """Resolve one name or a sequence of names; duplicates (same name) are dropped."""
    if isinstance(names, (str, Site)):
        names = [names]
    out: dict[str, Site] = {}
    for n in names:
        for s in resolve(model, n, inputs=inputs):
            out.setdefault(s.name, s)
    return list(out.values())


def _with_width(site: Site, width: int | None) -> Site:
    from dataclasses import replace

    return replace(site, width=width)


_WIDTHS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, str], int | None]] = (
    weakref.WeakKeyDictionary()
)


def _first_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], torch.Tensor):
        return x[0]
    return None


@torch.no_grad()
def probe_widths(model: nn.Module, sites: list[Site]) -> dict[tuple[str, str], int | None]:
    """Last-dim width of each site, measured with one 3-token dummy forward (cached per model)."""
    cache = _WIDTHS.setdefault(model, {})
    missing = [s for s in sites if (s.module_path, s.direction) not in cache]
    if missing:
        handles = []
        for s in missing:
            key = (s.module_path, s.direction)
            cache.setdefault(key, None)
            mod = s.module if s.module is not None else model.get_submodule(s.module_path)

            def _pre(_m, args, kwargs, key=key):
                t = _first_tensor(args) if args else kwargs.get("hidden_states")
                if t is not None:
                    cache[key] = int(t.shape[-1])

            def _post(_m, _args, out, key=key):
                t = _first_tensor(out)
                if t is not None:
                    cache[key] = int(t.shape[-1])

            if s.direction == "in":
                handles.append(mod.register_forward_pre_hook(_pre, with_kwargs=True))
            else:
                handles.append(mod.register_forward_hook(_post))
        try:
            dev = next(model.parameters()).device
            model(input_ids=torch.tensor([[1, 2, 3]], device=dev))
        finally:
            for h in handles:
                h.remove()
    return {(s.module_path, s.direction): cache.get((s.module_path, s.direction)) for s in sites}


def hs_index(model: nn.Module, site: str | Site) -> int:
    """Index into ``output_hidden_states`` that equals ``site``.

    ``hs[0]`` = block-0 input (``embed``/``resid_pre.0``); ``hs[i]`` = ``resid_pre.i`` =
    ``resid_post.{i-1}``; ``hs[L]`` = ``final_norm`` (after the final norm!). ``resid_post.{L-1}``
    has no index and raises: ``hs[-1]`` is post-norm.
    """
    s = site if isinstance(site, Site) else resolve(model, site)[0]
    _, blocks = find_blocks(model)
    n = len(blocks)
    if s.kind == "embed":
        return 0
    if s.kind == "resid_pre":
        return int(s.layer)  # type: ignore[arg-type]
    if s.kind == "final_norm":
        return n
    if s.kind == "resid_post":
        if s.layer == n - 1:
            raise SiteError(
                f"resid_post.{n - 1} (last block output, before the final norm) is not in "
                f"hidden_states: hs[{n}] = hs[-1] is final_norm(resid_post.{n - 1}). Capture "
                f"'resid_post.{n - 1}' with hooks, or use 'final_norm' for hs[-1]"
            )
        return int(s.layer or 0) + 1
    raise SiteError(
        f"site {s.name!r} has no hidden_states index; only embed, resid_pre.L, resid_post.L "
        "(L < last) and final_norm do"
    )
