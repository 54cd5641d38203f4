"""Formatting: chat template split, Gemma turns, raw prompts, and the BOS guard."""

import pytest

from interp.formatting import conversation_format, encode_text, response_ids, tokenizer_adds_bos
from interp.models.loading import ModelSpec, load_model

PROMPT = "What, in one word, is the greatest thing ever?"


def _count_leading(ids, token):
    n = 0
    while n < len(ids) and ids[n] == token:
        n += 1
    return n


def test_chat_template_segments_rebuild_the_rendered_conversation(tiny_llama_rm):
    rm = load_model(ModelSpec(tiny_llama_rm, kind="rm"))
    fmt = conversation_format(rm, PROMPT)
    word = response_ids(rm, fmt, "love")
    rendered = rm.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": "love"}],
        tokenize=False,
    )
    assert rm.tokenizer.decode(fmt.full_ids(word)) == rendered
    assert fmt.mode == "chat" and fmt.suffix_ids  # the turn is closed after the response


def test_gemma_turns_and_raw_prompt(tiny_gemma_rm, tiny_gemma_lm):
    rm = load_model(ModelSpec(tiny_gemma_rm, kind="rm"))
    fmt = conversation_format(rm, PROMPT)
    tok = rm.tokenizer
    assert fmt.mode == "gemma-turns"
    text = tok.decode(fmt.full_ids(response_ids(rm, fmt, "love")))
    assert (
        text
        == f"<bos><start_of_turn>user\n{PROMPT}<end_of_turn>\n<start_of_turn>model\nlove<end_of_turn>\n"
    )
    lm = load_model(ModelSpec(tiny_gemma_lm, kind="lm"))
    lm_fmt = conversation_format(lm, PROMPT)
    assert lm_fmt.mode == "raw" and lm_fmt.suffix_ids == ()
    assert tok.decode(list(lm_fmt.prefix_ids)) == f"<bos>{PROMPT}"
    assert tok.decode(response_ids(lm, lm_fmt, "love")) == " love"


def test_bos_guard_never_doubles(tiny_gemma_rm):
    rm = load_model(ModelSpec(tiny_gemma_rm, kind="rm"))
    tok = rm.tokenizer
    bos = tok.bos_token_id
    assert tokenizer_adds_bos(tok)
    # Text that already starts with BOS (as a template would write it) keeps exactly one.
    assert _count_leading(encode_text(tok, "<bos><bos>hello", leading_bos=True), bos) == 1
    assert _count_leading(encode_text(tok, "hello", leading_bos=True), bos) == 1
    # Plain tokenisation of such text would double it: the trap the guard exists for.
    assert _count_leading(tok("<bos>hello").input_ids, bos) == 2


@pytest.mark.embedded
@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma3-270m"])
@pytest.mark.parametrize("kind", ["lm", "rm"])
def test_embedded_models_have_one_leading_bos(name, kind):
    loaded = load_model(ModelSpec(name, kind=kind, random_head_seed=0 if kind == "rm" else None))
    fmt = conversation_format(loaded, PROMPT)
    tok = loaded.tokenizer
    first = fmt.prefix_ids[0]
    assert first == tok.bos_token_id
    assert _count_leading(list(fmt.prefix_ids), first) == 1
    if name == "gemma3-270m":
        assert tokenizer_adds_bos(tok)  # Gemma's tokenizer adds <bos> itself ...
        assert list(fmt.prefix_ids).count(tok.bos_token_id) == 1  # ... yet there is one.
