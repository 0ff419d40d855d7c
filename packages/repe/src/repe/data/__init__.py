"""Contrast data: pairs, chat rendering, RepE/CAA builders and group splits."""

from .builders import (
    ab_pairs,
    concept_pairs,
    emotion_pairs,
    honesty_pairs,
    sentiment_pairs,
)
from .pairs import (
    ContrastPair,
    Stimulus,
    load_pairs_jsonl,
    pairs_from_lists,
    pairs_sha256,
    save_pairs_jsonl,
    validate_pairs,
)
from .splits import split_by_group
from .templates import ChatFormat, Rendered, render, render_prompt

__all__ = [
    "ChatFormat",
    "ContrastPair",
    "Rendered",
    "Stimulus",
    "ab_pairs",
    "concept_pairs",
    "emotion_pairs",
    "honesty_pairs",
    "load_pairs_jsonl",
    "pairs_from_lists",
    "pairs_sha256",
    "render",
    "render_prompt",
    "save_pairs_jsonl",
    "sentiment_pairs",
    "split_by_group",
    "validate_pairs",
]
