"""Progress reporting without printing: library code calls a ``Progress``; the CLI draws bars."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives ``start(total, desc)`` once per phase, then ``advance(n)`` as work completes;
    ``note(message)`` reports a phase without a count (a status line)."""

    def start(self, total: int, desc: str) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def close(self) -> None: ...

    def note(self, message: str) -> None: ...


class NoProgress:
    """A ``Progress`` that ignores everything (the default in library calls and tests)."""

    def note(self, message: str) -> None:
        pass

    def start(self, total: int, desc: str) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
