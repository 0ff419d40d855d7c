"""Token, cache-hit, retry and cost accounting per (stage, model).

The stage comes from a context variable, so concurrent tasks keep their own::

    with stage("explain"):
        await client.chat(...)
    client.usage.total(stage="explain").cost_usd
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_kit.llm.types import Usage

DEFAULT_STAGE = "default"
_STAGE: ContextVar[str] = ContextVar("lm_kit_llm_stage", default=DEFAULT_STAGE)


@contextlib.contextmanager
def stage(name: str) -> Iterator[str]:
    """Attribute every request made inside the block (in this task) to stage ``name``."""
    if not name or not isinstance(name, str):
        raise ValueError(f"stage name must be a non-empty string, got {name!r}")
    token = _STAGE.set(name)
    try:
        yield name
    finally:
        _STAGE.reset(token)


def current_stage() -> str:
    return _STAGE.get()


@dataclass(frozen=True)
class Price:
    """US dollars per one million tokens."""

    input: float
    output: float
    cached_input: float | None = None


class PriceTable:
    """Model name (or fnmatch pattern such as ``gpt-4o*``) -> :class:`Price` in $/1M tokens.

    An unknown model costs ``None`` (unknown), never 0.
    """

    def __init__(self, prices: Mapping[str, Price | Mapping[str, float]] | None = None) -> None:
        self._prices: dict[str, Price] = {}
        for name, p in (prices or {}).items():
            if isinstance(p, Price):
                self._prices[name] = p
            elif not isinstance(p, Mapping):
                raise ValueError(
                    f"price for {name!r} must be {{input: ..., output: ...}} in $/1M tokens, got "
                    f"{p!r}"
                )
            else:
                missing = {"input", "output"} - set(p)
                if missing:
                    raise ValueError(
                        f"price for {name!r} lacks {sorted(missing)}; give $/1M tokens as "
                        "{input: ..., output: ..., cached_input: ...}"
                    )
                self._prices[name] = Price(
                    float(p["input"]),
                    float(p["output"]),
                    None if p.get("cached_input") is None else float(p["cached_input"]),
                )

    @classmethod
    def from_yaml(cls, path: str | Path) -> PriceTable:
        """Load ``{model: {input: $/1M, output: $/1M, cached_input: $/1M}}`` from YAML or JSON."""
        text = Path(path).read_text()
        if str(path).endswith(".json"):
            data = json.loads(text)
        else:
            try:
                import yaml
            except ImportError as e:  # pragma: no cover - PyYAML is normally present
                raise ImportError(
                    "PriceTable.from_yaml needs PyYAML (`uv add pyyaml`), or give a .json file"
                ) from e
            data = yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise ValueError(
                f"{path}: expected a mapping of model -> prices, got {type(data).__name__}"
            )
        return cls(data)

    def lookup(self, model: str) -> Price | None:
        if model in self._prices:
            return self._prices[model]
        for pattern, price in self._prices.items():
            if fnmatch.fnmatchcase(model, pattern):
                return price
        return None

    def cost(
        self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        p = self.lookup(model)
        if p is None:
            return None
        cached_rate = p.input if p.cached_input is None else p.cached_input
        uncached = max(prompt_tokens - cached_tokens, 0)
        return (
            uncached * p.input + cached_tokens * cached_rate + completion_tokens * p.output
        ) / 1e6

    def __contains__(self, model: str) -> bool:
        return self.lookup(model) is not None

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} models)"


class UsageMeter:
    """Thread-safe counters keyed by (stage, model)."""

    def __init__(self, prices: PriceTable | Mapping[str, Any] | None = None) -> None:
        if prices is not None and not isinstance(prices, PriceTable):
            prices = PriceTable(prices)
        self.prices: PriceTable = prices or PriceTable()
        self._rows: dict[tuple[str, str], Usage] = {}
        self._lock = threading.Lock()

    def record(
        self,
        model: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cached_tokens: int = 0,
        retries: int = 0,
        failed: bool = False,
        from_cache: bool = False,
        latency_s: float = 0.0,
        stage_name: str | None = None,
    ) -> None:
        key = (stage_name or current_stage(), model)
        with self._lock:
            u = self._rows.setdefault(key, Usage())
            u.requests += 1
            u.retries += retries
            u.wall_s += latency_s
            if failed:
                u.failures += 1
                return
            if from_cache:
                u.cache_hits += 1
                u.saved_prompt_tokens += prompt_tokens
                u.saved_completion_tokens += completion_tokens
                return
            u.prompt_tokens += prompt_tokens
            u.completion_tokens += completion_tokens
            u.cached_tokens += cached_tokens

    def _with_cost(self, model: str, u: Usage) -> Usage:
        out = Usage(**{**u.to_dict(), "cost_usd": 0.0})
        out.cost_usd = self.prices.cost(
            model, u.prompt_tokens, u.completion_tokens, u.cached_tokens
        )
        if out.cost_usd is None and u.prompt_tokens == 0 and u.completion_tokens == 0:
            out.cost_usd = 0.0  # nothing was spent, whatever the price
        return out

    def rows(self) -> dict[tuple[str, str], Usage]:
        """A snapshot ``{(stage, model): Usage}`` with costs filled in."""
        with self._lock:
            items = list(self._rows.items())
        return {k: self._with_cost(k[1], v) for k, v in items}

    def total(self, stage: str | None = None, model: str | None = None) -> Usage:
        out = Usage()
        for (s, m), u in self.rows().items():
            if (stage is None or s == stage) and (model is None or m == model):
                out = out + u
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"stage": s, "model": m, **u.to_dict()} for (s, m), u in sorted(self.rows().items())
        ]

    def summary(self) -> str:
        lines = ["stage\tmodel\trequests\thits\tretries\tfailures\tprompt\tcompletion\tcost_usd"]
        for (s, m), u in sorted(self.rows().items()):
            cost = "unknown" if u.cost_usd is None else f"{u.cost_usd:.4f}"
            lines.append(
                f"{s}\t{m}\t{u.requests}\t{u.cache_hits}\t{u.retries}\t{u.failures}\t"
                f"{u.prompt_tokens}\t{u.completion_tokens}\t{cost}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        t = self.total()
        return (
            f"UsageMeter(requests={t.requests}, cache_hits={t.cache_hits}, tokens={t.total_tokens})"
        )
