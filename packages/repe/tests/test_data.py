"""Pair data, rendering, splits, read positions, and bad-input errors."""

from __future__ import annotations

import pytest
import torch
from repe import ContrastPair, Stimulus, fit_reading_vector, pairs_from_lists
from repe.data import (
    ChatFormat,
    honesty_pairs,
    pairs_sha256,
    render,
    split_by_group,
    validate_pairs,
)
from repe.errors import LayerError, PairDataError, RepeError
from repe.positions import left_pad, parse_read, reduce_read
from repe.sites import normalise_layers


def test_pair_list_errors():
    with pytest.raises(PairDataError, match="unequal pair counts: 3 positives vs 2 negatives"):
        pairs_from_lists(["a", "b", "c"], ["x", "y"])
    with pytest.raises(PairDataError, match="empty pair lists"):
        pairs_from_lists([], [])
    with pytest.raises(PairDataError, match="empty pair list"):
        validate_pairs([])
    with pytest.warns(UserWarning, match="identical"):
        validate_pairs([ContrastPair("a", "a"), ContrastPair("b", "c")])


def test_fit_reading_vector_rejects_bad_input(llama, tok):
    with pytest.raises(PairDataError, match="empty"):
        fit_reading_vector(llama, tok, [])
    pairs = pairs_from_lists(
        ["good movie", "great meal", "nice trip"], ["bad movie", "awful meal", "sad trip"]
    )
    with pytest.raises(LayerError, match="valid layers are 0..2"):
        fit_reading_vector(llama, tok, pairs, layers=[5])
    with pytest.raises(RepeError, match="unknown method"):
        fit_reading_vector(llama, tok, pairs, method="pca_diff")


def test_render_chat_template_has_one_bos_and_exact_response_start(tok):
    st = Stimulus(user="Describe the movie.", prefix="The movie was")
    r = render(st, tok)
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    assert r.ids.count(im_start) == 2  # user turn + assistant turn, no extra BOS
    assert tok.decode(r.ids[r.response_start :]) == "The movie was"
    assert tok.bos_token_id not in r.ids


def test_missing_template_error_suggests_user_tag(tok):
    from transformers import PreTrainedTokenizerFast

    plain = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, pad_token="<pad>")
    with pytest.raises(RepeError, match="user_tag"):
        render(Stimulus(user="hi", prefix="yo"), plain)
    r = render(Stimulus(user="hi", prefix="yo"), plain, ChatFormat.repe())
    assert r.text.startswith("USER: hi ASSISTANT:")


def test_split_by_group_never_leaks_and_hash_is_stable(tok):
    statements = [
        "The sky is blue on a clear day in summer",
        "Water boils at one hundred degrees at sea level",
    ]
    pairs = honesty_pairs(statements, tok)
    train, val = split_by_group(pairs, 0.5, seed=1)
    assert {p.group for p in train}.isdisjoint({p.group for p in val})
    assert all(
        p.positive.prefix == p.negative.prefix for p in pairs
    )  # aligned, unlike RepE's test set
    assert pairs_sha256(pairs, None, tok) == pairs_sha256(list(pairs), None, tok)
    assert pairs_sha256(pairs[:-1], None, tok) != pairs_sha256(pairs, None, tok)


def test_read_positions_reduce_left_padded_rows():
    rows = [[5, 6, 7, 8], [9, 10]]
    b = left_pad(rows, 0, [2, 1])
    h = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)  # value = column index + 4*row
    assert reduce_read(h, b, parse_read("last"))[:, 0].tolist() == [3.0, 7.0]
    assert reduce_read(h, b, parse_read("index(0)"))[:, 0].tolist() == [0.0, 6.0]
    assert reduce_read(h, b, parse_read("mean_last(2)"))[:, 0].tolist() == [2.5, 6.5]
    assert reduce_read(h, b, parse_read("mean_response"))[:, 0].tolist() == [2.5, 7.0]
    assert b.position_ids.tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]
    with pytest.raises(RepeError, match="index\\(5\\)"):
        reduce_read(h, b, parse_read("index(5)"))

    # a callable gets each row's real token ids and returns an index into them
    def before_last(ids):
        return len(ids) - 2 if ids[-1] in (8, 10) else -1

    assert reduce_read(h, b, parse_read(before_last))[:, 0].tolist() == [2.0, 6.0]
    assert reduce_read(h, b, parse_read(lambda ids: ids.index(ids[0])))[:, 0].tolist() == [
        0.0,
        6.0,
    ]
    with pytest.raises(RepeError, match="returned 4 for row 1, which has 2 real tokens"):
        reduce_read(h, b, parse_read(lambda ids: 4 if len(ids) == 2 else 0))
    with pytest.raises(RepeError, match="pass read=<the same callable>"):
        parse_read("callable(before_last)")


def test_normalise_layers():
    assert normalise_layers("all", 4) == [0, 1, 2, 3]
    assert normalise_layers([-1, 0], 4) == [3, 0]
    assert normalise_layers("1-2", 4) == [1, 2]
    with pytest.raises(LayerError, match="layer 30 is out of range .* valid layers are 0..29"):
        normalise_layers([30], 30)
    with pytest.raises(LayerError, match="-31"):
        normalise_layers([-31], 30)
