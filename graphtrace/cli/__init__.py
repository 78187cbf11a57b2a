"""The ``graphtrace`` command line (typer). Each command lives in a module of its own."""

from __future__ import annotations

from graphtrace.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
