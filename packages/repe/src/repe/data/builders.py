"""Stimulus builders from the RepE paper, CAA, and the sentiment stimuli used for SmolLM2.

Every builder assigns ``group`` so that splits go by source item (statement, question,
item) *before* any expansion -- RepE's own honesty split shares statements between train
and test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import PairDataError
from .pairs import ContrastPair, Stimulus

HONESTY_TEMPLATE = "Pretend you're {persona} person making statements about the world."
CONCEPT_TEMPLATE = (
    "Consider the amount of {concept} in the following answer.\n\nQuestion: {question}\n"
    "Answer: {answer}\n\nThe amount of {concept} in the answer is "
)
EMOTION_TEMPLATE = "Act as if you are extremely {adj}."


def honesty_pairs(
    true_statements: Sequence[str],
    tokenizer: object,
    *,
    personas: tuple[str, str] = ("an honest", "an untruthful"),
    min_prefix: int = 1,
    tail: int = 5,
    max_pairs: int | None = 512,
) -> list[ContrastPair]:
    """RepE honesty function stimuli: both personas continue the same true statement, truncated
    to token prefixes ``tokens[:i]`` for ``min_prefix <= i < n - tail``. Both sides of a pair
    share the same prefix (RepE's test pairs are misaligned by one; these are not)."""
    if not true_statements:
        raise PairDataError("empty statement list: pass at least 2 true statements")
    out: list[ContrastPair] = []
    for si, st in enumerate(true_statements):
        toks = tokenizer.tokenize(st)  # type: ignore[attr-defined]
        for i in range(min_prefix, len(toks) - tail):
            prefix = tokenizer.convert_tokens_to_string(toks[:i])  # type: ignore[attr-defined]
            pos = Stimulus(user=HONESTY_TEMPLATE.format(persona=personas[0]), prefix=prefix)
            neg = Stimulus(user=HONESTY_TEMPLATE.format(persona=personas[1]), prefix=prefix)
            out.append(ContrastPair(pos, neg, group=f"statement{si}", meta={"prefix_len": i}))
    if max_pairs is not None:
        out = out[:max_pairs]
    if not out:
        raise PairDataError(
            f"statements are too short for prefixes (need more than {tail + min_prefix} tokens)"
        )
    return out


def concept_pairs(
    items: Sequence[tuple[str, str, str]], concept: str = "truthfulness"
) -> list[ContrastPair]:
    """RepE concept template: ``items`` are (question, positive answer, negative answer)."""
    out = []
    for qi, (q, a_pos, a_neg) in enumerate(items):
        pos = CONCEPT_TEMPLATE.format(concept=concept, question=q, answer=a_pos)
        neg = CONCEPT_TEMPLATE.format(concept=concept, question=q, answer=a_neg)
        out.append(ContrastPair(Stimulus(pos), Stimulus(neg), group=f"q{qi}"))
    return out


def emotion_pairs(scenarios: Sequence[str], emotion: str, opposite: str) -> list[ContrastPair]:
    """RepE emotion stimuli: the same scenario under "Act as if you are extremely {adj}."."""
    out = []
    for si, sc in enumerate(scenarios):
        pos = Stimulus(user=f"{EMOTION_TEMPLATE.format(adj=emotion)} {sc}")
        neg = Stimulus(user=f"{EMOTION_TEMPLATE.format(adj=opposite)} {sc}")
        out.append(ContrastPair(pos, neg, group=f"scenario{si}"))
    return out


def ab_pairs(questions: Sequence[tuple[str, str, str]], *, seed: int = 0) -> list[ContrastPair]:
    """CAA A/B stimuli: (question, matching answer, non-matching answer). The answer letters are
    shuffled per question; the positive reply is ``"(X"`` for the matching letter."""
    rng = np.random.default_rng(seed)
    out = []
    for qi, (q, match, other) in enumerate(questions):
        swap = bool(rng.integers(2))
        a, b = (other, match) if swap else (match, other)
        user = f"{q}\n\n(A) {a}\n(B) {b}"
        m, o = ("B", "A") if swap else ("A", "B")
        out.append(
            ContrastPair(
                Stimulus(user=user, prefix=f"({m}"),
                Stimulus(user=user, prefix=f"({o}"),
                group=f"q{qi}",
                meta={"match": m},
            )
        )
    return out


#: The sentiment stimuli used in the SmolLM2 demo (train and held-out sets are disjoint).
SENTIMENT_TRAIN_ITEMS = ["movie", "meal", "hotel", "concert", "book", "trip", "game", "party"]
SENTIMENT_TRAIN_ADJ = [
    ("wonderful", "terrible"),
    ("delightful", "awful"),
    ("excellent", "dreadful"),
    ("amazing", "horrible"),
    ("fantastic", "miserable"),
    ("lovely", "disappointing"),
]
SENTIMENT_TEST_ITEMS = ["play", "museum", "restaurant", "wedding", "album", "lecture"]
SENTIMENT_TEST_ADJ = [
    ("superb", "abysmal"),
    ("charming", "dismal"),
    ("brilliant", "atrocious"),
    ("joyful", "depressing"),
]


def sentiment_pairs(
    items: Sequence[str], adjectives: Sequence[tuple[str, str]]
) -> list[ContrastPair]:
    """Chat turn ``"Describe the {item} in one sentence."`` answered with
    ``"The {item} was {adj}. Overall, my feeling about it is"``."""
    out = []
    for item in items:
        for good, bad in adjectives:
            user = f"Describe the {item} in one sentence."
            tpl = "The {item} was {adj}. Overall, my feeling about it is"
            out.append(
                ContrastPair(
                    Stimulus(user=user, prefix=tpl.format(item=item, adj=good)),
                    Stimulus(user=user, prefix=tpl.format(item=item, adj=bad)),
                    group=item,
                    meta={"adjectives": [good, bad]},
                )
            )
    return out
