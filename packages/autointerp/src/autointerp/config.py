"""Configuration dataclasses and presets (``default``, ``delphi``, ``demo``, ``quick``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from autointerp.errors import ConfigError, check_choice, check_int
from autointerp.scorers.prompts import check_fewshot
from autointerp.sequential import SequentialRule
from autointerp.steering import InterventionConfig

__all__ = [
    "ConfigError",
    "ExampleConfig",
    "ExplainConfig",
    "PipelineConfig",
    "ScoreConfig",
    "preset",
]


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

    def __post_init__(self) -> None:
        w = "ExampleConfig"
        check_int(w, "ctx", self.ctx, 4, "windows shorter than 4 tokens leave no negative pool")
        check_int(w, "peak_offset", self.peak_offset, 0)
        if self.peak_offset >= self.ctx:
            raise ConfigError(
                f"{w}: peak_offset must be < ctx ({self.ctx}), got {self.peak_offset}; "
                "the peak token must lie inside its window"
            )
        check_choice(w, "align", self.align, ("peak", "grid"))
        check_choice(w, "sampler", self.sampler, ("quantile", "top", "random", "mix"))
        check_int(w, "n_bins", self.n_bins, 1)
        check_int(w, "train_per_bin", self.train_per_bin, 1, "the explainer needs train windows")
        check_int(w, "test_per_bin", self.test_per_bin, 1, "the scorers need test windows")
        for name in ("n_val", "n_negatives", "n_ref_negatives", "n_reservoir", "n_neighbours"):
            check_int(w, name, getattr(self, name), 0)
        for name in ("windows_per_neighbour", "embed_pool"):
            check_int(w, name, getattr(self, name), 0)
        check_int(w, "top_n", self.top_n, 1)
        mix = tuple(self.neg_mix)
        if (
            len(mix) != 3
            or any(not isinstance(x, (int, float)) or x < 0 for x in mix)
            or abs(sum(mix) - 1) > 1e-6
        ):
            raise ConfigError(
                f"{w}: neg_mix must be 3 non-negative shares (random, neighbour, embedding-hard) "
                f"summing to 1, got {self.neg_mix!r}"
            )
        check_int(w, "train_pct", self.train_pct, 1)
        check_int(w, "test_pct", self.test_pct, 1)
        if not 0 < self.train_pct < self.test_pct < 100:
            raise ConfigError(
                f"{w}: need 0 < train_pct < test_pct < 100, got train_pct={self.train_pct}, "
                f"test_pct={self.test_pct}"
            )
        check_int(w, "seed", self.seed, 0)


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

    def __post_init__(self) -> None:
        w = "ExplainConfig"
        check_int(w, "n_train", self.n_train, 1, "the explainer needs at least one example")
        check_int(w, "max_tokens", self.max_tokens, 1)
        check_int(w, "k", self.k, 1, "best-of-k needs at least one sample")
        if not isinstance(self.temperature_k, (int, float)) or self.temperature_k < 0:
            raise ConfigError(f"{w}: temperature_k must be >= 0, got {self.temperature_k!r}")
        check_choice(w, "select_by", self.select_by, ("embedding", "detection"))


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

    def __post_init__(self) -> None:
        w = "ScoreConfig"
        if isinstance(self.scorers, str) or not all(isinstance(x, str) for x in self.scorers):
            raise ConfigError(
                f"{w}: scorers must be a tuple of scorer names, got {self.scorers!r} "
                "(e.g. scorers=('detection',))"
            )
        check_int(w, "n_per_prompt", self.n_per_prompt, 1)
        check_int(w, "n_pos", self.n_pos, 1)
        check_int(w, "n_neg", self.n_neg, 1)
        check_fewshot(w, self.prompt_style, self.n_fewshot)
        check_choice(w, "fuzz_mode", self.fuzz_mode, ("default", "active"))
        check_int(w, "n_intruder_trials", self.n_intruder_trials, 1)
        check_int(w, "intruder_shown", self.intruder_shown, 3, "fewer makes the task ill-posed")
        check_int(w, "n_sim_windows", self.n_sim_windows, 1)
        check_int(w, "bootstrap_b", self.bootstrap_b, 0, "0 turns the bootstrap CI off")
        check_int(w, "top_logprobs", self.top_logprobs, 0)
        check_int(w, "max_tokens", self.max_tokens, 1)


@dataclass(frozen=True)
class PipelineConfig:
    examples: ExampleConfig = field(default_factory=ExampleConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    intervention: InterventionConfig = field(default_factory=InterventionConfig)
    concurrency: int = 16

    def __post_init__(self) -> None:
        check_int("PipelineConfig", "concurrency", self.concurrency, 1, "1 runs one call at a time")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> PipelineConfig:
        """Inverse of :meth:`to_dict`; an unknown section or field is refused by name."""
        if not isinstance(d, dict):
            raise ConfigError(f"a pipeline config must be a JSON object, got {type(d).__name__}")
        sections = {
            "examples": ExampleConfig,
            "explain": ExplainConfig,
            "score": ScoreConfig,
            "intervention": InterventionConfig,
        }
        extra = sorted(set(d) - set(sections) - {"concurrency"})
        if extra:
            raise ConfigError(
                f"unknown config section(s) {extra}; valid: {', '.join(sections)}, concurrency"
            )
        for name, cls in sections.items():
            sec = d.get(name, {})
            if not isinstance(sec, dict):
                raise ConfigError(
                    f"config section {name!r} must be an object of fields, got {type(sec).__name__}"
                )
            fields = {f.name for f in dataclasses.fields(cls)}
            bad = sorted(set(sec) - fields)
            if bad:
                raise ConfigError(
                    f"unknown field(s) {bad} in config section {name!r}; valid: {', '.join(sorted(fields))}"
                )
        sc = dict(d.get("score", {}))
        if "rule" in sc and isinstance(sc["rule"], dict):
            fields = {f.name for f in dataclasses.fields(SequentialRule)}
            bad = sorted(set(sc["rule"]) - fields)
            if bad:
                raise ConfigError(
                    f"unknown field(s) {bad} in score.rule; valid: {', '.join(sorted(fields))}"
                )
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
