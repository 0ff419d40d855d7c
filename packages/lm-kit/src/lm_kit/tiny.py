"""Tiny random models of six families and an in-process BPE tokenizer, for fast unit tests."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import torch

FAMILIES = ("llama", "gpt2", "gpt_neox", "gemma2", "qwen2", "mistral")

_DEFAULT_CORPUS = (
    "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid.",
    "A quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun.",
    "Language models read tokens, build a residual stream, and predict the next token.",
    "Hooks capture activations at each layer; edits add, ablate or replace a direction.",
    "Left padding puts pad tokens before the text; right padding puts them after it.",
    "Numbers like 1, 2, 3, 10, 42 and 2024 appear in text about dates and counts.",
    "She said: \"Hello, world!\" and he answered (quietly) 'good morning' -- then left.",
    "Rain falls on the hills; rivers run to the sea; the sea rises into clouds again.",
)
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def _config(family: str, d: int, layers: int, vocab: int) -> Any:
    import transformers as tf

    heads = max(2, d // 16)
    common_ids: dict[str, Any] = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    if family in ("llama", "mistral", "qwen2"):
        cls = {"llama": tf.LlamaConfig, "mistral": tf.MistralConfig, "qwen2": tf.Qwen2Config}[
            family
        ]
        return cls(
            vocab_size=vocab,
            hidden_size=d,
            intermediate_size=2 * d + d // 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=512,
            tie_word_embeddings=family != "mistral",
            **common_ids,
        )
    if family == "gemma2":
        eager: dict[str, Any] = {"attn_implementation": "eager"}
        return tf.Gemma2Config(
            vocab_size=vocab,
            hidden_size=d,
            intermediate_size=2 * d,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            head_dim=d // heads,
            max_position_embeddings=512,
            sliding_window=64,
            **common_ids,
            **eager,
        )
    if family == "gpt2":
        return tf.GPT2Config(
            vocab_size=vocab, n_embd=d, n_layer=layers, n_head=heads, n_positions=512, **common_ids
        )
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(
            vocab_size=vocab,
            hidden_size=d,
            intermediate_size=4 * d,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            max_position_embeddings=512,
            use_parallel_residual=True,
            **common_ids,
        )
    raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(FAMILIES)}")


def tiny_model(
    family: str = "llama",
    d: int = 64,
    layers: int = 4,
    vocab: int = 512,
    seed: int = 0,
    **overrides: Any,
):
    """A randomly initialised causal LM (fp32, eval mode, no grad) of the given family.

    ``overrides`` are set on the config (e.g. ``use_parallel_residual=False`` for GPT-NeoX).
    """
    from transformers import AutoModelForCausalLM

    config = _config(family, d, layers, vocab)
    for k, v in overrides.items():
        setattr(config, k, v)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # random init makes tiny norms-heavy models nearly constant; widen the weights a little
    model.eval()
    model.requires_grad_(False)
    return model


@functools.lru_cache(maxsize=8)
def _trained_tokenizer_json(corpus: tuple[str, ...], vocab: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 1)]
    )
    return tok.to_str()


def tiny_tokenizer(corpus: Iterable[str] | None = None, vocab: int = 512):
    """A byte-level BPE tokenizer trained in-process (well under a second).

    Special tokens: ``<pad>``=0, ``<s>``=1 (BOS, prepended), ``</s>``=2 (EOS), ``<unk>``=3.
    Byte-level, so any text encodes; ids stay below ``vocab``.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    text = tuple(corpus) if corpus is not None else _DEFAULT_CORPUS
    tok_json = _trained_tokenizer_json(text, vocab)
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(tok_json),
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
    )
