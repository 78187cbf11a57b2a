"""What each endpoint was sent, remembered under ``TRACE_DIR/.push/`` so nothing is sent twice.

OTLP gives no way to ask a backend which spans it already has, so graphtrace keeps its own
account: one JSON-lines file per endpoint, ``.push/<host>-<port>-<hash>.jsonl``, with a line
per run the endpoint got whole:

- ``{"trace": ID, "how": "live"}`` when the forwarder delivered the run's root span (spans of
  a trace reach the forwarder before their run span ends, and go out in order, so every other
  span of the run was by then delivered or recorded as lost in a ``forward.lost`` record);
- ``{"trace": ID, "how": "push", "digest": D, "spans": N}`` when ``graphtrace push`` sent it;
  the digest covers the span ids, ends and statuses, so a run whose files changed is re-sent.

Several processes may append to one ledger: each line is one ``write`` in append mode. A line
that cannot be read is skipped. Deleting the directory makes ``push`` send everything again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

__all__ = ["LEDGER_DIR", "Known", "Ledger"]

LEDGER_DIR: Final = ".push"


@dataclass(slots=True)
class Known:
    """What the ledger says about one trace at one endpoint."""

    live: bool = False  # its run span went out through the live forwarder
    digest: str | None = None  # of the last push, if any
    pushed_at: float | None = None


class Ledger:
    """The ledger of one endpoint in one trace dir."""

    def __init__(self, trace_dir: Path, endpoint: str) -> None:
        self.endpoint = endpoint
        self.path = trace_dir / LEDGER_DIR / f"{_slug(endpoint)}.jsonl"

    def record_live(self, trace_ids: Iterable[str]) -> None:
        """Remember runs whose run span the live forwarder delivered."""
        self._append([{"trace": t, "how": "live"} for t in trace_ids])

    def record_push(self, pushed: Iterable[tuple[str, str, int]]) -> None:
        """Remember runs ``push`` delivered, as ``(trace_id, digest, spans)``."""
        now = round(time.time(), 3)
        self._append(
            [{"trace": t, "how": "push", "digest": d, "spans": n, "at": now} for t, d, n in pushed]
        )

    def load(self) -> dict[str, Known]:
        """Every trace the ledger knows, by trace id (empty when there is no ledger yet)."""
        out: dict[str, Known] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return out
        for line in data.splitlines():
            try:
                entry = json.loads(line)
                trace = entry["trace"]
                how = entry["how"]
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line: the rest still counts
            if not isinstance(trace, str):
                continue
            known = out.setdefault(trace, Known())
            if how == "live":
                known.live = True
            elif how == "push" and isinstance(entry.get("digest"), str):
                known.digest = entry["digest"]
                at = entry.get("at")
                known.pushed_at = at if isinstance(at, int | float) else None
        return out

    def _append(self, entries: list[dict[str, object]]) -> None:
        if not entries:
            return
        header = not self.path.exists()
        lines = [json.dumps(e, separators=(",", ":")) for e in entries]
        if header:  # says which endpoint the file is for, to a person reading it
            lines.insert(0, json.dumps({"endpoint": self.endpoint, "trace": None, "how": None}))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)  # one write: lines of concurrent writers do not interleave
        finally:
            os.close(fd)


def _slug(endpoint: str) -> str:
    """``127.0.0.1-4318-1a2b3c4d5e6f``: readable, and distinct per full URL."""
    parts = urlsplit(endpoint)
    readable = re.sub(r"[^A-Za-z0-9.]+", "-", parts.netloc).strip("-") or "endpoint"
    return f"{readable}-{hashlib.sha256(endpoint.encode()).hexdigest()[:12]}"
