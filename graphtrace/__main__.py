"""``python -m graphtrace``: the same as the ``graphtrace`` command."""

from graphtrace.cli import main

main()
