"""Prompt sets: the paper's 54-prompt factorial design, and prompt files (YAML, JSON or text).

Christian et al. 2026 use 6 adjectives x 3 superlative frames x 3 concision styles = 54 prompts,
keyed like ``greatest_ever_one``. Keys starting with best/greatest/good are positively framed.
"""

from __future__ import annotations

from pathlib import Path

from interp.errors import UserError
from interp.files import read_json, read_lines, read_yaml
from interp.prompts import Prompt

POSITIVE_ADJECTIVES = ("best", "greatest", "good")
NEGATIVE_ADJECTIVES = ("worst", "bad", "terrible")
# adjective key -> how it reads in the sentence
_ADJECTIVE_TEXT = {
    "best": "the best",
    "greatest": "the greatest",
    "good": "the most good",
    "worst": "the worst",
    "bad": "the most bad",
    "terrible": "the most terrible",
}
_FRAME_TEXT = {"ever": "thing ever", "world": "thing in the world", "time": "thing of all time"}
_STYLES = ("one", "single", "please")

BUILTIN_PROMPT_SETS = ("paper54",)


def framing_of_key(key: str) -> str:
    """``positive`` / ``negative`` from a paper prompt key's adjective, else ``none``."""
    head = key.split("_", 1)[0].lower()
    if head in POSITIVE_ADJECTIVES:
        return "positive"
    if head in NEGATIVE_ADJECTIVES:
        return "negative"
    return "none"


def _paper_text(adjective: str, frame: str, style: str) -> str:
    thing = f"{_ADJECTIVE_TEXT[adjective]} {_FRAME_TEXT[frame]}"
    if style == "one":
        return f"What, in one word, is {thing}?"
    if style == "single":
        return f"What, in a single word, is {thing}?"
    return f"What is {thing}? Please answer in one word only."


def paper_prompts() -> list[Prompt]:
    """The 54 prompts of Christian et al. 2026 in the paper's order (adjective, frame, style)."""
    out = []
    for adjective in POSITIVE_ADJECTIVES + NEGATIVE_ADJECTIVES:
        for frame in _FRAME_TEXT:
            for style in _STYLES:
                key = f"{adjective}_{frame}_{style}"
                out.append(Prompt(key, _paper_text(adjective, frame, style), framing_of_key(key)))
    return out


def _prompts_from_data(data, source: str) -> list[Prompt]:
    """A parsed YAML/JSON document -> prompts: a mapping ``key: text`` or a list of texts.

    Every prompt must be non-empty text; nested maps, lists, null values, numbers and booleans
    are refused by key (they would otherwise be scored as strings such as ``"{'a': 1}"``)."""

    def text_of(value, where: str) -> str:
        if not isinstance(value, str):
            kind = "null" if value is None else type(value).__name__
            raise UserError(f"{source}: {where} is {kind}, expected the prompt's text")
        if not value.strip():
            raise UserError(f"{source}: {where} is empty")
        return value

    if isinstance(data, dict):
        prompts = []
        for key, value in data.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise UserError(f"{source}: key {key!r} is not a name (expected text keys)")
            prompts.append(
                Prompt(str(key), text_of(value, f"prompt {key!r}"), framing_of_key(str(key)))
            )
        return prompts
    if isinstance(data, list):
        return [Prompt(f"p{i}", text_of(v, f"item {i}")) for i, v in enumerate(data)]
    raise UserError(f"{source}: expected a mapping key -> prompt or a list of prompts")


def load_prompts(
    source: str, keys: tuple[str, ...] | None = None, encoding: str | None = None
) -> list[Prompt]:
    """Prompts from a built-in set name (``paper54``) or a file.

    Files: YAML or JSON mapping ``key: text`` (or a list of texts), or plain text with one prompt
    per line (keys ``p0``, ``p1``, ...). ``keys`` keeps only those keys, in the given order.
    ``encoding``: of the file (default UTF-8, see ``interp.files``).
    """
    if source in BUILTIN_PROMPT_SETS:
        prompts = paper_prompts()
    else:
        path = Path(source)
        if not path.exists():
            raise UserError(
                f"prompts {source!r}: not a file and not a built-in set ({', '.join(BUILTIN_PROMPT_SETS)})"
            )
        what = "prompts file"
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            prompts = _prompts_from_data(read_yaml(path, what, encoding), f"{what} {path}")
        elif suffix == ".json":
            prompts = _prompts_from_data(read_json(path, what, encoding), f"{what} {path}")
        else:
            prompts = [
                Prompt(f"p{i}", ln)
                for i, ln in enumerate(read_lines(path, what, encoding, comments=False))
            ]
    if len({p.key for p in prompts}) != len(prompts):
        raise UserError(f"prompts {source!r}: a key appears twice")
    if keys:
        by_key = {p.key: p for p in prompts}
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise UserError(f"prompt keys not found in {source}: {', '.join(missing)}")
        prompts = [by_key[k] for k in keys]
    if not prompts:
        raise UserError(f"prompts {source!r}: no prompts")
    return prompts
