"""The one exception type a user sees as a one-line message (see ``cli.friendly_errors``).

It lives in ``interp`` (the lowest layer) so every package can raise it; ``analyses.errors``
re-exports it.
"""


class UserError(Exception):
    """Bad input the user can fix: an unknown model, a malformed file, an impossible option."""
