"""The one exception type a user sees as a one-line message (see ``cli.friendly_errors``)."""


class UserError(Exception):
    """Bad input the user can fix: an unknown model, a malformed file, an impossible option."""
