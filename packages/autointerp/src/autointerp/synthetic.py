"""Planted ground truth: a templated corpus whose latents have known correct explanations.

Every planted latent carries a *true*, a *wrong* and a *random* explanation. Token-class latents
fire exactly on the words of one class (with graded magnitudes so quantiles are populated); a
polysemantic latent fires on two classes; a position latent on the first word of a sentence; a
dead latent never fires; a dense latent fires on every token; a noise latent on 3% of tokens at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from autointerp.rng import make_rng
from autointerp.source import InMemorySource

WORDLISTS: dict[str, list[str]] = {
    "animals": [
        "cat",
        "dog",
        "horse",
        "rabbit",
        "tiger",
        "sheep",
        "mouse",
        "eagle",
        "whale",
        "fox",
    ],
    "colors": [
        "red",
        "blue",
        "green",
        "yellow",
        "purple",
        "orange",
        "black",
        "white",
        "grey",
        "pink",
    ],
    "fruits": [
        "apple",
        "banana",
        "cherry",
        "mango",
        "pear",
        "grape",
        "lemon",
        "peach",
        "plum",
        "melon",
    ],
    "cities": [
        "Paris",
        "London",
        "Tokyo",
        "Berlin",
        "Madrid",
        "Rome",
        "Cairo",
        "Lima",
        "Oslo",
        "Delhi",
    ],
    "tools": [
        "hammer",
        "wrench",
        "saw",
        "drill",
        "shovel",
        "chisel",
        "ladder",
        "rake",
        "axe",
        "pliers",
    ],
    "weather": [
        "rain",
        "snow",
        "fog",
        "wind",
        "storm",
        "hail",
        "sunshine",
        "thunder",
        "frost",
        "drizzle",
    ],
}
CLASS_KEYWORDS: dict[str, tuple[str, ...]] = {
    "animals": ("animal",),
    "colors": ("color", "colour"),
    "fruits": ("fruit",),
    "cities": ("city", "cities"),
    "tools": ("tool",),
    "weather": ("weather",),
}
FILLER = [
    "the",
    "a",
    "saw",
    "near",
    "with",
    "and",
    "then",
    "quietly",
    "found",
    "under",
    "beside",
    "was",
    "in",
]
TEMPLATES = [
    "the {animals} was near the old house .",
    "she found a {colors} box under the table .",
    "then they ate a {fruits} and waited .",
    "we drove to {cities} in the morning .",
    "he put the {tools} beside the door .",
    "there was {weather} all day long .",
    "the {animals} saw a {colors} ball .",
    "they walked home and then slept quietly .",
    "a letter was under the door again .",
    "nobody said anything for a while .",
]
RANDOM_EXPLANATIONS = [
    "legal terminology about contracts",
    "Python keywords and indentation",
    "medieval naval battles",
    "units of electrical resistance",
]


@dataclass(frozen=True)
class PlantedLatent:
    index: int
    kind: str  # token_class | polysemantic | position | dead | dense | noise
    classes: tuple[str, ...]
    true: str
    wrong: str
    random: str


@dataclass
class PlantedCorpus:
    source: InMemorySource
    latents: list[PlantedLatent]
    vocab: list[str]

    def latent(self, i: int) -> PlantedLatent:
        return self.latents[i]


def class_explanation(classes: tuple[str, ...]) -> str:
    names = {
        "animals": "names of animals",
        "colors": "color words",
        "fruits": "names of fruits",
        "cities": "names of cities",
        "tools": "names of tools",
        "weather": "weather words",
    }
    return " and ".join(names[c] for c in classes)


def make_planted_corpus(
    n_docs: int = 1000, sentences_per_doc: int = 5, seed: int = 0
) -> PlantedCorpus:
    """A word-level corpus (each token is one word with a leading space) and its planted latents."""
    rng = make_rng(seed, "synthetic", -1, "corpus")
    vocab = ["<bos>"] + sorted({w for ws in WORDLISTS.values() for w in ws} | set(FILLER))
    # template words
    for t in TEMPLATES:
        for w in t.split():
            if not w.startswith("{") and w not in vocab:
                vocab.append(w)
    wid = {w: i for i, w in enumerate(vocab)}
    class_of = {w: c for c, ws in WORDLISTS.items() for w in ws}
    ids: list[int] = []
    docs: list[int] = []
    valid: list[bool] = []
    first_word: list[bool] = []
    for d in range(n_docs):
        ids.append(wid["<bos>"])
        docs.append(d)
        valid.append(False)
        first_word.append(False)
        for _ in range(sentences_per_doc):
            t = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
            for k, slot in enumerate(t.split()):
                w = WORDLISTS[slot[1:-1]][int(rng.integers(10))] if slot.startswith("{") else slot
                ids.append(wid[w])
                docs.append(d)
                valid.append(True)
                first_word.append(k == 0)
    ids_a = np.array(ids, np.int64)
    words = [vocab[i] for i in ids_a]
    n = len(ids_a)
    classes = list(WORDLISTS)
    planted: list[PlantedLatent] = []
    cols: list[np.ndarray] = []
    mag = 1.0 + 4.0 * make_rng(seed, "synthetic", -1, "magnitudes").random(
        n
    )  # graded, quantiles populated
    valid_a = np.array(valid)

    def add(kind, cls, true, wrong, active):
        planted.append(
            PlantedLatent(
                len(planted),
                kind,
                cls,
                true,
                wrong,
                RANDOM_EXPLANATIONS[len(planted) % len(RANDOM_EXPLANATIONS)],
            )
        )
        cols.append(np.where(active & valid_a, mag, 0.0))

    for j, c in enumerate(classes):
        # two classes on: animals and colors share a template ("the {animals} saw a {colors} ball"),
        # so a neighbouring class would be a partly right explanation, not a wrong one
        wrong = classes[(j + 2) % len(classes)]
        active = np.array([class_of.get(w) == c for w in words])
        add("token_class", (c,), class_explanation((c,)), class_explanation((wrong,)), active)
    poly = ("animals", "weather")
    add(
        "polysemantic",
        poly,
        class_explanation(poly),
        class_explanation(("fruits",)),
        np.array([class_of.get(w) in poly for w in words]),
    )
    add(
        "position",
        (),
        "the first word of a sentence",
        class_explanation(("tools",)),
        np.array(first_word),
    )
    add("dead", (), "never active", class_explanation(("colors",)), np.zeros(n, bool))
    add("dense", (), "every token", class_explanation(("cities",)), np.ones(n, bool))
    noise = make_rng(seed, "synthetic", -1, "noise").random(n) < 0.03
    add("noise", (), "no pattern (random tokens)", class_explanation(("animals",)), noise)
    acts = sp.csc_matrix(np.stack(cols, axis=1).astype(np.float32))
    dec = lambda toks: [" " + vocab[int(t)] for t in toks]  # noqa: E731
    src = InMemorySource(ids_a, np.array(docs), acts, dec, valid=valid_a)
    return PlantedCorpus(src, planted, vocab)


def lexicon(explanation: str) -> set[str]:
    """Words an explanation names: every word of a class whose keyword it mentions, plus quoted words.
    This is the deterministic 'reader' of the oracle backend."""
    import re

    z = explanation.lower()
    out: set[str] = set()
    for c, kws in CLASS_KEYWORDS.items():
        if any(k in z for k in kws):
            out |= {w.lower() for w in WORDLISTS[c]}
    out |= {q.strip().lower() for q in re.findall(r'"([^"]+)"', explanation)}
    return out


def classify_words(words: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    lower = {w.lower(): c for c, ws in WORDLISTS.items() for w in ws}
    for w in words:
        c = lower.get(w.strip().lower())
        if c:
            counts[c] = counts.get(c, 0) + 1
    return counts
