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

from interp.models.loading import LoadedModel

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


# ------------------------------------------------------------------ multi-turn exchanges
ROLES = ("system", "user", "assistant")


def _gemma_turns(messages: list[tuple[str, str]]) -> str:
    """Gemma's turn format; a system message is put in front of the first user turn (as Gemma's
    own chat template does), separated by a blank line."""
    system = "\n\n".join(text for role, text in messages if role == "system")
    parts = []
    for role, text in messages:
        if role == "system":
            continue
        if role == "user" and system:
            text, system = f"{system}\n\n{text}", ""
        name = "model" if role == "assistant" else "user"
        parts.append(f"<start_of_turn>{name}\n{text}<end_of_turn>\n")
    return "".join(parts) + "<start_of_turn>model\n"


def _plain_turns(messages: list[tuple[str, str]]) -> str:
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    lines = []
    for i, (role, text) in enumerate(messages):
        last = i == len(messages) - 1
        lines.append(f"{names[role]}: {text}" + ("\nAssistant:" if last else "\n"))
    return "".join(lines)


def exchange_format(loaded: LoadedModel, messages: list[tuple[str, str]]) -> ConversationFormat:
    """Id segments for the next assistant turn after a multi-turn context.

    ``messages`` are ``(role, text)`` pairs with roles ``system``, ``user`` and ``assistant``,
    ending with a ``user`` turn. The result is used like ``conversation_format``'s: a response
    goes between ``prefix_ids`` and ``suffix_ids``. For a single user message it equals
    ``conversation_format(loaded, text)`` in every template mode (tested), so RM training and
    scoring format conversations the same way. Multi-turn rules: ``chat`` renders the whole
    context with the tokenizer's template; ``gemma-turns`` writes one Gemma turn per message (a
    system message is prepended to the first user turn, as Gemma's template does); ``plain``
    writes ``System:``/``User:``/``Assistant:`` lines. A raw-prompt LM (``kind == "lm"`` without
    a chat template) accepts only a single user message.
    """
    messages = [(str(role), str(text)) for role, text in messages]
    if not messages or messages[-1][0] != "user":
        raise ValueError("an exchange must end with a user turn")
    unknown = sorted({role for role, _ in messages} - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; use {', '.join(ROLES)}")
    if len(messages) == 1:
        return conversation_format(loaded, messages[0][1])
    tok = loaded.tokenizer
    bos = tokenizer_adds_bos(tok)
    mode = loaded.template_mode
    if loaded.kind == "lm" and mode != "chat":
        raise ValueError("a raw-prompt LM format takes a single user message")
    if mode == "chat":
        rendered = tok.apply_chat_template(
            [{"role": r, "content": t} for r, t in messages]
            + [{"role": "assistant", "content": _SENTINEL}],
            tokenize=False,
        )
        if rendered.count(_SENTINEL) != 1:
            raise ValueError("chat template did not render the assistant turn verbatim")
        prefix, suffix = rendered.split(_SENTINEL)
        lead = ""
    elif mode == "gemma-turns":
        prefix, suffix, lead = _gemma_turns(messages), "<end_of_turn>\n", ""
    else:
        prefix, suffix, lead = _plain_turns(messages), "", " "
    if loaded.kind == "lm":
        suffix = ""
    return ConversationFormat(
        mode=mode,
        prefix_ids=tuple(encode_text(tok, prefix, leading_bos=bos)),
        suffix_ids=tuple(encode_text(tok, suffix, leading_bos=False)) if suffix else (),
        response_lead=lead,
    )
