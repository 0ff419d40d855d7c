"""Contrast pairs and unpaired stimuli, with a stable content hash."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import PairDataError
from .jsonl import read_json_objects


@dataclass(frozen=True)
class Stimulus:
    """One chat turn: the user message and the start of the assistant's reply.

    ``user=None`` means raw text: ``prefix`` is used verbatim with no chat template.
    """

    user: str | None
    prefix: str = ""
    system: str | None = None

    @classmethod
    def raw(cls, text: str) -> Stimulus:
        return cls(user=None, prefix=text)


def _as_stimulus(x: str | Stimulus) -> Stimulus:
    if isinstance(x, Stimulus):
        return x
    if not isinstance(x, str):
        raise PairDataError(
            f"a contrast-pair side must be a string or a repe.Stimulus, got {type(x).__name__} "
            f"{x!r:.60}"
        )
    return Stimulus.raw(x)


@dataclass(frozen=True)
class ContrastPair:
    """A positive and a negative stimulus. ``group`` keys splits (e.g. the source statement)."""

    positive: Stimulus
    negative: Stimulus
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __init__(
        self,
        positive: str | Stimulus,
        negative: str | Stimulus,
        group: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        object.__setattr__(self, "positive", _as_stimulus(positive))
        object.__setattr__(self, "negative", _as_stimulus(negative))
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "meta", dict(meta or {}))


def pairs_from_lists(
    positives: Sequence[str | Stimulus],
    negatives: Sequence[str | Stimulus],
    groups: Sequence[str] | None = None,
) -> list[ContrastPair]:
    """Zip two equal-length lists into pairs (clear errors on empty or unequal lists)."""
    if len(positives) != len(negatives):
        raise PairDataError(
            f"unequal pair counts: {len(positives)} positives vs {len(negatives)} negatives; "
            "pass one negative per positive (or use unpaired data with method='cluster_mean')"
        )
    if len(positives) == 0:
        raise PairDataError("empty pair lists: pass at least 2 contrast pairs")
    if groups is not None and len(groups) != len(positives):
        raise PairDataError(f"{len(groups)} groups for {len(positives)} pairs; pass one per pair")
    return [
        ContrastPair(p, n, None if groups is None else groups[i])
        for i, (p, n) in enumerate(zip(positives, negatives, strict=True))
    ]


def validate_pairs(pairs: Sequence[ContrastPair], *, min_pairs: int = 2) -> list[ContrastPair]:
    pairs = list(pairs)
    if len(pairs) == 0:
        raise PairDataError("empty pair list: pass at least 2 contrast pairs")
    if len(pairs) < min_pairs:
        raise PairDataError(f"only {len(pairs)} pair(s); need at least {min_pairs}")
    for p in pairs:
        if not isinstance(p, ContrastPair):
            raise PairDataError(
                f"expected ContrastPair items, got {type(p).__name__}; build pairs with "
                "repe.ContrastPair(positive, negative) or repe.pairs_from_lists"
            )
    same = sum(p.positive == p.negative for p in pairs)
    if same:
        warnings.warn(
            f"{same} of {len(pairs)} pairs have identical positive and negative texts; "
            "they carry no contrast",
            UserWarning,
            stacklevel=2,
        )
    return pairs


def pairs_sha256(
    pairs: Iterable[ContrastPair], template: object = None, tokenizer: object = None
) -> str:
    """sha256 over canonical JSON of the pairs, the template and the tokenizer identity."""
    tok_id = None
    if tokenizer is not None:
        tok_id = {
            "name": getattr(tokenizer, "name_or_path", None),
            "vocab": len(tokenizer) if hasattr(tokenizer, "__len__") else None,
            "chat_template": getattr(tokenizer, "chat_template", None),
        }
    payload = {
        "pairs": [
            {
                "positive": asdict(p.positive),
                "negative": asdict(p.negative),
                "group": p.group,
            }
            for p in pairs
        ],
        "template": asdict(template) if hasattr(template, "__dataclass_fields__") else template,
        "tokenizer": tok_id,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def save_pairs_jsonl(pairs: Sequence[ContrastPair], path: str) -> None:
    import os

    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(
                json.dumps(
                    {
                        "positive": asdict(p.positive),
                        "negative": asdict(p.negative),
                        "group": p.group,
                        "meta": p.meta,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    os.replace(tmp, path)


def load_pairs_jsonl(path: str) -> list[ContrastPair]:
    """Read pairs from JSONL. Each line: ``{"positive": str|{user,prefix,system}, "negative": ...,
    "group": optional, "meta": optional}``."""

    def stim(x: Any, line: int) -> Stimulus:
        if isinstance(x, str):
            return Stimulus.raw(x)
        if isinstance(x, dict) and "prefix" in x or isinstance(x, dict) and "user" in x:
            st = Stimulus(user=x.get("user"), prefix=x.get("prefix", ""), system=x.get("system"))
            if not isinstance(st.prefix, str) or any(
                v is not None and not isinstance(v, str) for v in (st.user, st.system)
            ):
                raise PairDataError(f"{path}:{line}: user, prefix and system must be strings")
            return st
        raise PairDataError(f"{path}:{line}: positive/negative must be a string or an object")

    out = []
    hint = ' with "positive" and "negative"'
    for i, d in read_json_objects(path, "pairs", PairDataError, hint=hint):
        for key in ("positive", "negative"):
            if key not in d:
                raise PairDataError(f"{path}:{i}: missing key {key!r}")
        out.append(
            ContrastPair(
                stim(d["positive"], i), stim(d["negative"], i), d.get("group"), d.get("meta")
            )
        )
    return out
