"""Load causal LMs from a hub id, a local folder, a GGUF file, or the offline default ``"smollm2"``.

GGUF files are converted once into a normal Hugging Face folder, cached under a key made of the
file's SHA-256 and the transformers major.minor version, so that later loads take about a second.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lm_kit.errors import GGUFConversionError, ModelNotFoundError

META_FILENAME = "lm_kit_meta.json"
PROBE_TEXT = "The capital of France is Paris, and the"
PROBE_TOKENS = 8
PROBE_TOLERANCE = 1e-5
SUGGESTION = (
    'use load_model("smollm2") for the offline SmolLM2-135M-Instruct, or load_model("tiny") '
    "for a tiny random Llama"
)
_DTYPE_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
_HASH_MEMO: dict[tuple[str, int, int], str] = {}


# --------------------------------------------------------------------------- cache location
def cache_root() -> Path:
    """``$LM_KIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/lm-kit``, else ``~/.cache/lm-kit``."""
    if os.environ.get("LM_KIT_CACHE_DIR"):
        return Path(os.environ["LM_KIT_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "lm-kit"
    return Path.home() / ".cache" / "lm-kit"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file (memoised per path, size and mtime within the process)."""
    p = Path(path)
    st = p.stat()
    memo_key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key in _HASH_MEMO:
        return _HASH_MEMO[memo_key]
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    _HASH_MEMO[memo_key] = h.hexdigest()
    return _HASH_MEMO[memo_key]


def transformers_major_minor() -> str:
    import transformers

    return ".".join(transformers.__version__.split(".")[:2])


def gguf_cache_key(path: str | os.PathLike[str]) -> str:
    """``sha256(file)[:16]`` + ``-tf<major.minor>``."""
    return f"{file_sha256(path)[:16]}-tf{transformers_major_minor()}"


def gguf_cache_dir(path: str | os.PathLike[str], root: Path | None = None) -> Path:
    return (root or cache_root()) / "gguf" / gguf_cache_key(path)


# --------------------------------------------------------------------------- dtype / device
def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; a bad or unavailable device raises ``ValueError``."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:<index>', 'mps', a "
            "torch.device, or None (CUDA when available, else CPU)"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} asked for CUDA, but CUDA is not available here; use "
                "device='cpu' or device=None (picks CUDA when available)"
            )
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(
                f"device {device!r} does not exist: {n} CUDA device(s) visible (cuda:0..cuda:{n - 1})"
            )
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """Default fp32 on CPU, bf16 on CUDA; accepts torch dtypes or names like ``"bf16"``."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(
                f"dtype {dtype} is not a floating-point dtype, so model weights cannot use it; "
                f"use one of {sorted(_DTYPE_NAMES)} or a floating torch.dtype"
            )
        return dtype
    try:
        return _DTYPE_NAMES[str(dtype).lower().removeprefix("torch.")]
    except KeyError:
        raise ValueError(
            f"unknown dtype {dtype!r}; use one of {sorted(_DTYPE_NAMES)} or a torch.dtype"
        ) from None


# --------------------------------------------------------------------------- GGUF conversion
def _gguf_architecture(path: Path) -> str:
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode()
    except Exception:  # noqa: BLE001 - best effort, only for error messages
        return "unknown"


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _probe_ids(tokenizer: Any) -> torch.Tensor:
    ids = tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"][:PROBE_TOKENS]
    ids = (list(ids) + list(range(PROBE_TOKENS)))[:PROBE_TOKENS]
    return torch.tensor([ids], dtype=torch.long)


@torch.no_grad()
def _probe_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids).logits.float()


def _load_gguf_rebuilt(path: Path) -> tuple[Any, Any]:
    """Load a GGUF file with transformers and rebuild it as a plain (saveable) fp32 model."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    try:
        gguf_model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as exc:  # transformers raises ValueError/OSError/KeyError variously
        arch = _gguf_architecture(path)
        raise GGUFConversionError(
            f"could not load GGUF file {path} (architecture {arch!r}) with transformers "
            f"{transformers.__version__}: {exc}. Check that the file is a complete GGUF download "
            f"and that transformers supports this architecture; {SUGGESTION}"
        ) from exc
    cfg_dict = gguf_model.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    config = type(gguf_model.config).from_dict(cfg_dict)
    rebuilt = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    rebuilt.load_state_dict(gguf_model.state_dict(), strict=True)
    rebuilt.eval()
    ids = _probe_ids(tokenizer)
    diff = (_probe_logits(gguf_model, ids) - _probe_logits(rebuilt, ids)).abs().max().item()
    if diff > PROBE_TOLERANCE:
        raise GGUFConversionError(
            f"rebuilt model from {path} differs from the GGUF-loaded one (max |dlogit| = {diff:.3g} "
            f"> {PROBE_TOLERANCE}); please report this with your transformers version"
        )
    del gguf_model
    return rebuilt, tokenizer


def convert_gguf(
    path: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Convert a GGUF file once into a cached Hugging Face folder and return that folder.

    Steps (all under an ``fcntl`` lock): load with ``gguf_file=``, rebuild from the config without
    ``quantization_config``, save model + tokenizer + ``lm_kit_meta.json`` into a temp dir, reload
    it and check the logits of a fixed 8-token probe (|d| <= 1e-5), then ``os.replace`` it into place.
    Raises ``OSError`` if the cache directory is not writable (``load_model`` then loads uncached).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"GGUF file not found: {path}; {SUGGESTION}")
    root = Path(cache_dir).expanduser() if cache_dir else cache_root()
    target = gguf_cache_dir(path, root)
    if (target / META_FILENAME).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f"{target.name}.lock"):
        if (target / META_FILENAME).is_file():  # another process finished it meanwhile
            return target
        model, tokenizer = _load_gguf_rebuilt(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            ids = _probe_ids(tokenizer)
            expected = _probe_logits(model, ids)
            reloaded = type(model).from_pretrained(tmp, dtype=torch.float32).eval()
            diff = (_probe_logits(reloaded, ids) - expected).abs().max().item()
            if diff > PROBE_TOLERANCE:
                raise GGUFConversionError(
                    f"saved copy of {path} does not reproduce its logits (max |dlogit| = {diff:.3g});"
                    " the cache was not written"
                )
            import transformers

            meta = {
                "source": str(path.resolve()),
                "sha256": file_sha256(path),
                "cache_key": target.name,
                "transformers_version": transformers.__version__,
                "architecture": model.config.model_type,
                "probe_ids": ids[0].tolist(),
                "probe_max_abs_diff": diff,
                "created": _dt.datetime.now(_dt.UTC).isoformat(),
            }
            (tmp / META_FILENAME).write_text(json.dumps(meta, indent=2))
            if target.exists():  # stale partial folder without meta
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- spec resolution
def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or os.sep in spec and Path(spec).exists()


def _finish(model: Any, tokenizer: Any, device: torch.device) -> tuple[Any, Any]:
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    if tokenizer is not None and tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        tokenizer.init_kwargs["lm_kit_pad_from_eos"] = True
        warnings.warn(
            "tokenizer had no pad token; using its EOS token as pad (recorded in "
            "tokenizer.init_kwargs['lm_kit_pad_from_eos']). Always pass the attention mask.",
            stacklevel=3,
        )
    return model, tokenizer


def _load_folder(
    folder: str | Path, *, dtype: torch.dtype, head: bool, revision: str | None = None
) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    cls = AutoModelForCausalLM if head else AutoModel
    kw: dict[str, Any] = {"dtype": dtype}
    if revision is not None:
        kw["revision"] = revision
    model = cls.from_pretrained(folder, **kw)
    tokenizer = AutoTokenizer.from_pretrained(
        folder, **({"revision": revision} if revision else {})
    )
    return model, tokenizer


def _load_gguf(path: Path, *, dtype: torch.dtype, head: bool) -> tuple[Any, Any]:
    if not path.is_file():
        raise ModelNotFoundError(f"GGUF file not found: {path}; {SUGGESTION}")
    try:
        folder = convert_gguf(path)
    except (PermissionError, OSError) as exc:
        if isinstance(exc, ModelNotFoundError):
            raise
        warnings.warn(
            f"cannot write the GGUF cache under {cache_root()} ({exc}); loading {path.name} "
            "uncached (30-80 s every time). Set LM_KIT_CACHE_DIR to a writable folder.",
            stacklevel=3,
        )
        model, tokenizer = _load_gguf_rebuilt(path)
        model = model.to(dtype)
        if not head:
            model = model.base_model
        return model, tokenizer
    return _load_folder(folder, dtype=dtype, head=head)


def _load_hub(
    repo_id: str, *, dtype: torch.dtype, head: bool, revision: str | None
) -> tuple[Any, Any]:
    if not _HUB_ID.match(repo_id):
        raise ModelNotFoundError(
            f"{repo_id!r} is neither an existing folder, a .gguf file nor a valid hub id; {SUGGESTION}"
        )
    if _offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
        if not isinstance(cached, str):
            raise ModelNotFoundError(
                f"hub id {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is "
                f"set, so it cannot be downloaded; {SUGGESTION}"
            )
    try:
        return _load_folder(repo_id, dtype=dtype, head=head, revision=revision)
    except OSError as exc:
        raise ModelNotFoundError(
            f"could not load hub id {repo_id!r} (not found, or no network): {exc}; {SUGGESTION}"
        ) from exc


def load_model(
    spec: str | os.PathLike[str],
    *,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    head: bool = True,
    revision: str | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` in eval mode with gradients off.

    ``spec``: ``"smollm2"`` (offline SmolLM2-135M-Instruct), ``"tiny"`` / ``"tiny:<family>"``
    (random tiny model), a ``*.gguf`` path or ``"gguf:<path>"``, a folder with ``config.json``,
    or a hub id. ``head=False`` loads the base model without the LM head (faster for activations).
    Defaults: fp32 on CPU, bf16 on CUDA.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(
            f"load_model needs a model spec string or path, got {type(spec).__name__}; {SUGGESTION}"
        )
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    s = os.fspath(spec)
    if not s.strip():
        raise ModelNotFoundError(f"the model spec is empty; {SUGGESTION}")
    if s.lower() == "smollm2":
        from lm_kit.offline import smollm2_gguf

        model, tok = _load_gguf(smollm2_gguf(), dtype=dt, head=head)
    elif s.lower() == "tiny" or s.lower().startswith("tiny:"):
        from lm_kit.tiny import tiny_model, tiny_tokenizer

        family = s.split(":", 1)[1] if ":" in s else "llama"
        model, tok = tiny_model(family), tiny_tokenizer()
        model = model.to(dt)
        if not head:
            model = model.base_model
    elif s.startswith("gguf:"):
        model, tok = _load_gguf(Path(s[5:]).expanduser(), dtype=dt, head=head)
    elif s.lower().endswith(".gguf"):
        model, tok = _load_gguf(Path(s).expanduser(), dtype=dt, head=head)
    elif Path(s).expanduser().is_dir():
        folder = Path(s).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(
                f"folder {folder} has no config.json, so it is not a Hugging Face model folder; "
                f"pass a folder written by save_pretrained, a .gguf file, or {SUGGESTION}"
            )
        try:
            model, tok = _load_folder(folder, dtype=dt, head=head)
        except (OSError, ValueError, KeyError) as exc:  # transformers' errors for broken folders
            raise ModelNotFoundError(
                f"could not load the model folder {folder}: {type(exc).__name__}: {exc}. "
                "Check that config.json is valid JSON with a 'model_type' and that the weights "
                "(model.safetensors or pytorch_model.bin) and tokenizer files are there, e.g. by "
                f"saving with save_pretrained; or {SUGGESTION}"
            ) from exc
    elif _looks_like_path(s):
        raise ModelNotFoundError(f"path {s!r} does not exist; {SUGGESTION}")
    else:
        model, tok = _load_hub(s, dtype=dt, head=head, revision=revision)
    return _finish(model, tok, dev)
