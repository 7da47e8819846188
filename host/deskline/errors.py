"""The one error a user sees: printed as `deskline: message`, exit 1."""

from __future__ import annotations


class DesklineError(Exception):
    """A failure the user can act on; the message says how."""
