"""Re-export of ``interp.errors.UserError`` for code in ``analyses``, ``probes`` and ``activations``."""

from interp.errors import UserError

__all__ = ["UserError"]
