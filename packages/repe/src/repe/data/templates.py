"""Rendering stimuli to token ids: the tokenizer's chat template, or explicit tags.

The prompt (template + generation prompt) and the assistant prefix are tokenised separately
with ``add_special_tokens=False`` and concatenated, so there is never a double BOS and the
response start column is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RepeError
from .pairs import Stimulus


@dataclass(frozen=True)
class ChatFormat:
    """How to render a chat turn.

    With ``user_tag`` set, the RepE-style fallback ``"{user_tag} {user} {assistant_tag} {prefix}"``
    is used; otherwise the tokenizer's chat template (``add_generation_prompt=True``).
    """

    user_tag: str | None = None
    assistant_tag: str | None = None
    system: str | None = None

    @classmethod
    def repe(cls) -> ChatFormat:
        return cls(user_tag="USER:", assistant_tag="ASSISTANT:")


@dataclass
class Rendered:
    ids: list[int]
    response_start: int  # index of the first token of the assistant prefix
    text: str


def render_prompt(stim: Stimulus, tokenizer: object, fmt: ChatFormat | None = None) -> str:
    fmt = fmt or ChatFormat()
    if stim.user is None:
        return ""
    if fmt.user_tag is not None:
        tag = fmt.assistant_tag or ""
        return f"{fmt.user_tag} {stim.user} {tag} ".rstrip(" ") + " "
    if getattr(tokenizer, "chat_template", None):
        messages = []
        system = stim.system or fmt.system
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": stim.user})
        return tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            messages, add_generation_prompt=True, tokenize=False
        )
    raise RepeError(
        "the tokenizer has no chat template and no tags were given; pass "
        "ChatFormat(user_tag='USER:', assistant_tag='ASSISTANT:') (or use raw-text stimuli)"
    )


def render(stim: Stimulus, tokenizer: object, fmt: ChatFormat | None = None) -> Rendered:
    prompt = render_prompt(stim, tokenizer, fmt)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []  # type: ignore[operator]
    r_ids = tokenizer(stim.prefix, add_special_tokens=False)["input_ids"] if stim.prefix else []  # type: ignore[operator]
    ids = list(p_ids) + list(r_ids)
    if not ids:
        raise RepeError("a stimulus rendered to zero tokens; give it some text")
    return Rendered(ids=ids, response_start=len(p_ids), text=prompt + stim.prefix)
