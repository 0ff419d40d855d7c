"""Configuration dataclasses and presets (``default``, ``delphi``, ``demo``, ``quick``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from autointerp.sequential import SequentialRule
from autointerp.steering import InterventionConfig


@dataclass(frozen=True)
class ExampleConfig:
    ctx: int = 32
    peak_offset: int = 24
    align: Literal["peak", "grid"] = "peak"
    sampler: Literal["quantile", "top", "random", "mix"] = "quantile"
    n_bins: int = 10
    train_per_bin: int = 4
    test_per_bin: int = 10
    n_val: int = 10  # held-out train windows (best-of-k selection only)
    n_negatives: int = 100
    neg_mix: tuple[float, float, float] = (0.5, 0.25, 0.25)  # random, neighbour, embedding-hard
    n_ref_negatives: int = 50
    top_n: int = 2000  # candidate peaks taken from the top of the latent
    n_reservoir: int = 2000  # plus a uniform sample of the rest (quantile coverage)
    n_neighbours: int = 250
    windows_per_neighbour: int = 10
    embed_pool: int = 20000
    train_pct: int = 50
    test_pct: int = (
        80  # docs with hash in [train_pct, test_pct) are test; the rest the negative pool
    )
    seed: int = 0


@dataclass(frozen=True)
class ExplainConfig:
    explainer: str = "default"
    n_train: int = 40
    max_tokens: int = 200
    cot: bool = False
    k: int = 5  # best-of-k samples
    temperature_k: float = 0.7
    inner: str = "default"  # explainer sampled by best-of-k
    select_by: Literal["embedding", "detection"] = "embedding"


@dataclass(frozen=True)
class ScoreConfig:
    scorers: tuple[str, ...] = ("detection", "fuzzing", "embedding")
    n_per_prompt: int = 5
    n_pos: int = 100
    n_neg: int = 100
    n_fewshot: int = 1
    sequential: bool = True
    rule: SequentialRule = field(default_factory=SequentialRule)
    fuzz_mode: Literal["default", "active"] = "default"
    n_intruder_trials: int = 20
    intruder_shown: int = 4
    n_sim_windows: int = 10
    bootstrap_b: int = 1000
    require_logprobs: bool = False
    logprobs: bool = True
    top_logprobs: int = 5
    max_tokens: int = 64
    prompt_style: Literal["spec", "delphi"] = "spec"
    seed: int = 0


@dataclass(frozen=True)
class PipelineConfig:
    examples: ExampleConfig = field(default_factory=ExampleConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    intervention: InterventionConfig = field(default_factory=InterventionConfig)
    concurrency: int = 16

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> PipelineConfig:
        sc = dict(d.get("score", {}))
        if "rule" in sc and isinstance(sc["rule"], dict):
            sc["rule"] = SequentialRule(**sc["rule"])
        if "scorers" in sc:
            sc["scorers"] = tuple(sc["scorers"])
        ex = dict(d.get("examples", {}))
        if "neg_mix" in ex:
            ex["neg_mix"] = tuple(ex["neg_mix"])
        iv = dict(d.get("intervention", {}))
        if "baselines" in iv:
            iv["baselines"] = tuple(iv["baselines"])
        return PipelineConfig(
            examples=ExampleConfig(**ex),
            explain=ExplainConfig(**d.get("explain", {})),
            score=ScoreConfig(**sc),
            intervention=InterventionConfig(**iv),
            concurrency=d.get("concurrency", 16),
        )


def preset(name: str) -> PipelineConfig:
    """``default`` (this spec), ``delphi`` (5/prompt x 20 prompts, 3 few-shots, no early stop),
    ``demo`` (2-core CPU sizing) and ``quick`` (a few minutes on 2 cores)."""
    if name == "default":
        return PipelineConfig()
    if name == "delphi":
        return PipelineConfig(
            score=ScoreConfig(
                n_pos=50,
                n_neg=50,
                n_per_prompt=5,
                n_fewshot=3,
                sequential=False,
                prompt_style="delphi",
            )
        )
    if name in ("demo", "quick"):
        quick = name == "quick"
        return PipelineConfig(
            examples=ExampleConfig(
                train_per_bin=1 if quick else 2,
                test_per_bin=1 if quick else 2,
                n_val=4,
                n_negatives=10 if quick else 20,
                n_ref_negatives=10 if quick else 20,
                top_n=500,
                n_reservoir=500,
                embed_pool=500 if quick else 2000,
            ),
            explain=ExplainConfig(n_train=10 if quick else 20, max_tokens=40),
            score=ScoreConfig(
                scorers=("detection", "fuzzing", "embedding", "example_embedding"),
                n_pos=10 if quick else 20,
                n_neg=10 if quick else 20,
                n_per_prompt=5,
                sequential=False,
                bootstrap_b=300,
                max_tokens=24,
            ),
            concurrency=8,
        )
    raise ValueError(f"unknown preset {name!r}; valid presets: default, delphi, demo, quick")
