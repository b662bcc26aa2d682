"""Errors that services raise and views translate."""

from __future__ import annotations


class ApplicationError(Exception):
    """A business rule refused the operation; ``message`` is safe to show to the user.

    ``field`` names the input at fault when there is one, so forms and the API
    can attach the message to that field.
    """

    def __init__(self, message: str, *, field: str | None = None, extra: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}


class TransientError(Exception):
    """A failure worth retrying (network, a lock): tasks retry only these."""
