"""valuebias command line: each command parses its options and calls one library function.

Errors that a user can fix (bad names, bad files, bad options) are raised by the library as
``analyses.errors.UserError`` (or a subclass) and shown here as one line, with exit status 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from analyses.errors import UserError


def friendly_errors(func):
    """Turn a UserError into one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """valuebias: find where a reward model's value biases come from.

    Score reward models and language models on value-laden words, run the statistics of
    Christian et al. 2026, cache hidden activations, fit probes and patch activations between a
    base model and a reward model fine-tuned from it.
    """


# ---------------------------------------------------------------- models and scoring (issue 2)
# ---------------------------------------------------------------- lexicons and statistics (issue 3)
# ---------------------------------------------------------------- activations and probes (issue 4)
# ---------------------------------------------------------------- training and patching (issue 5)
# ---------------------------------------------------------------- demo


if __name__ == "__main__":
    main()
