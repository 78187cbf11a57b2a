"""The CLI's one error type: a message for the user and an exit code."""

from __future__ import annotations


class CLIError(Exception):
    """Printed as one line on stderr; the process exits with ``code`` (2: bad usage/input)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code
