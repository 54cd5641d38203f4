"""Run settings as validated dataclasses whose fields declare their own command-line options.

Each run module (``analyses.runs.<command>``) has one frozen, keyword-only settings dataclass (in
the spirit of SAELens's one config per runner): every field holds a default, a type and, through
``option(...)``, how it appears on the command line (flags, help, allowed values, numeric range,
how text is parsed). ``__post_init__`` validates what a field declaration cannot. ``cli.py`` turns
these declarations into click options, so defaults and validation live here, once, and a library
caller (the demo, the audit) builds the same dataclass in Python.

This module knows nothing about click: ``Opt`` is plain data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

from interp.errors import UserError


@dataclass(frozen=True)
class Opt:
    """How one settings field appears on the command line.

    ``flags``: option names (``("--out",)``) or, for a positional argument, its metavar (with
    ``argument=True``). ``kind``: ``str``, ``int``, ``float``, ``path``, ``flag`` (a boolean
    switch), ``choice`` (one of ``choices``). ``low``/``high``: inclusive numeric range.
    ``multiple``: repeatable option (a tuple). ``nargs``: for arguments (-1 = any number).
    ``above``: exclusive lower bound (``above=0``: strictly positive). ``parse``: turns the text
    the user typed into the field's value (raises ``UserError``). ``check``: validates a value
    however it was given (raises ``UserError``). ``required``: the user must give it (the
    field's default is then only for Python callers).
    """

    flags: tuple[str, ...]
    help: str = ""
    kind: str = "str"
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    above: float | None = None
    multiple: bool = False
    argument: bool = False
    nargs: int = 1
    parse: Callable[[Any], Any] | None = None
    check: Callable[[Any], Any] | None = None
    required: bool = False
    metavar: str | None = None
    show_default: bool = True


def option(default: Any, *flags: str, **how: Any) -> Any:
    """A dataclass field with default ``default`` that appears on the command line as ``flags``
    (see ``Opt`` for the keywords)."""
    opt = Opt(tuple(flags), **how)
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple (immutable) default")
    return dataclasses.field(default=default, metadata={"cli": opt})


def cli_options(settings_type: type) -> list[tuple[str, Any, Opt]]:
    """``(field name, default, Opt)`` of every field of ``settings_type`` exposed on the CLI."""
    out = []
    for f in dataclasses.fields(settings_type):
        opt = f.metadata.get("cli")
        if opt is not None:
            out.append((f.name, f.default, opt))
    return out


def _flag(opt: Opt) -> str:
    return opt.flags[0] if opt.flags else "value"


def check_declared(name: str, value: Any, opt: Opt) -> None:
    """Check one value against its declaration (kind, range, choices, ``check``): the same rules
    click applies on the command line, for settings built in Python too."""
    if value is None:
        return
    values = value if opt.multiple or (opt.argument and opt.nargs == -1) else (value,)
    flag = _flag(opt)
    for v in values:
        if opt.kind in ("int", "float"):
            is_int = isinstance(v, int) and not isinstance(v, bool)
            if opt.kind == "int" and not is_int:
                raise UserError(f"{flag} must be a whole number (got {v!r})")
            if not isinstance(v, Real) or isinstance(v, bool) or not math.isfinite(v):
                raise UserError(f"{flag} must be a finite number (got {v!r})")
            if opt.low is not None and v < opt.low:
                raise UserError(f"{flag} must be at least {opt.low:g} (got {v:g})")
            if opt.high is not None and v > opt.high:
                raise UserError(f"{flag} must be at most {opt.high:g} (got {v:g})")
            if opt.above is not None and not v > opt.above:
                raise UserError(f"{flag} must be greater than {opt.above:g} (got {v:g})")
        elif opt.kind == "choice" and v not in opt.choices:
            raise UserError(f"{flag} {v!r}: choose one of {', '.join(opt.choices)}")
    if opt.check is not None:
        opt.check(value)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Base of every run's settings: after construction each field is checked against its
    ``option(...)`` declaration (``check_declared``), then ``validate()`` runs the checks a
    declaration cannot express. Subclasses override ``validate`` (calling ``super()``)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            opt = f.metadata.get("cli")
            if opt is not None:
                check_declared(f.name, getattr(self, f.name), opt)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks (raise ``UserError``)."""


# ----------------------------------------------------------------------------- parsers
def comma_list(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"a, b,c"`` -> ``("a", "b", "c")``; empty or None -> None; a sequence passes through."""
    if text is None:
        return None
    if not isinstance(text, str):
        return tuple(text) or None
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    return parts or None


def int_list(option_name: str, example: str) -> Callable[[Any], tuple[int, ...] | None]:
    """A parser for a comma-separated list of whole numbers (``"10,11"`` -> ``(10, 11)``; a
    sequence of ints passes through); anything else is a ``UserError`` showing ``example``."""

    def parse(text) -> tuple[int, ...] | None:
        parts = comma_list(text) if isinstance(text, str) else text
        if parts is None:
            return None
        try:
            return tuple(int(p) for p in parts)
        except (TypeError, ValueError):
            raise UserError(
                f"{option_name} {text!r}: give whole numbers such as {example}"
            ) from None

    return parse


def require(condition: bool, message: str) -> None:
    """Raise ``UserError(message)`` unless ``condition`` (for ``__post_init__`` checks)."""
    if not condition:
        raise UserError(message)


def at_least(name: str, value: float | None, low: float) -> None:
    """``name`` must be >= ``low`` (None passes)."""
    if value is not None and value < low:
        raise UserError(f"{name} must be at least {low:g} (got {value:g})")


def key_value_pairs(option_name: str, shape: str) -> Callable[[Any], tuple[tuple[str, str], ...]]:
    """A parser for a repeatable ``KEY=VALUE`` option (``shape`` e.g. ``"RUN=FAMILY"``):
    ``("a=b", "c=d")`` -> ``(("a", "b"), ("c", "d"))``; a malformed item is a ``UserError``."""

    def parse(values) -> tuple[tuple[str, str], ...]:
        out = []
        for text in [values] if isinstance(values, str) else values:
            key, sep, value = str(text).partition("=")
            if not sep or not key.strip() or not value.strip():
                raise UserError(f"{option_name} {text!r}: write {shape}")
            out.append((key.strip(), value.strip()))
        return tuple(out)

    return parse
