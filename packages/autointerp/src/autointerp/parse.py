"""Robust parsing of LLM replies. Nothing here ever invents a default answer: failure is ``None``."""

from __future__ import annotations

import json
import re

_EXPL_RE = re.compile(r"^\s*\[EXPLANATION\]\s*:\s*(.+?)\s*$", re.MULTILINE)
_TAG_RE = re.compile(r"\[EXPLANATION\]\s*:")
_RESP_RE = re.compile(r"\[RESPONSE\]\s*:\s*\[?\s*(\d+)")
_LIST_RE = re.compile(r"\[[^\[\]]*\]")


def parse_explanation(text: str) -> tuple[str | None, list[str]]:
    """Return (explanation, flags). The last ``[EXPLANATION]:`` line wins.

    Without the tag the last non-empty line is used and flagged ``missing_tag``; an empty reply
    gives ``None`` (``empty_reply``), and so does a tag with nothing after it
    (``empty_explanation``: the bare tag is never taken as the explanation).
    """
    matches = _EXPL_RE.findall(text or "")
    if matches:
        expl = matches[-1].strip().strip('"').strip()
        return (expl or None), ([] if expl else ["empty_explanation"])
    if _TAG_RE.search(text or ""):
        return None, ["empty_explanation"]
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return None, ["empty_reply"]
    return lines[-1].strip('"').strip(), ["missing_tag"]


def parse_int_list(text: str, n: int, allowed: set[int] | None = None) -> list[int] | None:
    """The last JSON-like list of exactly ``n`` integers in ``text`` (values in ``allowed``), else None."""
    for cand in reversed(_LIST_RE.findall(text or "")):
        try:
            vals = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if not isinstance(vals, list) or len(vals) != n:
            continue
        out: list[int] = []
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                out = []
                break
            try:
                iv = int(float(v))
            except ValueError:
                out = []
                break
            if float(v) != iv or (allowed is not None and iv not in allowed):
                out = []
                break
            out.append(iv)
        if len(out) == n:
            return out
    return None


def parse_response_index(text: str, n: int) -> int | None:
    """``[RESPONSE]: k`` with 0 <= k < n (the last one), else None."""
    found = _RESP_RE.findall(text or "")
    for k in reversed(found):
        if 0 <= int(k) < n:
            return int(k)
    return None
