"""Scorer prompts (our own wording). ``spec`` style: short instruction + 1 few-shot. ``delphi`` style:
a longer instruction and 3 few-shots of 5 examples each, mirroring the *structure and size* of
delphi's defaults (cacheable prefix ~0.6k tokens, Table 1 of arXiv 2410.13928) for the token
benchmark; the wording is ours."""

from __future__ import annotations

from lm_kit.llm import Message

DETECTION_SYSTEM = (
    "You check whether a feature explanation applies to text examples. For each numbered example, "
    "answer 1 if the feature described by the explanation is present in the example, otherwise 0. "
    "Reply only with a JSON list of {n} integers (0 or 1), one per example, in order."
)
FUZZING_SYSTEM = (
    "You check whether highlighted tokens match a feature explanation. In each numbered example some "
    "tokens are wrapped in << >>. Answer 1 if the highlighted tokens are the ones the explanation "
    "describes, otherwise 0. Reply only with a JSON list of {n} integers (0 or 1), one per example, in order."
)

_FS_DET = (
    "Feature explanation: words for weather conditions\n\n"
    "Example 1: it was raining hard all night\nExample 2: the cat slept on the sofa\n"
    "Example 3: we ate bread\nExample 4: a cold fog rolled in\nExample 5: he paid the bill",
    "[1, 0, 0, 1, 0]",
)
_FS_FUZZ = (
    "Feature explanation: words for weather conditions\n\n"
    "Example 1: it was <<raining>> hard all night\nExample 2: the <<cat>> slept on the sofa\n"
    "Example 3: we <<ate>> bread\nExample 4: a cold <<fog>> rolled in\nExample 5: he paid the <<bill>>",
    "[1, 0, 0, 1, 0]",
)

DELPHI_DETECTION_SYSTEM = (
    "You are an intelligent and meticulous linguistics researcher. You will be given a certain "
    'feature of text, such as "plural nouns" or "sentences about cooking", together with a '
    "series of text examples. Your job is to go through every example carefully and decide, for "
    "each one, whether the feature is present in that example. Some examples contain the feature "
    "in a single token, others in a phrase, and others not at all. Consider the meaning of the "
    "explanation, not only literal matches, and be careful with examples that look related but do "
    "not actually contain the feature. Do not explain your reasoning. For each example in turn, "
    "return 1 if the feature is present and 0 if it is not. Your final answer must be a valid "
    "Python list of {n} integers, one for each example, in the order the examples were given, and "
    "nothing else."
)
DELPHI_FUZZING_SYSTEM = (
    "You are an intelligent and meticulous linguistics researcher. You will be given a certain "
    'feature of text, such as "plural nouns" or "sentences about cooking", together with a '
    "series of text examples in which some tokens have been highlighted between the delimiters << "
    "and >>. Your job is to decide, for each example, whether the highlighted tokens are the ones "
    "that the feature describes. In some examples the highlighting is correct; in others the "
    "highlighted tokens were chosen at random and have nothing to do with the feature. Consider "
    "the meaning of the explanation and the context around each highlighted token. Do not explain "
    "your reasoning. For each example in turn, return 1 if the highlighting is correct and 0 if it "
    "is not. Your final answer must be a valid Python list of {n} integers, one for each example, "
    "in the order the examples were given, and nothing else."
)
_DELPHI_FS_DET = [
    (
        "Feature explanation: names of musical instruments, especially string instruments.\n\n"
        "Example 1: She practised the violin every evening before dinner.\n"
        "Example 2: The orchestra hired a new conductor and two stagehands.\n"
        "Example 3: I asked him about his favourite movie and he said he had not seen it.\n"
        "Example 4: He tuned the old cello and played a slow piece.\n"
        "Example 5: She walked to the end of the road and turned left toward the market.",
        "[1,0,0,1,0]",
    ),
    (
        'Feature explanation: the word "so" used to intensify an adjective.\n\n'
        "Example 1: The soup was so hot that nobody could eat it yet.\n"
        "Example 2: So we packed the boxes and carried them up the stairs.\n"
        "Example 3: Thank you, the garden looks so lovely this spring.\n"
        "Example 4: We measured the temperature every hour during the experiment.\n"
        "Example 5: The film was so long that half the room fell asleep.",
        "[1,0,1,0,1]",
    ),
    (
        'Feature explanation: "of" before words that start with a capital letter.\n\n'
        "Example 1: The history of Rome is long and full of surprising reversals.\n"
        "Example 2: Most of the students handed in their homework on time.\n"
        "Example 3: She studied at the University of Michigan for four years.\n"
        "Example 4: A cup of tea would be lovely right now, thank you.\n"
        "Example 5: The Bank of England raised its interest rate again.",
        "[1,0,1,0,1]",
    ),
]
_DELPHI_FS_FUZZ = [
    (
        "Feature explanation: names of musical instruments, especially string instruments.\n\n"
        "Example 1: She practised the <<violin>> every evening before dinner.\n"
        "Example 2: The orchestra hired a new <<conductor>> and two stagehands.\n"
        "Example 3: I asked him about his <<favourite>> movie and he said he had not seen it.\n"
        "Example 4: He tuned the old <<cello>> and played a slow piece.\n"
        "Example 5: She walked to the <<end>> of the road and turned left toward the market.",
        "[1,0,0,1,0]",
    ),
    (
        'Feature explanation: the word "so" used to intensify an adjective.\n\n'
        "Example 1: The soup was <<so>> hot that nobody could eat it yet.\n"
        "Example 2: So we packed the <<boxes>> and carried them up the stairs.\n"
        "Example 3: Thank you, the garden looks <<so>> lovely this spring.\n"
        "Example 4: We measured the <<temperature>> every hour during the experiment.\n"
        "Example 5: The film was <<so>> long that half the room fell asleep.",
        "[1,0,1,0,1]",
    ),
    (
        'Feature explanation: "of" before words that start with a capital letter.\n\n'
        "Example 1: The history <<of>> Rome is long and full of surprising reversals.\n"
        "Example 2: Most of the <<students>> handed in their homework on time.\n"
        "Example 3: She studied at the University <<of>> Michigan for four years.\n"
        "Example 4: A cup of <<tea>> would be lovely right now, thank you.\n"
        "Example 5: The Bank <<of>> England raised its interest rate again.",
        "[1,0,1,0,1]",
    ),
]


# how many few-shot examples each prompt style has (``n_fewshot`` above this is refused)
FEWSHOTS = {"spec": 1, "delphi": min(len(_DELPHI_FS_DET), len(_DELPHI_FS_FUZZ))}


def check_fewshot(where: str, style: str, n_fewshot: int) -> None:
    from autointerp.errors import ConfigError, check_choice, check_int

    check_choice(where, "prompt_style", style, tuple(FEWSHOTS))
    check_int(where, "n_fewshot", n_fewshot, 0)
    if n_fewshot > FEWSHOTS[style]:
        raise ConfigError(
            f"{where}: n_fewshot={n_fewshot} but prompt_style={style!r} has only "
            f"{FEWSHOTS[style]} few-shot example(s); use n_fewshot <= {FEWSHOTS[style]}"
            + (" or prompt_style='delphi' (3)" if style == "spec" else "")
        )


def classifier_messages(
    kind: str, style: str, explanation: str, texts: list[str], n_fewshot: int
) -> list[Message]:
    n = len(texts)
    if style == "delphi":
        system = (DELPHI_FUZZING_SYSTEM if kind == "fuzzing" else DELPHI_DETECTION_SYSTEM).format(
            n=n
        )
        shots = (_DELPHI_FS_FUZZ if kind == "fuzzing" else _DELPHI_FS_DET)[:n_fewshot]
    else:
        system = (FUZZING_SYSTEM if kind == "fuzzing" else DETECTION_SYSTEM).format(n=n)
        shots = [_FS_FUZZ if kind == "fuzzing" else _FS_DET][:n_fewshot]
    msgs = [Message.system(system)]
    for u, a in shots:
        msgs += [Message.user(u), Message.assistant(a)]
    body = f"Feature explanation: {explanation}\n\n" + "\n".join(
        f"Example {i}: {t}" for i, t in enumerate(texts, 1)
    )
    body += f"\n\nAnswer with a JSON list of exactly {n} integers (0 or 1)."
    msgs.append(Message.user(body))
    return msgs


def repair_messages(
    msgs: list[Message], bad: str, n: int, lo: int = 0, hi: int = 1
) -> list[Message]:
    """The one repair retry: show the model its answer and ask again for exactly n values."""
    return [
        *msgs,
        Message.assistant(bad[:500]),
        Message.user(
            f"That answer could not be read. Reply with only a JSON list of exactly {n} integers "
            f"between {lo} and {hi}, one per item, in order."
        ),
    ]
