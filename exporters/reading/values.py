"""Normalising what OTLP JSON writers disagree on: id spelling, enum names, attribute values."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, Final

from exporters.reading.schema import AnyValue, KeyValue

__all__ = [
    "STATUS_ERROR",
    "STATUS_OK",
    "STATUS_UNSET",
    "attribute_dict",
    "hex_id",
    "kind_number",
    "normalize_id",
    "plain_value",
    "status_number",
]

STATUS_UNSET: Final = 0
STATUS_OK: Final = 1
STATUS_ERROR: Final = 2

_STATUS_NAMES: Final = {
    "STATUS_CODE_UNSET": 0,
    "STATUS_CODE_OK": 1,
    "STATUS_CODE_ERROR": 2,
    "UNSET": 0,
    "OK": 1,
    "ERROR": 2,
}
_KIND_NAMES: Final = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}


_IDS: dict[str, str | None] = {}  # recent ids, checked: a trace's id comes once per span
_IDS_MAX: Final = 8192


def normalize_id(value: str | None, size: int) -> str | None:
    """Lowercase hex of a ``size``-byte id, or None when ``value`` is empty, zero or unreadable.

    Accepts hex in any case (the OTLP JSON encoding) and base64 (protobuf's default JSON
    mapping, which some tools emit).
    """
    if not value:
        return None
    if len(value) == size * 2:
        normal = _IDS.get(value, "")  # "": not seen yet (None is a known bad id)
        if normal != "":
            return normal
        if len(_IDS) >= _IDS_MAX:
            _IDS.clear()
        normal = _IDS[value] = hex_id(value, size)
        return normal
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != size or not any(raw):
        return None
    return raw.hex()


def hex_id(value: str, size: int) -> str | None:
    """:func:`normalize_id` of a ``size * 2``-character ``value`` without its cache of recent
    ids, which only costs for an id that comes once (a span's own)."""
    try:
        raw = bytes.fromhex(value)  # in C: the fast check that every character is hex
    except ValueError:
        return None
    # fromhex skips spaces, so a short result is no id; nor is an all-zero one
    if len(raw) != size or raw.count(0) == size:
        return None
    return value.lower()


def status_number(code: int | str | None) -> int:
    """The status code as 0 (unset), 1 (ok) or 2 (error)."""
    if isinstance(code, int):
        return code if code in (0, 1, 2) else STATUS_UNSET
    if isinstance(code, str):
        if code.isdigit():
            return status_number(int(code))
        return _STATUS_NAMES.get(code.upper(), STATUS_UNSET)
    return STATUS_UNSET


def kind_number(kind: int | str | None) -> int:
    """The span kind as its OTLP integer (INTERNAL = 1)."""
    if isinstance(kind, int):
        return kind
    if isinstance(kind, str):
        return int(kind) if kind.isdigit() else _KIND_NAMES.get(kind.upper(), 0)
    return 0


def plain_value(value: AnyValue | None) -> Any:
    """An AnyValue as a JSON-friendly Python value (bytes as their base64 text)."""
    if value is None:
        return None
    if value.stringValue is not None:
        return value.stringValue
    if value.boolValue is not None:
        return value.boolValue
    if value.intValue is not None:
        return value.intValue
    if value.doubleValue is not None:
        number = value.doubleValue
        # JSON has no NaN or infinity: keep them as the strings OTLP JSON uses for them.
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    if value.arrayValue is not None:
        return [plain_value(item) for item in value.arrayValue.values or ()]
    if value.kvlistValue is not None:
        return attribute_dict(value.kvlistValue.values)
    if value.bytesValue is not None:
        return value.bytesValue
    return None


def attribute_dict(pairs: list[KeyValue] | None) -> dict[str, Any]:
    """Attributes as a dict; a repeated key keeps its last value."""
    if not pairs:
        return {}
    return {pair.key: plain_value(pair.value) for pair in pairs}
