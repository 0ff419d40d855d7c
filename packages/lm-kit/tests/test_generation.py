"""Edits during generate: KV-cache decoding must see the same absolute positions as a full pass."""

from __future__ import annotations

import pytest
import torch
from lm_kit.hooks import Add, assert_no_hooks, edit


def _generate(model, batch, use_cache, positions, v):
    with edit(model, {"resid_post.1": Add(v, 1.0, positions=positions)}):
        out = model.generate(
            **batch,
            max_new_tokens=5,
            do_sample=False,
            use_cache=use_cache,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=0,
        )
    return out.sequences, torch.stack(out.scores, 1)


@pytest.fixture(scope="module")
def left_batch(tiny_tok):
    return tiny_tok(
        ["The capital of France is", "hi"], return_tensors="pt", padding=True, padding_side="left"
    )


@pytest.mark.parametrize("positions", [None, slice(4, None), "response", {2, 6}])
def test_cached_and_uncached_generation_agree_under_an_edit(tiny_llama, left_batch, positions):
    model, _ = tiny_llama
    v = 3.0 * torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    seq_c, sc_c = _generate(model, left_batch, True, positions, v)
    seq_u, sc_u = _generate(model, left_batch, False, positions, v)
    assert torch.equal(seq_c, seq_u)
    torch.testing.assert_close(sc_c, sc_u, rtol=1e-4, atol=1e-4)
    assert_no_hooks(model)


def test_position_selective_edit_acts_during_decoding_and_matches_a_single_prompt(
    tiny_llama, tiny_tok, left_batch
):
    """Absolute positions count real tokens: row 1 of the left-padded batch equals 'hi' alone."""
    model, _ = tiny_llama
    v = 3.0 * torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    _, scores_batch = _generate(model, left_batch, True, "response", v)
    single = tiny_tok(["hi"], return_tensors="pt")
    _, scores_single = _generate(model, single, True, "response", v)
    torch.testing.assert_close(scores_batch[1], scores_single[0], rtol=1e-4, atol=1e-4)
    # prompt positions untouched: the first generated token's scores equal the unedited model's,
    # later ones (whose inputs are response tokens) differ
    with pytest.warns(UserWarning, match="never applied"):  # deliberately selects no token
        _, plain = _generate(model, left_batch, True, slice(10_000, None), v)
    torch.testing.assert_close(scores_batch[:, 0], plain[:, 0], rtol=1e-5, atol=1e-5)
    assert (scores_batch[:, 1:] - plain[:, 1:]).abs().max() > 1e-3


def test_unselected_positions_leave_generation_unchanged(tiny_llama, left_batch):
    model, _ = tiny_llama
    v = torch.ones(model.config.hidden_size)
    with pytest.warns(UserWarning, match="never applied"):  # deliberately selects no token
        seq_e, _ = _generate(model, left_batch, True, slice(10_000, None), v)
    plain = model.generate(**left_batch, max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert torch.equal(seq_e, plain)
