"""Prompt text for the explainers (our own wording)."""

from __future__ import annotations

from lm_kit.llm import Message

from autointerp.format import activation_list, highlighted, plain
from autointerp.schema import Window

SYSTEM = (
    "You are studying one feature inside a language model. You will read short text excerpts. "
    "Tokens where the feature is active are wrapped in << and >>. Under each excerpt the most "
    'active tokens are listed as ("token", activation) with activation on a 0-10 scale.\n'
    "Work out what the marked tokens have in common: the token itself, its meaning, or the "
    "context around it. Then describe the feature in one short phrase (under 15 words). "
    "Do not mention the markers or list numbers.\n"
    "End your reply with exactly one line of the form:\n[EXPLANATION]: <short phrase>"
)
COT_SUFFIX = (
    "\nBefore the final line, think step by step: (1) list the marked tokens, (2) note what "
    "comes before them, (3) state the shared pattern."
)

FEW_SHOTS: list[tuple[str, str]] = [
    (
        'Example 1: I put the keys <<in>> the drawer\nActivations: ("in", 8)\n'
        'Example 2: she was born <<in>> 1990\nActivations: ("in", 6)\n'
        'Example 3: we met <<in>> Paris last spring\nActivations: ("in", 9)',
        '[EXPLANATION]: the preposition "in" before a place or time',
    ),
    (
        'Example 1: a bowl of <<ripe plums>> on the table\nActivations: (" ripe", 3), (" plums", 9)\n'
        'Example 2: he peeled an <<orange>> slowly\nActivations: (" orange", 10)\n'
        'Example 3: jam made from <<apricots>>\nActivations: (" apricots", 7)',
        "[EXPLANATION]: names of fruits",
    ),
    (
        'Example 1: the function returns <<None>> if empty\nActivations: (" None", 10)\n'
        'Example 2: set the value to <<null>> first\nActivations: (" null", 8)\n'
        'Example 3: the pointer was <<nil>> again\nActivations: (" nil", 7)',
        "[EXPLANATION]: empty or missing values in code (None, null, nil)",
    ),
]


def example_block(
    windows: list[Window], a_max: float, with_acts: bool = True, offset: int = 0
) -> str:
    lines = []
    for i, w in enumerate(windows, start=1 + offset):
        lines.append(f"Example {i}: {highlighted(w, a_max)}")
        if with_acts:
            lines.append(f"Activations: {activation_list(w, a_max)}")
    return "\n".join(lines)


def explain_messages(windows: list[Window], a_max: float, cot: bool = False) -> list[Message]:
    msgs = [Message.system(SYSTEM + (COT_SUFFIX if cot else ""))]
    for u, a in FEW_SHOTS:
        msgs += [Message.user(u), Message.assistant(a)]
    msgs.append(Message.user(example_block(windows, a_max)))
    return msgs


CONTRASTIVE_NOTE = (
    "\nYou will also see excerpts where the feature is NOT active at all. Your explanation must "
    "cover the active excerpts and exclude the inactive ones."
)


def contrastive_messages(pos: list[Window], neg: list[Window], a_max: float) -> list[Message]:
    msgs = [Message.system(SYSTEM + CONTRASTIVE_NOTE)]
    for u, a in FEW_SHOTS[:2]:
        msgs += [Message.user(u), Message.assistant(a)]
    body = "Active excerpts:\n" + example_block(pos, a_max)
    body += "\n\nInactive excerpts (the feature is 0 everywhere):\n"
    body += "\n".join(f"Inactive {i}: {plain(w)}" for i, w in enumerate(neg, 1))
    msgs.append(Message.user(body))
    return msgs
