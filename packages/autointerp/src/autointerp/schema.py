"""Versioned data model: windows, per-latent examples, explanations and score records.

Everything a run writes is one of these pydantic models serialised to JSON / JSONL / Parquet.
``SCHEMA_VERSION`` is stored in every record; a newer version on disk is refused with a clear error.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, field_validator

SCHEMA_VERSION = 1

WindowKind = Literal["train", "test", "neg_random", "neg_neighbour", "neg_embed", "neg_ref", "val"]
NEGATIVE_KINDS = ("neg_random", "neg_neighbour", "neg_embed")


class SchemaVersionError(ValueError):
    """A record on disk was written by a newer schema than this code understands."""


class Window(BaseModel):
    """A contiguous span of one document with the latent's activation on every token."""

    doc_id: int
    start: int  # global token index of the first token
    tokens: list[str]
    token_ids: list[int]
    acts: list[float]
    kind: WindowKind = "train"
    quantile: int | None = None  # 0..9 equal-mass bin of the window maximum (positives)

    @property
    def max_act(self) -> float:
        return max(self.acts) if self.acts else 0.0

    @property
    def is_positive(self) -> bool:
        return self.max_act > 0

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    def key(self) -> tuple[int, int]:
        return (self.doc_id, self.start)


class LatentExamples(BaseModel):
    schema_version: int = SCHEMA_VERSION
    latent: int
    a_max: float  # cache-wide maximum activation of this latent
    n_firing: int  # number of firing tokens in the cache
    density: float  # fraction of recorded tokens where it fires
    train: list[Window] = Field(default_factory=list)
    test: list[Window] = Field(default_factory=list)
    negatives: list[Window] = Field(default_factory=list)
    ref_negatives: list[Window] = Field(default_factory=list)  # example-embedding reference set
    val: list[Window] = Field(default_factory=list)  # held-out train windows for best-of-k
    flags: list[str] = Field(default_factory=list)

    @field_validator("schema_version")
    @classmethod
    def _check_version(cls, v: int) -> int:
        return check_schema_version(v)


class Explanation(BaseModel):
    schema_version: int = SCHEMA_VERSION
    latent: int
    explainer: str
    text: str
    failed: bool = False
    error: str | None = None
    flags: list[str] = Field(default_factory=list)
    prompt_hash: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    candidates: list[str] = Field(default_factory=list)  # best-of-k samples


class Prediction(BaseModel):
    """One scored item (an example, a token slot, a trial)."""

    item: int
    label: float  # 1/0 for classification, true activation for simulation
    kind: str  # window kind (test / neg_random / ...), or "trial"
    pred: float | None = None  # hard prediction; None = failed
    prob: float | None = None  # P(1) from logprobs, or a continuous score
    failed: bool = False
    error: str | None = None


def _nan_to_none(x: float | None) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(x)


class ScoreResult(BaseModel):
    """One record per latent x scorer x explanation (the ``scores`` table row)."""

    schema_version: int = SCHEMA_VERSION
    latent: int
    scorer: str
    explainer: str
    metric: str  # name of ``value`` (balanced_accuracy, auroc, pearson_r, accuracy)
    value: float | None  # None when not computable (all failed, constant predictions); see flags
    ci_lo: float | None = None
    ci_hi: float | None = None
    n_pos: int = 0
    n_neg: int = 0
    n_failed: int = 0
    coverage: float = 1.0
    stopped_at: int | None = None
    flags: list[str] = Field(default_factory=list)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    n_requests: int = 0
    failed: bool = False  # the whole stage failed for this latent (error recorded)
    error: str | None = None
    predictions: list[Prediction] = Field(default_factory=list)

    @field_validator("value", "ci_lo", "ci_hi", mode="before")
    @classmethod
    def _nan_none(cls, v: float | None) -> float | None:
        return _nan_to_none(v)

    @field_validator("schema_version")
    @classmethod
    def _check_version(cls, v: int) -> int:
        return check_schema_version(v)


def check_schema_version(v: int) -> int:
    if v > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"record has schema_version {v} but this autointerp understands <= {SCHEMA_VERSION}; "
            "upgrade ivory-autointerp or rerun the stage into a fresh run directory"
        )
    return v
