"""A ``requests.Session`` that remembers how its last request went (see :mod:`.failures`).

A module of its own so that importing graphtrace does not import ``requests``; only forwarding
does.
"""

from __future__ import annotations

from typing import Any

import requests

from exporters.forwarding.failures import ERRNO

__all__ = ["ObservedSession"]


class ObservedSession(requests.Session):
    """A session that remembers how its last request went: an HTTP error, a socket error."""

    def __init__(self) -> None:
        super().__init__()
        self.last: str | None = None

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        try:
            response = super().request(*args, **kwargs)
        except requests.Timeout:
            self.last = "timed out"
            raise
        except requests.ConnectionError as exc:
            match = ERRNO.search(str(exc))
            self.last = match.group(1).strip().lower() if match else "cannot connect"
            raise
        if response.status_code >= 400:
            self.last = f"HTTP {response.status_code} {response.reason or ''}".strip()
        else:
            self.last = None
        return response
