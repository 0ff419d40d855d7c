"""JSON Lines input: one object per non-blank line, with errors that name file:line."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import RepeError


def read_json_objects(
    path: str | os.PathLike[str],
    what: str,
    error: type[RepeError] = RepeError,
    hint: str = "",
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of the JSONL file at `path`.

    A missing file, invalid JSON or a line that is not a JSON object raises `error`, naming the
    file (as `what`), the line and `hint` (what each line should hold)."""
    if not os.path.isfile(path):
        raise error(f"{what} file {path} does not exist (or is not a file); check the path")
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(
                    f"{path}:{i}: not valid JSON ({e.msg}); each line must be one JSON object{hint}"
                ) from None
            if not isinstance(d, dict):
                raise error(f"{path}:{i}: expected a JSON object{hint}, got {type(d).__name__}")
            out.append((i, d))
    return out
