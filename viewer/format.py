"""How times and durations are written everywhere in the viewer."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["duration", "iso_utc", "local_time", "ms"]


def duration(ns: int) -> str:
    """A duration for people: ``0.35 ms``, ``161.3 ms``, ``2.41 s``, ``3m05.2s``, ``2h07m``."""
    if ns < 10_000_000:
        return f"{ns / 1e6:.2f} ms"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f} ms"
    seconds = ns / 1e9
    if seconds < 60:
        return f"{seconds:.2f} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}m{rest:04.1f}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"


def ms(ns: int) -> float:
    """Nanoseconds as milliseconds, to the microsecond (the unit of the JSON outputs)."""
    return round(ns / 1e6, 3)


def iso_utc(ns: int) -> str:
    """ISO 8601 in UTC to the millisecond: ``2026-11-25T18:28:58.724Z``."""
    moment = datetime.fromtimestamp(ns // 1000 / 1e6, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_time(ns: int) -> str:
    """Local wall-clock time to the second, for tables: ``2026-11-25 18:28:58``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))
