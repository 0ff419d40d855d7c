"""Disk response cache: one JSON file per request key, written atomically.

Key = sha256 of the canonical JSON (sorted keys) of {schema version, endpoint, normalised
base_url, model, messages or prompt, every resolved parameter, sample_index}. API keys and
headers are never part of the key or the entry. Only successful responses (with a
``finish_reason``) are stored. A corrupt entry is a miss plus a warning. Several processes
may share one cache directory: writes go to a temp file and are ``os.replace``-d into place.

Modes: ``use`` (read and write), ``refresh`` (write only), ``off``, ``only`` (read; miss ->
:class:`CacheMiss`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from lm_kit.llm.errors import CacheMiss
from lm_kit.llm.types import Completion

log = logging.getLogger(__name__)

CACHE_SCHEMA_VERSION = 1
CacheMode = Literal["use", "refresh", "off", "only"]
CACHE_MODES: tuple[str, ...] = ("use", "refresh", "off", "only")


def normalise_base_url(url: str) -> str:
    """Lower-case scheme and host, drop default ports, user info and trailing slashes."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and not (
        (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    ):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, host, path, "", ""))


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def cache_key_fields(
    *,
    endpoint: str,
    base_url: str,
    model: str,
    params: dict[str, Any],
    messages: list[dict[str, str]] | None = None,
    prompt: str | None = None,
) -> dict[str, Any]:
    return {
        "v": CACHE_SCHEMA_VERSION,
        "endpoint": endpoint,
        "base_url": normalise_base_url(base_url),
        "model": model,
        "messages": messages,
        "prompt": prompt,
        "params": params,
        "sample_index": params.get("sample_index", 0),
    }


def cache_key(**fields: Any) -> str:
    """sha256 hex of the canonical JSON of :func:`cache_key_fields`."""
    return hashlib.sha256(canonical_json(cache_key_fields(**fields)).encode()).hexdigest()


def key_of(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


class ResponseCache:
    """``<dir>/<k[:2]>/<k>.json`` files holding ``{key_fields, response, usage, created}``."""

    def __init__(self, directory: str | Path, mode: CacheMode = "use") -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"unknown cache mode {mode!r}; use one of {', '.join(CACHE_MODES)}")
        self.dir = Path(directory)
        self.mode: CacheMode = mode
        if mode != "off":
            self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    @property
    def reads(self) -> bool:
        return self.mode in ("use", "only")

    @property
    def writes(self) -> bool:
        return self.mode in ("use", "refresh")

    def get(self, key: str) -> Completion | None:
        """The cached completion, or None. In mode ``only`` a miss raises :class:`CacheMiss`."""
        if not self.reads:
            return None
        p = self.path(key)
        try:
            entry = json.loads(p.read_text())
            comp = Completion.from_dict(entry["response"], raw=None)
        except FileNotFoundError:
            comp = None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("corrupt cache entry %s (%s); treating it as a miss", p, e)
            comp = None
        if comp is None:
            if self.mode == "only":
                raise CacheMiss(
                    f"cache_mode='only' and no cached response for key {key[:12]}... in {self.dir}. "
                    "Fix: run once with cache_mode='use' to fill the cache."
                )
            return None
        comp.from_cache = True
        comp.attempts = 0
        return comp

    def put(self, key: str, key_fields: dict[str, Any], completion: Completion) -> bool:
        """Store a successful completion atomically; returns whether it was written."""
        if not self.writes or completion.finish_reason is None:
            return False
        entry = {
            "key_fields": key_fields,
            "response": {**completion.to_dict(), "from_cache": False},
            "usage": {
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "cached_tokens": completion.cached_tokens,
            },
            "created": time.time(),
        }
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{key[:8]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(entry, fh, ensure_ascii=False)
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return True

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*/*.json")) if self.dir.exists() else 0

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.dir)!r}, mode={self.mode!r})"
