"""When an HTTP LM backend tries again: which answers are transient, and how long to wait.

The defaults follow the official OpenAI SDK, so a graph behaves against a server the way code
written with the SDK does: three attempts in all, a back-off starting at 0.5 s that doubles up to
8 s with up to 25 % jitter taken off (so concurrent runs that failed together do not come back
together), and a server's ``Retry-After`` (or ``retry-after-ms``) honoured when it asks for at most
a minute.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "retry_after"]

# request timeout, lock timeout, rate limit; 5xx are added by RetryPolicy.retries_status
_RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded, jittered retries.

    Args:
        max_attempts: requests in all for one call, the first included (1 = never retry).
        backoff: the first wait, in seconds; it doubles with each failed attempt.
        max_backoff: the longest wait the doubling reaches.
        max_retry_after: the longest ``Retry-After`` honoured; a server asking for more gets
            the computed back-off instead, as the SDK does.
        jitter: the largest fraction, in [0, 1], taken off a computed back-off at random.
    """

    max_attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    jitter: float = 0.25
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(f"max_attempts must be an int, got {type(self.max_attempts).__name__}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not _finite_number(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        if not _finite_number(self.jitter) or not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter!r}")

    @staticmethod
    def retries_status(status: int, headers: Mapping[str, str]) -> bool:
        """Whether an HTTP error answer is worth another attempt.

        A server's ``x-should-retry`` header overrides the status, as with the SDK.
        """
        hint = headers.get("x-should-retry", "").strip().lower()
        if hint in ("true", "false"):
            return hint == "true"
        return status in _RETRY_STATUSES or status >= 500

    def delay(self, failed: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait after the ``failed``-th failed attempt (1-based)."""
        asked = retry_after(headers or {})
        if asked is not None and asked <= self.max_retry_after:
            return asked
        base = min(self.max_backoff, self.backoff * 2.0 ** (failed - 1))
        return base * (1.0 - self.jitter * self.rng())


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait a server asked for, in seconds, or None when it asked for none we can read.

    ``retry-after-ms`` (OpenAI's, more precise) wins over ``Retry-After``, which is either
    seconds or an HTTP date. ``headers`` must look names up case-insensitively (httpx's do).
    """
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP date is always GMT; one without a zone is not an HTTP date
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
