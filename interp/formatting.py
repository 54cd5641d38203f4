"""Conversations -> token ids, the one formatting route shared by scoring, caching and patching.

A conversation ``[user: prompt, assistant: response]`` is split into three id segments:
``prefix`` (everything before the response), the response's own ids, and ``suffix`` (what closes
the assistant turn). Every scorer builds ``prefix + response + suffix`` from these segments, so a
vocabulary token is scored by its exact id, never by decoding and re-tokenising it.

Template modes (``LoadedModel.template_mode``):

- ``chat``: the tokenizer's chat template. Prefix and suffix come from rendering the exchange with
  a sentinel response and splitting at the sentinel.
- ``gemma-turns``: a Gemma model without a template (a pretrained checkpoint, or an RM trained from
  one) uses Gemma's turn tokens: ``<start_of_turn>user\\n{prompt}<end_of_turn>\\n<start_of_turn>model\\n``
  then the response then ``<end_of_turn>\\n``.
- ``plain``: ``User: {prompt}\\nAssistant:`` then `` {response}`` and nothing after.

For log-probs (``kind == "lm"``) of a model without a chat template the paper uses the raw prompt,
so the prefix is the prompt text alone and a response follows it after one space (``raw`` below).

BOS guard: the prefix starts with exactly one BOS token when the tokenizer adds one to plain text,
whether or not the template already wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from interp.loading import LoadedModel

_SENTINEL = "\u2063VALUEBIAS_RESPONSE\u2063"


@dataclass(frozen=True)
class ConversationFormat:
    """How responses to one prompt are turned into ids.

    ``mode`` is the template mode actually used (``chat``, ``gemma-turns``, ``plain`` or ``raw``);
    ``response_lead`` is text put before each response string (a space in ``plain``/``raw``).
    """

    mode: str
    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]
    response_lead: str

    def full_ids(self, response_ids: list[int] | tuple[int, ...]) -> list[int]:
        return [*self.prefix_ids, *response_ids, *self.suffix_ids]


def tokenizer_adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts a BOS token in front of plain text by itself."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    with_special = tokenizer("a").input_ids
    return bool(with_special) and with_special[0] == bos


def encode_text(tokenizer, text: str, leading_bos: bool) -> list[int]:
    """Ids of ``text`` without automatic special tokens, then exactly one BOS if asked for."""
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    if leading_bos:
        bos = tokenizer.bos_token_id
        while len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
            ids.pop(0)
        if not ids or ids[0] != bos:
            ids.insert(0, bos)
    return ids


def _chat_parts(tokenizer, prompt: str) -> tuple[str, str]:
    messages = [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": _SENTINEL},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    if rendered.count(_SENTINEL) != 1:
        raise ValueError("chat template did not render the assistant turn verbatim")
    prefix, suffix = rendered.split(_SENTINEL)
    return prefix, suffix


def conversation_format(loaded: LoadedModel, prompt: str) -> ConversationFormat:
    """The id segments for responses to ``prompt`` under ``loaded``'s template and kind."""
    tok = loaded.tokenizer
    bos = tokenizer_adds_bos(tok)
    mode = loaded.template_mode
    if loaded.kind == "lm" and mode != "chat":
        mode = "raw"
    if mode == "chat":
        prefix, suffix = _chat_parts(tok, prompt)
        lead = ""
    elif mode == "gemma-turns":
        prefix = f"<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
        suffix, lead = "<end_of_turn>\n", ""
    elif mode == "plain":
        prefix, suffix, lead = f"User: {prompt}\nAssistant:", "", " "
    else:  # raw prompt for log-probs of a pretrained model
        prefix, suffix, lead = prompt, "", " "
    if loaded.kind == "lm":
        suffix = ""  # log-probs stop at the response's last token
    return ConversationFormat(
        mode=mode,
        prefix_ids=tuple(encode_text(tok, prefix, leading_bos=bos)),
        suffix_ids=tuple(encode_text(tok, suffix, leading_bos=False)) if suffix else (),
        response_lead=lead,
    )


def response_ids(loaded: LoadedModel, fmt: ConversationFormat, response: str) -> list[int]:
    """Ids of a response string as it follows the prefix (with the format's lead text)."""
    return list(loaded.tokenizer(fmt.response_lead + response, add_special_tokens=False).input_ids)
