from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from graphtrace import configure
from tests.otlp_validator import attributes, read_spans


class TraceDir:
    """A configured trace dir and the spans written to it, read back through the validator."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tracing = configure(path, flush_interval=0.01)

    def spans(self) -> list[dict[str, Any]]:
        assert self.tracing.flush(), "flush timed out"
        return read_spans(self.path)

    def finished(self) -> list[dict[str, Any]]:
        """Final spans only (pending records left out)."""
        return [s for s in self.spans() if not attributes(s).get("graphtrace.pending")]

    def by_name(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.finished() if s["name"] == name]


@pytest.fixture(autouse=True, scope="session")
def _no_ambient_forwarding() -> Iterator[None]:
    """A developer's shell may point OTLP at a real backend: the suite must not send it spans."""
    import os

    saved = {
        key: os.environ.pop(key)
        for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if key in os.environ
    }
    yield
    os.environ.update(saved)


@pytest.fixture
def traces(tmp_path: Path) -> Iterator[TraceDir]:
    td = TraceDir(tmp_path / "traces")
    yield td
    td.tracing.shutdown()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def decide(choice: str) -> Callable[[Any, Mapping[str, Any]], Any]:
    """A FakeLM respond hook that always picks ``choice`` when asked to decide."""

    def respond(messages: Any, schema: Mapping[str, Any]) -> Any:
        if "next" in schema.get("properties", {}):
            return {"next": choice}
        return None

    return respond
