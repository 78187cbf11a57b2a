"""``graphtrace graph TARGET``: the graph as Mermaid."""

from __future__ import annotations

from typing import Annotated

import typer

from graphtrace.cli.app import DebugOption, app, error_boundary
from graphtrace.cli.target import load_graph


@app.command("graph")
@error_boundary
def graph_command(
    target: Annotated[str, typer.Argument(help="module:attr or path.py:attr naming a Graph.")],
    debug: DebugOption = False,
) -> None:
    """Print the graph as a Mermaid flowchart (paste it into any Mermaid viewer)."""
    print(load_graph(target).to_mermaid())
