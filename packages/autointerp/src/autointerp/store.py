"""Atomic, resumable per-latent record files (temp file + fsync + os.replace)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from autointerp.rng import stable_hash
from autointerp.schema import SCHEMA_VERSION


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def stage_key(*parts: Any) -> str:
    return f"{stable_hash(SCHEMA_VERSION, *parts, digest_size=16):032x}"


def write_record(path: Path, key: str, record: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps({"key": key, "record": record}, sort_keys=True))


def read_record(path: Path, key: str | None = None) -> dict[str, Any] | None:
    """The stored record if present, parseable and (when ``key`` is given) made with that key."""
    try:
        obj = json.loads(path.read_text())
    except (FileNotFoundError, IsADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):  # valid JSON but not a record: treated as damaged
        return None
    if key is not None and obj.get("key") != key:
        return None
    return obj.get("record")
