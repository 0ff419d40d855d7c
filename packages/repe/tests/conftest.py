from __future__ import annotations

import pytest

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = (
    "The movie was wonderful and I loved it. The meal was terrible and I hated it.",
    "Describe the trip in one sentence. Overall, my feeling about it is good or bad.",
    "Happy people smile; sad people cry. The concert was amazing, the hotel was awful.",
    "Left padding puts pad tokens before the text; the answer is (A) or (B).",
    "Paris is the capital of France. Rome is the capital of Italy.",
)


@pytest.fixture(scope="session")
def tok():
    from lm_kit.tiny import tiny_tokenizer

    t = tiny_tokenizer(CORPUS + ("<|im_start|>", "<|im_end|>"), vocab=400)
    t.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    t.chat_template = CHATML
    return t


@pytest.fixture(scope="session")
def llama(tok):
    from lm_kit.tiny import tiny_model

    return tiny_model("llama", d=32, layers=3, vocab=len(tok) + 8, seed=0)


@pytest.fixture(scope="session")
def gpt2(tok):
    from lm_kit.tiny import tiny_model

    return tiny_model("gpt2", d=32, layers=3, vocab=len(tok) + 8, seed=1)
