"""Loading ``module:attr`` or ``path/to/file.py:attr`` targets for the CLI."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from graphtrace.cli.errors import CLIError
from graphtrace.graph import Graph

DEFAULT_ATTRIBUTE = "graph"


def load_graph(target: str) -> Graph:
    """The :class:`Graph` named by ``target``; raises :class:`CLIError` with one clear line."""
    location, _, attr = target.rpartition(":") if ":" in target else (target, "", "")
    attr = attr or DEFAULT_ATTRIBUTE
    module = _import(location, target)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CLIError(f"{location} has no attribute {attr!r} (target {target!r})") from None
    if not isinstance(obj, Graph):
        raise CLIError(
            f"{target} is a {type(obj).__name__}, not a graphtrace.Graph; "
            f"point at a Graph, e.g. `graph = Graph(start=MyNode)`"
        )
    return obj


def _import(location: str, target: str) -> Any:
    if not location:
        raise CLIError(f"bad target {target!r}: expected module:attr or path/to/file.py:attr")
    is_path = location.endswith(".py") or "/" in location or "\\" in location
    try:
        if is_path:
            path = Path(location)
            if not path.is_file():
                raise CLIError(f"no such file: {location} (target {target!r})")
            name = f"_graphtrace_target_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise CLIError(f"cannot import {location}: not a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            sys.path.insert(0, str(path.resolve().parent))
            spec.loader.exec_module(module)
            return module
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, "")  # like `python -m`: modules of the working directory
        return importlib.import_module(location)
    except CLIError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and location.startswith(exc.name):
            raise CLIError(f"no module named {location!r} (target {target!r})") from exc
        raise CLIError(f"importing {location} failed: {type(exc).__name__}: {exc}") from exc
    except SyntaxError as exc:
        raise CLIError(
            f"importing {location} failed: SyntaxError at {exc.filename}:{exc.lineno}: {exc.msg}"
        ) from exc
    except Exception as exc:
        raise CLIError(f"importing {location} failed: {type(exc).__name__}: {exc}") from exc


def parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """``-i key=value`` pairs; a value that parses as JSON is taken as JSON, else as text."""
    import json

    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CLIError(f"bad -i value {pair!r}: expected KEY=VALUE, e.g. -i ticket='refund'")
        if not key.isidentifier():
            raise CLIError(f"bad -i value {pair!r}: {key!r} is not a field name")
        try:
            inputs[key] = json.loads(raw)
        except ValueError:
            inputs[key] = raw
    return inputs
