"""Redacted JSONL audit log: one line per request, no prompts, no outputs, no secrets.

Line: ``{ts, stage, model, endpoint, key, attempts, status, prompt_tokens, completion_tokens,
cached_tokens, latency_s}``. ``key`` is the cache key (a hash), so a line can be matched with
its cache entry without storing the prompt here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

AUDIT_FIELDS = (
    "ts",
    "stage",
    "model",
    "endpoint",
    "key",
    "attempts",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "latency_s",
)


class AuditLog:
    """Append-only JSONL file; each line is written with one ``write`` call under a lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, **fields: Any) -> None:
        unknown = set(fields) - set(AUDIT_FIELDS)
        if unknown:
            raise ValueError(
                f"audit fields {sorted(unknown)} are not allowed; allowed: {AUDIT_FIELDS}"
            )
        record = {"ts": round(time.time(), 3), **fields}
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"


def read_audit(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of one audit file, or of every ``*.jsonl`` under a directory; bad lines skipped."""
    p = Path(path)
    files = sorted(p.rglob("*.jsonl")) if p.is_dir() else [p]
    for f in files:
        with f.open() as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and "status" in rec and "model" in rec:
                    yield rec
