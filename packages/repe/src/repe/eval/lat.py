"""k-shot LAT tasks (RepE's ``repe_eval``): multiple-choice questions scored by a reading vector.

Each (question, choice) becomes the concept-template prompt, preceded by ``k`` primer shots
(``Question: ...\\nAnswer: <correct>``) taken from the training items (and then left out of
training). A direction is fitted per layer on (correct, random wrong choice) pairs of the
training items; a test item is right when its correct choice has the top score (group accuracy).
The result is the mean over seeds (each seed redraws the wrong choices and the finder's seed).
RepE's primer sizes: obqa 5, csqa 7, ARC 25, race 3, TruthfulQA 6 (:data:`PRIMER_SHOTS`).
Items are dicts with ``question``, ``choices`` (list of str) and ``label`` (index of the
correct choice); the datasets themselves are not bundled (load them from the hub or files).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..data.builders import CONCEPT_TEMPLATE
from ..data.pairs import Stimulus
from ..data.templates import ChatFormat
from ..errors import PairDataError
from ..reader import RepReader
from ..sites import normalise_layers, num_layers

PRIMER_SHOTS = {"obqa": 5, "csqa": 7, "arc": 25, "race": 3, "tqa": 6}


def _check_items(items: Sequence[Mapping[str, Any]], what: str) -> None:
    if not items:
        raise PairDataError(f"empty {what} item list; give question/choices/label dicts")
    for i, it in enumerate(items):
        missing = [k for k in ("question", "choices", "label") if k not in it]
        if missing:
            raise PairDataError(
                f"{what} item {i} lacks {missing}; items need question/choices/label"
            )
        if len(it["choices"]) < 2 or not 0 <= int(it["label"]) < len(it["choices"]):
            raise PairDataError(
                f"{what} item {i}: needs >= 2 choices and a label in 0..{len(it['choices']) - 1}, "
                f"got {len(it['choices'])} choices and label {it['label']}"
            )


def lat_prompt(
    question: str, answer: str, shots: Iterable[tuple[str, str]] = (), concept: str = "truthfulness"
) -> str:
    """The RepE concept-template prompt with ``Question:/Answer:`` primer shots before it."""
    primer = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots)
    return primer + CONCEPT_TEMPLATE.format(concept=concept, question=question, answer=answer)


def lat_mc_eval(
    model: Any,
    tokenizer: Any,
    train: Sequence[Mapping[str, Any]],
    test: Sequence[Mapping[str, Any]],
    *,
    layers: Any = "all",
    k_shot: int = 0,
    method: str = "pca_repe",
    seeds: Iterable[int] = range(10),
    concept: str = "truthfulness",
    site: str = "resid_post",
    read: Any = "last",
    fmt: ChatFormat | None = None,
    raw: bool = True,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Group accuracy per layer (mean over seeds) of a LAT reading vector on ``test``."""
    from ..activations import render_all, stimulus_activations

    _check_items(train, "train")
    _check_items(test, "test")
    if not 0 <= k_shot < len(train):
        raise PairDataError(
            f"k_shot={k_shot} primer shots need more than {k_shot} train items, got {len(train)}"
        )
    ls = normalise_layers(layers, num_layers(model))
    shots = [(it["question"], it["choices"][int(it["label"])]) for it in train[:k_shot]]
    train = list(train[k_shot:])
    if len(train) < 2:
        raise PairDataError(f"need >= 2 training items after the {k_shot} shots, got {len(train)}")

    def stim(q: str, a: str) -> Stimulus:
        text = lat_prompt(q, a, shots, concept)
        return Stimulus.raw(text) if raw else Stimulus(user=text)

    def acts(items: Sequence[Mapping[str, Any]]) -> tuple[dict[int, np.ndarray], list[int]]:
        stims, offsets = [], [0]
        for it in items:
            stims += [stim(it["question"], c) for c in it["choices"]]
            offsets.append(len(stims))
        a = stimulus_activations(
            model,
            tokenizer,
            render_all(stims, tokenizer, fmt),
            ls,
            site=site,
            read=read,
            batch_size=batch_size,
        )
        return a, offsets  # type: ignore[return-value]

    tr, tr_off = acts(train)
    te, te_off = acts(test)
    seeds = list(seeds)
    per_seed: dict[int, list[float]] = {layer: [] for layer in ls}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pi, ni = [], []
        for i, it in enumerate(train):
            lab = int(it["label"])
            wrong = [j for j in range(len(it["choices"])) if j != lab]
            pi.append(tr_off[i] + lab)
            ni.append(tr_off[i] + int(rng.choice(wrong)))
        reader = RepReader(method, seed=seed).fit(
            {layer: tr[layer][pi] for layer in ls}, {layer: tr[layer][ni] for layer in ls}
        )
        scores = reader.score(te)
        for layer in ls:
            s = scores[layer]
            hits = [
                int(np.argmax(s[te_off[i] : te_off[i + 1]])) == int(it["label"])
                for i, it in enumerate(test)
            ]
            per_seed[layer].append(float(np.mean(hits)))
    acc = {layer: float(np.mean(v)) for layer, v in per_seed.items()}
    best = max(acc, key=lambda k: acc[k])
    return {
        "accuracy": acc,
        "accuracy_per_seed": per_seed,
        "best_layer": best,
        "best_accuracy": acc[best],
        "chance": float(np.mean([1.0 / len(it["choices"]) for it in test])),
        "k_shot": k_shot,
        "method": method,
        "n_train": len(train),
        "n_test": len(test),
        "seeds": seeds,
    }
