"""Where spans are forwarded: the endpoint URL and headers, read as the OpenTelemetry SDK does.

An explicit endpoint is a base URL (``http://collector:4318``) or the full traces URL; the
``/v1/traces`` path is added when missing. Without one, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
is used as it is and ``OTEL_EXPORTER_OTLP_ENDPOINT`` gets ``/v1/traces`` appended, as the SDK's
OTLP/HTTP exporter does. Headers not given here are left to the exporter, which reads
``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = [
    "ENDPOINT_ENV",
    "TRACES_ENDPOINT_ENV",
    "EndpointError",
    "parse_headers",
    "traces_url",
]

ENDPOINT_ENV: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
TRACES_PATH: Final = "/v1/traces"


class EndpointError(ValueError):
    """An endpoint or header setting that cannot be used; the message names the setting."""


def traces_url(endpoint: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The URL to POST spans to, or None when nothing asks for forwarding.

    ``environ`` is where the standard variables are looked up (pass ``{}`` to ignore them).
    """
    if endpoint is not None and endpoint.strip():
        return _with_traces_path(_checked(endpoint.strip(), "the OTLP endpoint"))
    if url := environ.get(TRACES_ENDPOINT_ENV, "").strip():
        return _checked(url, TRACES_ENDPOINT_ENV)
    if base := environ.get(ENDPOINT_ENV, "").strip():
        return _checked(base, ENDPOINT_ENV).removesuffix("/") + TRACES_PATH
    return None


def parse_headers(headers: Mapping[str, str] | str | None) -> dict[str, str] | None:
    """Headers as a dict; a string is read like ``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``,
    values URL-encoded). None stays None, so that the exporter reads the environment."""
    if headers is None:
        return None
    if isinstance(headers, Mapping):
        return {str(k): str(v) for k, v in headers.items()}
    out: dict[str, str] = {}
    for part in headers.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise EndpointError(f"OTLP headers: expected key=value, got {part.strip()!r}")
        out[unquote(key.strip())] = unquote(value.strip())
    return out


def _checked(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EndpointError(
            f"{what} must be an http(s) URL such as http://localhost:4318, got {url!r}"
        )
    return url


def _with_traces_path(url: str) -> str:
    if urlsplit(url).path.rstrip("/").endswith(TRACES_PATH):
        return url
    return url.rstrip("/") + TRACES_PATH
