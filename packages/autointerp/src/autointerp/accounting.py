"""Token / request accounting per stage, accumulated across resumed runs (usage.jsonl)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lm_kit.llm import UsageMeter

_NUMERIC = (
    "requests",
    "cache_hits",
    "retries",
    "failures",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "saved_prompt_tokens",
    "saved_completion_tokens",
    "wall_s",
)


def snapshot(meter: UsageMeter) -> dict[tuple[str, str], dict]:
    return {(r["stage"], r["model"]): r for r in meter.to_json()}


def append_usage(run_dir: Path, meter: UsageMeter, run_id: str, before: dict | None = None) -> None:
    """Append this run's usage (the meter minus the ``before`` snapshot) to ``usage.jsonl``."""
    before = before or {}
    rows = []
    for key, r in snapshot(meter).items():
        b = before.get(key, {})
        d = {k: (r.get(k) or 0) - (b.get(k) or 0) for k in _NUMERIC}
        # USD from lm-kit's price table; None = unknown price (never counted as 0)
        c, cb = r.get("cost_usd"), b.get("cost_usd")
        d["cost_usd"] = None if c is None else c - (cb or 0.0)
        if d["requests"]:
            rows.append({"stage": key[0], "model": key[1], **d})
    if not rows:
        return
    with open(run_dir / "usage.jsonl", "a") as f:
        for r in rows:
            f.write(json.dumps({"run": run_id, "time": time.time(), **r}, default=str) + "\n")


def load_usage(run_dir: Path) -> list[dict]:
    p = run_dir / "usage.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill is ignored
    return out


def usage_by_stage(rows: list[dict]) -> dict[str, dict[str, float]]:
    agg: dict[str, dict[str, float]] = {}
    for r in rows:
        a = agg.setdefault(
            r["stage"],
            {
                "requests": 0,
                "cache_hits": 0,
                "failures": 0,
                "retries": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "wall_s": 0.0,
            },
        )
        for k in a:
            if k != "cost_usd":
                a[k] += r.get(k) or 0
        # a stage's cost is unknown as soon as one row has no price (no row before: unknown)
        c = r.get("cost_usd")
        a["cost_usd"] = (
            None if c is None or a.get("cost_usd", 0.0) is None else a.get("cost_usd", 0.0) + c
        )
    return agg
