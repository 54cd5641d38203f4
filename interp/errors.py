"""The one exception type a user sees as a one-line message (``cli.py`` prints it as one ``error:`` line).

It lives in ``interp`` (the lowest layer) so every package raises the same type.
"""


class UserError(Exception):
    """Bad input the user can fix: an unknown model, a malformed file, an impossible option."""
