"""Position bookkeeping against hand-computed expectations."""

from __future__ import annotations

import pytest
import torch
from lm_kit.errors import MaskError
from lm_kit.hooks import capture
from lm_kit.positions import Span, last_token_index, pack_documents, read_tokens, token_selection


def test_last_token_index_left_and_right_padding():
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]])
    assert last_token_index(right).tolist() == [2, 3, 0]
    assert last_token_index(left).tolist() == [3, 3, 3]


def test_all_pad_row_and_shape_mismatch_name_the_problem():
    with pytest.raises(MaskError, match=r"row\(s\) \[1\]"):
        last_token_index(torch.tensor([[1, 1], [0, 0]]))
    with pytest.raises(MaskError, match="does not match input_ids"):
        token_selection(torch.ones(2, 3), input_ids=torch.ones(2, 4, dtype=torch.long))


def test_token_selection_positions_count_real_tokens_only():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])
    sel = token_selection(mask)
    assert sel.row.tolist() == [0, 0, 1, 1, 1]
    assert sel.col.tolist() == [2, 3, 0, 1, 2]
    assert sel.pos.tolist() == [0, 1, 0, 1, 2]


def test_read_modes_on_a_hand_made_tensor():
    x = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)  # x[b, t] = 4b + t
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 0]])
    assert read_tokens(x, mask, "last").flatten().tolist() == [3.0, 5.0]
    assert read_tokens(x, mask, "mean").flatten().tolist() == [2.0, 4.5]
    assert read_tokens(x, mask, 0).flatten().tolist() == [1.0, 4.0]
    assert read_tokens(x, mask, -2).flatten().tolist() == [2.0, 4.0]
    flat, sel = read_tokens(x, mask, "all")
    assert flat.flatten().tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(MaskError, match="row"):
        read_tokens(x, mask, 2)  # row 1 has only two real tokens
    ids = torch.tensor([[0, 7, 8, 9], [7, 9, 0, 0]])
    assert read_tokens(x, mask, Span((7,)), input_ids=ids).flatten().tolist() == [2.5, 5.0]


def test_pack_documents_layout():
    packed = pack_documents([[5, 6, 7], [8, 9], [10, 11, 12, 13]], ctx=5)
    assert packed["input_ids"].tolist() == [[5, 6, 7, 8, 9], [10, 11, 12, 13, 0]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]
    assert packed["doc_id"].tolist() == [[0, 0, 0, 1, 1], [2, 2, 2, 2, -1]]
    m = packed["attention_mask"][0, 0]
    assert m[3].tolist() == [False, False, False, True, False]  # doc 1 sees only itself
    assert m[2].tolist() == [True, True, True, False, False]
    with pytest.raises(ValueError, match="ctx"):
        pack_documents([[1] * 6], ctx=5)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_packed_equals_unpacked_activations(family, tiny_models):
    model = tiny_models(family)
    docs = [[1, 20, 30, 40], [1, 50, 60], [1, 70, 80, 90, 100]]
    packed = pack_documents(docs, ctx=8)
    with capture(model, "resid_post.2") as a:
        model(
            input_ids=packed["input_ids"],
            attention_mask=packed["attention_mask"],
            position_ids=packed["position_ids"],
        )
    got = a["resid_post.2"]
    for i, d in enumerate(docs):
        with capture(model, "resid_post.2") as single:
            model(input_ids=torch.tensor([d]))
        where = packed["doc_id"] == i
        torch.testing.assert_close(got[where], single["resid_post.2"][0], rtol=1e-4, atol=1e-5)
