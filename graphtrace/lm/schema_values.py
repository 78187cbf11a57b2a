"""Readable values that validate against a JSON Schema, for :class:`~graphtrace.lm.fake.FakeLM`.

:func:`value_for_schema` walks a JSON Schema (every shape pydantic v2's ``model_json_schema()``
and ``TypeAdapter(...).json_schema()`` produce, and the common hand-written ones) and builds a
value that validates against it: ``$ref`` into ``$defs``, ``anyOf``/``oneOf``/``allOf``,
``enum``/``const``, string formats and lengths, numeric bounds and ``multipleOf``, arrays and
tuples, objects and dicts. Strings are made of plain words, numbers stay small, so the output of a
fake model reads like a (dull) answer rather than noise. Everything is drawn from the ``rng``
passed in, so the same RNG state always gives the same value.

Limits, all best effort and never silent crashes: a ``pattern`` the built-in sampler cannot satisfy
yields plain words; ``oneOf`` branches that overlap may produce a value matching several; formats
the schema cannot express (pydantic's ``NaiveDatetime``, ``FutureDate``, ``dict[int, V]`` keys)
follow the JSON Schema, not the Python type.

Example::

    >>> import random
    >>> value_for_schema({"type": "integer", "minimum": 3, "maximum": 3}, random.Random(0))
    3
    >>> sample_json({"type": "array", "items": {"const": "x"}, "minItems": 2, "maxItems": 2}, 1)
    '["x", "x"]'
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import ipaddress
import json
import math
import random
import re
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, TypeAlias, TypeGuard
from urllib.parse import unquote

from graphtrace.lm.digest_draws import DigestDraws

try:  # the stdlib regex parser is private; every use is guarded and its output re-checked
    from re import _constants as _sre_c  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - only if CPython moves it again
    _sre_c = None  # type: ignore[assignment]
    _sre_parse = None  # type: ignore[assignment]

__all__ = ["sample_json", "value_for_schema"]

_WORDS: Final[tuple[str, ...]] = (
    "amber", "anchor", "apple", "arrow", "atlas", "autumn", "badge", "basil", "beacon", "birch",
    "blue", "bold", "bright", "brook", "calm", "canyon", "cedar", "clear", "clever", "cloud",
    "coral", "cosy", "crisp", "daisy", "dawn", "delta", "dune", "eager", "echo", "ember",
    "fable", "falcon", "fern", "field", "forest", "fresh", "frost", "gentle", "glade", "golden",
    "granite", "green", "harbor", "hazel", "honest", "iris", "island", "ivory", "jade", "jolly",
    "juniper", "kind", "lake", "lantern", "lemon", "light", "linen", "lively", "lunar", "maple",
    "meadow", "mellow", "mint", "misty", "moss", "noble", "north", "oak", "ocean", "olive",
    "orbit", "pearl", "pebble", "pine", "plain", "plum", "polar", "prairie", "quick", "quiet",
    "rapid", "raven", "ridge", "river", "robin", "rose", "ruby", "rustic", "sage", "salt",
    "sandy", "silver", "simple", "slate", "solar", "spring", "steady", "stone", "storm", "summit",
    "sunny", "swift", "tide", "timber", "topaz", "tulip", "velvet", "vivid", "warm", "willow",
    "winter", "wise", "yarrow", "zephyr",
)  # fmt: skip
_LETTERS: Final = "abcdefghijklmnopqrstuvwxyz"
_DIGITS: Final = "0123456789"
# characters tried for negated classes ([^...]) and "not a digit / not a word char" categories
_CHAR_POOL: Final = _LETTERS + _LETTERS.upper() + _DIGITS + " -_.,:/@"

_NULL_CHANCE: Final = 0.15  # how often an optional value comes out as null
_OPTIONAL_CHANCE: Final = 0.5  # how often an optional object property is filled
_DEFAULT_CHANCE: Final = 0.1
_EXAMPLE_CHANCE: Final = 0.25
# a model met this many times on one path is deep inside its own recursion: from there on,
# unions take their cheapest branch (null), arrays their minimum length, objects their required
# properties, so recursive models stay a few levels deep
_DEEP_REPEAT: Final = 3
_DEEP_REFS: Final = 8  # the same for long chains of distinct models
_DEEP_LEVEL: Final = 16  # same for plain container nesting
_MAX_REFS: Final = 48  # past this, the schema cannot produce a finite value
_MAX_LEVEL: Final = 96
_MAX_PATTERN_OUTPUT: Final = 4096
_EPOCH: Final = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_SPAN_SECONDS: Final = 6 * 365 * 24 * 3600

_LOWER_BOUNDS: Final = frozenset(
    {"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains"}
)
_UPPER_BOUNDS: Final = frozenset(
    {"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains"}
)
_UNION_NOISE: Final = frozenset({"default", "examples", "title", "description", "discriminator"})
_OBJECT_KEYS: Final = (
    "properties", "additionalProperties", "patternProperties", "required", "propertyNames",
    "minProperties", "maxProperties",
)  # fmt: skip
_ARRAY_KEYS: Final = ("items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains")
_STRING_KEYS: Final = ("minLength", "maxLength", "pattern", "format", "contentMediaType")
_NUMBER_KEYS: Final = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_MISSING: Final = object()

_Path: TypeAlias = tuple[str, ...]


def value_for_schema(
    schema: Mapping[str, Any] | bool, rng: random.Random, *, root: Mapping[str, Any] | None = None
) -> Any:
    """Return a JSON-compatible value that validates against ``schema``.

    ``root`` is the document ``$ref`` pointers resolve against (the schema holding ``$defs``); it
    defaults to ``schema`` itself. The result depends only on the schema and the state of ``rng``.
    Raises ``ValueError`` for schemas that admit no value this generator can find (``false``, an
    empty ``enum``, a ``$ref`` that does not resolve, a model that requires itself forever).

    Example::

        >>> import random
        >>> from pydantic import BaseModel
        >>> class Pet(BaseModel):
        ...     name: str
        ...     age: int
        >>> value = value_for_schema(Pet.model_json_schema(), random.Random(7))
        >>> Pet.model_validate(value).age >= 0
        True
    """
    if root is None:
        flat = _flat_record(schema)
        if flat is not None:
            return _flat_values(rng, flat)
    return _Generator(rng, schema if root is None else root).gen(schema, (), 0)


def _flat_values(
    rng: random.Random, fields: Sequence[tuple[str, Sequence[str] | None]]
) -> dict[str, Any]:
    """What :meth:`_Generator.gen` makes of a :func:`_flat_record` schema, drawing the same bits
    in the same order: ``randint`` and ``choice`` as ``random.Random`` implements them (its
    ``_randbelow``: ``getrandbits(n.bit_length())`` until below ``n``), without their three
    Python calls per draw. tests/test_schema_values.py checks the two agree."""
    if type(rng) is DigestDraws:
        return _flat_values_from_digest(rng, fields)
    getrandbits = rng.getrandbits
    words = _WORDS
    count = len(words)
    bits = count.bit_length()
    out: dict[str, Any] = {}
    for name, options in fields:
        if options is None:  # _Generator._text(0, None): 1 to 4 words
            n = getrandbits(3)  # randint(1, 4)
            while n >= 4:
                n = getrandbits(3)
            picked = []
            for _ in range(n + 1):
                index = getrandbits(bits)
                while index >= count:
                    index = getrandbits(bits)
                picked.append(words[index])
            out[name] = " ".join(picked)
        else:  # rng.choice(options)
            size = len(options)
            width = size.bit_length()
            index = getrandbits(width)
            while index >= size:
                index = getrandbits(width)
            out[name] = options[index]
    return out


def _flat_values_from_digest(
    draws: DigestDraws, fields: Sequence[tuple[str, Sequence[str] | None]]
) -> dict[str, Any]:
    """:func:`_flat_values` for FakeLM's generator, reading its bits in place: the same draws
    as its ``getrandbits``, without a method call for each (the reply's main cost)."""
    bits, left = draws.unread()
    words = _WORDS
    count = len(words)
    width = count.bit_length()
    mask = (1 << width) - 1
    out: dict[str, Any] = {}
    for name, options in fields:
        if options is None:  # 1 to 4 words, as above
            n = 4
            while n >= 4:
                if left < 3:
                    bits, left = draws.more(bits, left, 3)
                n = bits & 7
                bits >>= 3
                left -= 3
            picked = []
            for _ in range(n + 1):
                index = count
                while index >= count:
                    if left < width:
                        bits, left = draws.more(bits, left, width)
                    index = bits & mask
                    bits >>= width
                    left -= width
                picked.append(words[index])
            out[name] = " ".join(picked)
        else:
            size = len(options)
            choice_width = size.bit_length()
            index = size
            while index >= size:
                if left < choice_width:
                    bits, left = draws.more(bits, left, choice_width)
                index = bits & ((1 << choice_width) - 1)
                bits >>= choice_width
                left -= choice_width
            out[name] = options[index]
    draws.resume(bits, left)
    return out


def sample_json(schema: Mapping[str, Any] | bool, seed: int | str) -> str:
    """Return JSON text for a value of ``schema``, the same text for the same ``seed``.

    String seeds are hashed by :class:`random.Random` with SHA-512, so they are stable across
    processes (unlike ``hash()``).

    Example::

        >>> sample_json({"enum": ["yes", "no"]}, seed="ticket-1") in ('"yes"', '"no"')
        True
    """
    return json.dumps(value_for_schema(schema, random.Random(seed)), ensure_ascii=False)


class _Unsupported(Exception):
    """A regex construct the sampler does not handle; the caller falls back to plain words."""


class _Generator:
    def __init__(self, rng: random.Random, root: Mapping[str, Any] | bool) -> None:
        self.rng = rng
        self.root = root if isinstance(root, Mapping) else {}

    # -- dispatch -------------------------------------------------------------------------------

    def gen(
        self, schema: Mapping[str, Any] | bool, path: _Path, level: int, force: Sequence[str] = ()
    ) -> Any:
        if len(path) > _MAX_REFS or level > _MAX_LEVEL:
            raise ValueError(
                "schema recursion too deep to produce a finite value "
                "(does a model require itself with no optional way out?)"
            )
        if schema is True:
            return self._any()
        if schema is False:
            raise ValueError("the schema `false` admits no value")
        if not isinstance(schema, Mapping):
            raise TypeError(f"a JSON Schema is a mapping or a bool, not {type(schema).__name__}")
        schema, path = self._resolve(schema, path)
        deep = _is_deep(path, level)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if "enum" in schema:
            options = list(schema["enum"])
            if not options:
                raise ValueError("an empty `enum` admits no value")
            return copy.deepcopy(self.rng.choice(options))
        known = self._known_value(schema)
        if known is not _MISSING:
            return known
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return self._union(schema, key, path, level, deep)
        kind = self._pick_type(schema, deep)
        if kind == "null":
            return None
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "string":
            return self._string(schema, path, level)
        if kind == "array":
            return self._array(schema, path, level, deep)
        if kind == "object":
            return self._object(schema, path, level, deep, force)
        if kind == "any":
            return self._any()
        raise ValueError(f"unknown JSON Schema type {kind!r}")

    def _resolve(self, schema: Mapping[str, Any], path: _Path) -> tuple[Mapping[str, Any], _Path]:
        """Inline ``$ref`` and ``allOf`` so the rest of the generator sees one flat schema;
        ``path`` grows by every ``$ref`` followed, which is how recursion is noticed."""
        for _ in range(_MAX_REFS):
            if "$ref" in schema:
                ref = schema["$ref"]
                target = _deref(self.root, ref)
                if target is False:
                    raise ValueError(f"$ref {ref!r} points at `false`")
                target = {} if target is True else target
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = _merge(target, rest) if rest else target
                path = (*path, str(ref))
                continue
            if "allOf" in schema:
                merged: Mapping[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
                longest = path
                for part in schema["allOf"]:
                    if part is True:
                        continue
                    if part is False or not isinstance(part, Mapping):
                        raise ValueError("an `allOf` holding `false` admits no value")
                    resolved, part_path = self._resolve(part, path)
                    merged = _merge(merged, resolved)
                    if len(part_path) > len(longest):
                        longest = part_path
                schema, path = merged, longest
                continue
            return schema, path
        raise ValueError("schema recursion too deep: a chain of $ref/allOf never ends")

    def _known_value(self, schema: Mapping[str, Any]) -> Any:
        """An author-given example or default, sometimes: they read better than generated text."""
        examples = schema.get("examples")
        if isinstance(examples, list) and examples and self.rng.random() < _EXAMPLE_CHANCE:
            example = self.rng.choice(examples)
            if _validates(example, schema, self.root):
                return copy.deepcopy(example)
        if "default" in schema and self.rng.random() < _DEFAULT_CHANCE:
            # pydantic does not validate defaults, so `x: str = None` must not leak a null
            if _validates(schema["default"], schema, self.root):
                return copy.deepcopy(schema["default"])
        return _MISSING

    def _union(
        self, schema: Mapping[str, Any], key: str, path: _Path, level: int, deep: bool
    ) -> Any:
        branches = schema[key]
        if not isinstance(branches, list) or not branches:
            raise ValueError(f"`{key}` must be a non-empty list of schemas")
        rest = {k: v for k, v in schema.items() if k != key and k not in _UNION_NOISE}
        disc = schema.get("discriminator")
        tag = disc.get("propertyName") if isinstance(disc, Mapping) else None
        nulls = [i for i, b in enumerate(branches) if _is_null(b)]
        others = [i for i in range(len(branches)) if i not in nulls]
        if any(_declares(branches[i], "number", "integer") for i in others):
            # pydantic's Decimal is anyOf[number, string] but only takes numeric strings
            others = [i for i in others if not _plain_string(branches[i])] or others

        if deep:
            first = min(range(len(branches)), key=lambda i: _cost(branches[i]))
        elif nulls and (not others or self.rng.random() < _NULL_CHANCE):
            first = self.rng.choice(nulls)
        else:
            first = self.rng.choice(others)
        # oneOf must match exactly one branch: overlapping branches (number vs integer) get
        # further tries, each branch in turn, then a second round of fresh values
        exclusive = key == "oneOf" and tag is None
        order = [first]
        if exclusive:
            rest_order = [i for i in (*others, *nulls) if i != first]
            self.rng.shuffle(rest_order)
            order = [first, *rest_order] * 2
        value: Any = None
        for index in order:
            branch = _merge(rest, branches[index]) if rest else branches[index]
            value = self.gen(branch, path, level, force=(tag,) if tag else ())
            if tag and isinstance(value, dict) and tag not in value:
                # a discriminated union needs the tag in the input even when it has a default
                label = _mapping_label(disc, branches[index])
                if label is not None:
                    value[tag] = label
            if not exclusive:
                return value
            matching = sum(
                _validates(value, _merge(rest, b) if rest else b, self.root) for b in branches
            )
            if matching == 1:
                return value
        return value

    def _pick_type(self, schema: Mapping[str, Any], deep: bool) -> str:
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared
        if isinstance(declared, list) and declared:
            concrete = [t for t in declared if t != "null"]
            if "null" in declared and (deep or not concrete or self.rng.random() < _NULL_CHANCE):
                return "null"
            return self.rng.choice(concrete)
        if any(k in schema for k in _OBJECT_KEYS):
            return "object"
        if any(k in schema for k in _ARRAY_KEYS):
            return "array"
        if any(k in schema for k in _STRING_KEYS):
            return "string"
        if any(k in schema for k in _NUMBER_KEYS):
            return "number"
        return "any"

    def _any(self) -> Any:
        """A value for an unconstrained schema (``{}``, ``true``, ``Any``): mostly words."""
        roll = self.rng.random()
        if roll < 0.55:
            return self._text(0, None)
        if roll < 0.8:
            return self.rng.randint(0, 100)
        if roll < 0.9:
            return self.rng.random() < 0.5
        return round(self.rng.uniform(0, 100), 2)

    # -- numbers --------------------------------------------------------------------------------

    def _integer(self, schema: Mapping[str, Any]) -> int:
        lo, lo_x, hi, hi_x = _bounds(schema)
        lo_i = None if lo is None else (math.floor(lo) + 1 if lo_x else math.ceil(lo))
        hi_i = None if hi is None else (math.ceil(hi) - 1 if hi_x else math.floor(hi))
        step = 1
        multiple = schema.get("multipleOf")
        if _is_number(multiple) and multiple > 0:
            # integers that are multiples of p/q (reduced) are exactly the multiples of p
            step = Fraction(str(multiple)).numerator
        a, b = _window(lo_i, hi_i)
        a, b = math.ceil(a), math.floor(b)
        k_lo, k_hi = -(-a // step), b // step
        if k_lo > k_hi and lo_i is not None:
            # the readable window holds no multiple; take the first ones above the minimum
            k_lo = -(-lo_i // step)
            k_hi = k_lo if hi_i is None else min(k_lo + 10, hi_i // step)
        if k_lo > k_hi:
            return lo_i if lo_i is not None else (hi_i if hi_i is not None else 0)
        return self.rng.randint(k_lo, k_hi) * step

    def _number(self, schema: Mapping[str, Any]) -> float:
        lo, lo_x, hi, hi_x = _bounds(schema)

        def fits(v: float) -> bool:
            above = lo is None or (v > lo if lo_x else v >= lo)
            below = hi is None or (v < hi if hi_x else v <= hi)
            return above and below

        a, b = _window(lo, hi)
        multiple = schema.get("multipleOf")
        if _is_number(multiple) and multiple > 0:
            k_lo, k_hi = math.ceil(a / multiple), math.floor(b / multiple)
            for _ in range(4):
                if k_lo > k_hi:
                    break
                v = _tidy(self.rng.randint(k_lo, k_hi) * multiple, multiple)
                if fits(v):
                    return v
        if a <= b:
            for digits in (2, 4, 8):
                v = round(self.rng.uniform(a, b), digits)
                if fits(v):
                    return float(v)
            mid = (a + b) / 2
            if fits(mid):
                return float(mid)
        return float(a)

    # -- strings --------------------------------------------------------------------------------

    def _string(self, schema: Mapping[str, Any], path: _Path, level: int) -> str:
        min_len = _int_or(schema.get("minLength"), 0)
        max_len = _int_or(schema.get("maxLength"), None)

        def fits(s: str) -> bool:
            return len(s) >= min_len and (max_len is None or len(s) <= max_len)

        if "contentSchema" in schema or schema.get("contentMediaType") == "application/json":
            inner = schema.get("contentSchema", True)
            return json.dumps(self.gen(inner, path, level + 1), ensure_ascii=False)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            return self._pattern_string(pattern, min_len, max_len)
        fmt = schema.get("format")
        maker = _FORMATS.get(fmt) if isinstance(fmt, str) else None
        if maker is not None:
            for _ in range(3):
                s = maker(self)
                if fits(s):
                    return s
        return self._text(min_len, max_len)

    def _word(self) -> str:
        return self.rng.choice(_WORDS)

    def _text(self, min_len: int, max_len: int | None) -> str:
        words = [self._word() for _ in range(self.rng.randint(1, 4))]
        text = " ".join(words)
        while len(text) < min_len:
            text += " " + self._word()
        if max_len is not None and len(text) > max_len:
            text = text[: max(max_len, 0)].rstrip()
        if len(text) < min_len:
            # only reachable when stripping a trailing space cut below the minimum
            text += "e" * (min_len - len(text))
        return text

    def _pattern_string(self, pattern: str, min_len: int, max_len: int | None) -> str:
        regex = _compile(pattern)
        if regex is None:
            return self._text(min_len, max_len)

        def fits(s: str) -> bool:
            long_enough = len(s) >= min_len and (max_len is None or len(s) <= max_len)
            return long_enough and regex.search(s) is not None

        # readable candidates first: plenty of patterns ("^[a-z]+$", "\\w") accept plain words
        for candidate in (
            *(self._text(min_len, max_len) for _ in range(2)),
            *(self._word() for _ in range(4)),
        ):
            if fits(candidate):
                return candidate
        for _ in range(12):
            sample = self._regex_sample(pattern, extra=3, greedy=False)
            if sample is None:
                return self._text(min_len, max_len)
            if fits(sample):
                return sample
        # length bounds the random draws missed: repeat every quantifier `extra` times more than
        # its minimum, which makes the length grow with `extra`, and bisect on it
        low, high = 0, _MAX_PATTERN_OUTPUT
        while low <= high:
            extra = (low + high) // 2
            sample = self._regex_sample(pattern, extra=extra, greedy=True)
            if sample is None:
                high = extra - 1
            elif fits(sample):
                return sample
            elif len(sample) < min_len:
                low = extra + 1
            elif max_len is not None and len(sample) > max_len:
                high = extra - 1
            else:
                break  # the right length but no match: more bisecting will not help
        return self._text(min_len, max_len)

    def _regex_sample(self, pattern: str, extra: int, greedy: bool) -> str | None:
        if _sre_parse is None:
            return None
        try:
            tree = _parse(pattern)
            out: list[str] = []
            self._emit(tree, out, {}, extra, greedy)
        except (_Unsupported, re.error, RecursionError, ValueError, TypeError):
            return None
        return "".join(out)

    def _emit(
        self,
        items: Iterable[Any],
        out: list[str],
        groups: dict[int, str],
        extra: int,
        greedy: bool,
    ) -> None:
        c = _sre_c
        for op, arg in items:
            if len(out) > _MAX_PATTERN_OUTPUT:
                raise _Unsupported("pattern output too long")
            if op == c.LITERAL:
                out.append(chr(arg))
            elif op == c.NOT_LITERAL:
                out.append(self.rng.choice([ch for ch in _CHAR_POOL if ord(ch) != arg]))
            elif op == c.ANY:
                out.append(self.rng.choice(_LETTERS))
            elif op == c.IN:
                out.append(self._char_in(arg))
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
                low, high, sub = arg
                top = low + extra if high == c.MAXREPEAT else min(high, low + extra)
                count = top if greedy else self.rng.randint(low, max(low, top))
                for _ in range(count):
                    self._emit(sub, out, groups, extra, greedy)
            elif op == c.SUBPATTERN:
                group, _add_flags, _del_flags, sub = arg
                start = len(out)
                self._emit(sub, out, groups, extra, greedy)
                if group is not None:
                    groups[group] = "".join(out[start:])
            elif op == getattr(c, "ATOMIC_GROUP", None):
                self._emit(arg, out, groups, extra, greedy)
            elif op == c.BRANCH:
                self._emit(self.rng.choice(arg[1]), out, groups, extra, greedy)
            elif op == c.GROUPREF:
                out.append(groups.get(arg, ""))
            elif op == c.GROUPREF_EXISTS:
                group, yes, no = arg
                self._emit(yes if group in groups else (no or ()), out, groups, extra, greedy)
            elif op == c.CATEGORY:
                out.append(self._char_category(arg))
            elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
                continue  # anchors and lookarounds: the final regex check decides
            else:
                raise _Unsupported(str(op))

    def _char_in(self, items: Sequence[tuple[Any, Any]]) -> str:
        c = _sre_c
        if any(op == c.NEGATE for op, _ in items):
            allowed = [ch for ch in _CHAR_POOL if not _in_class(ch, items)]
            if not allowed:
                raise _Unsupported("negated class excludes every pooled character")
            return self.rng.choice(allowed)
        op, arg = self.rng.choice(list(items))
        if op == c.LITERAL:
            return chr(arg)
        if op == c.RANGE:
            low, high = arg
            printable = (max(low, 33), min(high, 126))
            if printable[0] <= printable[1]:
                return chr(self.rng.randint(*printable))
            return chr(self.rng.randint(low, min(high, low + 256)))
        if op == c.CATEGORY:
            return self._char_category(arg)
        raise _Unsupported(str(op))

    def _char_category(self, category: Any) -> str:
        c = _sre_c
        if category == c.CATEGORY_DIGIT:
            return self.rng.choice(_DIGITS)
        if category == c.CATEGORY_SPACE:
            return " "
        if category == c.CATEGORY_WORD:
            return self.rng.choice(_LETTERS + _DIGITS)
        if category in (c.CATEGORY_NOT_DIGIT, c.CATEGORY_NOT_SPACE):
            return self.rng.choice(_LETTERS)
        if category == c.CATEGORY_NOT_WORD:
            return self.rng.choice("-.,: ")
        raise _Unsupported(str(category))

    # -- formats --------------------------------------------------------------------------------

    def _moment(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(seconds=self.rng.randrange(_SPAN_SECONDS))

    def _fmt_datetime(self) -> str:
        return self._moment().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _fmt_date(self) -> str:
        return self._moment().strftime("%Y-%m-%d")

    def _fmt_time(self) -> str:
        return self._moment().strftime("%H:%M:%SZ")  # RFC 3339 full-time carries an offset

    def _fmt_duration(self) -> str:
        r = self.rng
        return r.choice(
            (
                f"PT{r.randint(1, 59)}M",
                f"PT{r.randint(1, 23)}H{r.randint(1, 59)}M",
                f"P{r.randint(1, 30)}D",
                f"P{r.randint(1, 9)}DT{r.randint(1, 23)}H",
                f"PT{r.randint(1, 59)}M{r.randint(1, 59)}S",
            )
        )

    def _fmt_email(self) -> str:
        return f"{self._word()}.{self._word()}@example.com"

    def _fmt_uri(self) -> str:
        return f"https://example.com/{self._word()}/{self._word()}"

    def _fmt_hostname(self) -> str:
        return f"{self._word()}-{self._word()}.example.com"

    def _fmt_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _octets(self) -> str:
        return f"10.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}"

    def _fmt_ipv4(self) -> str:
        return f"{self._octets()}.{self.rng.randint(1, 254)}"

    def _fmt_ipv6(self) -> str:
        return f"2001:db8::{self.rng.randint(1, 0xFFFF):x}"

    def _fmt_ipv4_network(self) -> str:
        return f"{self._octets()}.0/24"

    def _fmt_ipv6_network(self) -> str:
        return f"2001:db8:{self.rng.randint(1, 0xFFFF):x}::/48"

    def _fmt_ipv4_interface(self) -> str:
        return f"{self._fmt_ipv4()}/24"

    def _fmt_ipv6_interface(self) -> str:
        return f"{self._fmt_ipv6()}/64"

    def _fmt_base64(self) -> str:
        return base64.b64encode(self._text(1, None).encode()).decode()

    def _fmt_path(self) -> str:
        return f"data/{self._word()}/{self._word()}.txt"

    def _fmt_pointer(self) -> str:
        return f"/{self._word()}/{self._word()}"

    def _fmt_regex(self) -> str:
        return f"^{self._word()}"

    def _fmt_card(self) -> str:
        return "4242424242424242"  # passes the Luhn check pydantic-extra-types applies

    def _fmt_words(self) -> str:
        return self._text(1, None)

    # -- containers -----------------------------------------------------------------------------

    def _array(self, schema: Mapping[str, Any], path: _Path, level: int, deep: bool) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = list(prefix) if isinstance(prefix, list) else []
        low = _int_or(schema.get("minItems"), 0)
        high = _int_or(schema.get("maxItems"), None)
        if items is False:
            high = len(prefix) if high is None else min(high, len(prefix))
        base = max(low, len(prefix))
        if deep:
            count = low
        elif base == 0:
            count = 0 if self.rng.random() < 0.1 else self.rng.randint(1, 3)
        else:
            count = self.rng.randint(base, base + (0 if prefix else 2))
        if high is not None:
            count = min(count, high)
        count = max(count, low)

        unique = schema.get("uniqueItems") is True
        out: list[Any] = []
        seen: set[str] = set()
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            for _ in range(16 if unique else 1):
                value = self.gen(sub, path, level + 1)
                if not unique or _canon(value) not in seen:
                    break
            else:
                break  # the item schema has run out of distinct values
            seen.add(_canon(value))
            out.append(value)
        contains = schema.get("contains")
        if contains is not None and not any(_validates(v, contains, self.root) for v in out):
            extra = self.gen(contains, path, level + 1)
            if out and high is not None and len(out) >= high:
                out[-1] = extra
            else:
                out.append(extra)
        return out

    def _object(
        self,
        schema: Mapping[str, Any],
        path: _Path,
        level: int,
        deep: bool,
        force: Sequence[str],
    ) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = [r for r in schema.get("required", ()) if isinstance(r, str)]
        patterns = schema.get("patternProperties")
        patterns = patterns if isinstance(patterns, Mapping) else {}
        # pydantic's dict[constr(pattern=...), V] omits `additionalProperties: false` yet rejects
        # other keys, so with patternProperties and no explicit rule only pattern keys are made
        extra_schema = schema.get("additionalProperties", not patterns)
        names_schema = schema.get("propertyNames")
        out: dict[str, Any] = {}
        for name, sub in props.items():
            wanted = (
                name in required
                or name in force
                or _is_const(sub)
                or (not deep and self.rng.random() < _OPTIONAL_CHANCE)
            )
            if wanted:
                out[name] = self.gen(sub, path, level + 1)
        for name in required:
            if name not in out:  # required but not described: any value its key admits
                out[name] = self.gen(
                    _pattern_schema(name, patterns) or _open(extra_schema), path, level + 1
                )
        low = _int_or(schema.get("minProperties"), 0)
        for name, sub in props.items():
            if len(out) >= low:
                break
            if name not in out:  # minProperties: declared properties before invented ones
                out[name] = self.gen(sub, path, level + 1)

        high = _int_or(schema.get("maxProperties"), None)
        is_map = not props and (patterns or extra_schema is not False)
        target = len(out)
        if is_map and not deep:
            target += self.rng.randint(1, 3)
        target = max(target, low)
        if high is not None:
            target = min(target, high)

        for _ in range(8 * max(target, 1)):
            if len(out) >= target:
                break
            if patterns and (extra_schema is False or self.rng.random() < 0.5):
                pattern = self.rng.choice(list(patterns))
                key = self._pattern_string(pattern, 1, None)
                sub = patterns[pattern]
            elif extra_schema is not False:
                key = self._key(names_schema, path, level)
                if _pattern_schema(key, patterns) is not None:
                    continue  # such a key would also have to satisfy the pattern's schema
                sub = _open(extra_schema)
            else:
                break
            if key in out or key in props:
                continue
            if names_schema is not None and not _validates(key, names_schema, self.root):
                continue
            out[key] = self.gen(sub, path, level + 1)
        return out

    def _key(self, names_schema: Any, path: _Path, level: int) -> str:
        if isinstance(names_schema, Mapping) and names_schema:
            typed = dict(names_schema)
            if not {"type", "enum", "const", "$ref", "anyOf", "oneOf", "allOf"} & typed.keys():
                typed["type"] = "string"  # property names are strings whatever else is said
            value = self.gen(typed, path, level + 1)
            return value if isinstance(value, str) else json.dumps(value)
        if self.rng.random() < 0.3:
            return f"{self._word()}_{self._word()}"
        return self._word()


_FORMATS: Final[dict[str, Callable[[_Generator], str]]] = {
    "date-time": _Generator._fmt_datetime,
    "date": _Generator._fmt_date,
    "time": _Generator._fmt_time,
    "duration": _Generator._fmt_duration,
    "email": _Generator._fmt_email,
    "idn-email": _Generator._fmt_email,
    "uri": _Generator._fmt_uri,
    "url": _Generator._fmt_uri,
    "iri": _Generator._fmt_uri,
    "uri-reference": _Generator._fmt_uri,
    "iri-reference": _Generator._fmt_uri,
    "uri-template": _Generator._fmt_uri,
    "multi-host-uri": _Generator._fmt_uri,
    "hostname": _Generator._fmt_hostname,
    "idn-hostname": _Generator._fmt_hostname,
    "uuid": _Generator._fmt_uuid,
    "ipv4": _Generator._fmt_ipv4,
    "ipvanyaddress": _Generator._fmt_ipv4,
    "ipv6": _Generator._fmt_ipv6,
    "ipv4network": _Generator._fmt_ipv4_network,
    "ipvanynetwork": _Generator._fmt_ipv4_network,
    "ipv6network": _Generator._fmt_ipv6_network,
    "ipv4interface": _Generator._fmt_ipv4_interface,
    "ipvanyinterface": _Generator._fmt_ipv4_interface,
    "ipv6interface": _Generator._fmt_ipv6_interface,
    "base64": _Generator._fmt_base64,
    "base64url": _Generator._fmt_base64,
    "binary": _Generator._fmt_words,
    "password": _Generator._fmt_words,
    "path": _Generator._fmt_path,
    "json-pointer": _Generator._fmt_pointer,
    "regex": _Generator._fmt_regex,
    "payment-card-number": _Generator._fmt_card,
}


# -- helpers shared by the generator and the checker ----------------------------------------------


_NOTES: Final = frozenset({"title", "description"})
_FLAT_RECORDS: dict[int, tuple[object, tuple[tuple[str, tuple[str, ...] | None], ...] | None]] = {}


def _flat_record(schema: Any) -> tuple[tuple[str, tuple[str, ...] | None], ...] | None:
    """(name, options) per property when ``schema`` is an object of required plain strings or
    string enums (what the runtime asks FakeLM for most: a node's text fields, a decision);
    None for anything else. Remembered per schema object, as FakeLM sees the same ones again.
    """
    entry = _FLAT_RECORDS.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    fields = _flat_fields(schema)
    if len(_FLAT_RECORDS) >= 1024:
        _FLAT_RECORDS.clear()
    _FLAT_RECORDS[id(schema)] = (schema, fields)
    return fields


def _flat_fields(schema: Any) -> tuple[tuple[str, tuple[str, ...] | None], ...] | None:
    if type(schema) is not dict or schema.get("type") != "object":
        return None
    if not schema.keys() <= {"type", "properties", "required", *_NOTES}:
        return None
    props = schema.get("properties")
    required = schema.get("required")
    if type(props) is not dict or not props or type(required) is not list:
        return None
    if set(required) != props.keys():
        return None
    fields: list[tuple[str, tuple[str, ...] | None]] = []
    for name, sub in props.items():
        if type(sub) is not dict or sub.get("type") != "string":
            return None
        if sub.keys() <= {"type", *_NOTES}:
            fields.append((name, None))
        elif sub.keys() <= {"type", "enum", *_NOTES}:
            options = sub["enum"]
            if type(options) is not list or not options or any(type(o) is not str for o in options):
                return None
            fields.append((name, tuple(options)))
        else:
            return None
    return tuple(fields)


def _is_deep(path: _Path, level: int) -> bool:
    if level > _DEEP_LEVEL or len(path) > _DEEP_REFS:
        return True
    return bool(path) and max(Counter(path).values()) >= _DEEP_REPEAT


def _deref(root: Mapping[str, Any], ref: Any) -> Any:
    """Follow a local JSON pointer (``#``, ``#/$defs/Name``) inside ``root``."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise ValueError(f"only local $ref ('#/...') is supported, got {ref!r}")
    node: Any = root
    pointer = unquote(ref[1:])
    if pointer:
        for token in pointer.lstrip("/").split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(token)] if isinstance(node, list) else node[token]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ValueError(f"$ref {ref!r} does not resolve in the root schema") from None
    return node


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Combine two schemas that must both hold (``allOf``, ``$ref`` siblings), keeping the
    tighter bound; conflicts this cannot express keep ``b``'s keyword."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
            continue
        current = out[key]
        if key == "properties" and isinstance(current, Mapping) and isinstance(value, Mapping):
            properties = dict(current)
            for name, sub in value.items():
                properties[name] = {"allOf": [properties[name], sub]} if name in properties else sub
            out[key] = properties
        elif key == "required" and isinstance(current, list) and isinstance(value, list):
            out[key] = list(dict.fromkeys([*current, *value]))
        elif key in _LOWER_BOUNDS and _is_number(current) and _is_number(value):
            out[key] = max(current, value)
        elif key in _UPPER_BOUNDS and _is_number(current) and _is_number(value):
            out[key] = min(current, value)
        elif key == "type":
            left, right = _as_list(current), _as_list(value)
            common = [t for t in left if t in right]
            if ("integer" in left and "number" in right) or (
                "number" in left and "integer" in right
            ):
                common.append("integer")
            out[key] = (common[0] if len(common) == 1 else common) if common else value
        elif key == "enum" and isinstance(current, list) and isinstance(value, list):
            common = [x for x in current if any(_canon(x) == _canon(y) for y in value)]
            out[key] = common or value
        elif key in ("anyOf", "oneOf"):
            continue  # keep the first; a nested union of unions is beyond best effort here
        else:
            out[key] = value
    return out


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """(low, low_exclusive, high, high_exclusive), accepting draft-4 boolean exclusivity."""
    low = _finite(schema.get("minimum"))
    high = _finite(schema.get("maximum"))
    low_x = high_x = False
    ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_min, bool):
        low_x = ex_min and low is not None
    elif (em := _finite(ex_min)) is not None and (low is None or em >= low):
        low, low_x = em, True
    if isinstance(ex_max, bool):
        high_x = ex_max and high is not None
    elif (em := _finite(ex_max)) is not None and (high is None or em <= high):
        high, high_x = em, True
    return low, low_x, high, high_x


def _window(low: float | None, high: float | None, span: int = 100) -> tuple[float, float]:
    """A small, readable range inside the bounds: [0, 100] when allowed, else near the bound."""
    if low is not None and high is not None and high - low <= 10 * span:
        return low, high
    lo = -math.inf if low is None else low
    hi = math.inf if high is None else high
    if lo <= span and hi >= 0:
        return max(lo, 0), min(hi, span)
    if hi < 0:
        return max(lo, hi - span), hi
    return lo, min(hi, lo + span)


def _tidy(value: float, multiple: float) -> float:
    """Round ``k * multiple`` to ``multiple``'s decimals: 7 * 0.1 is 0.7, not 0.7000000000000001."""
    exponent = Decimal(str(multiple)).as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return float(round(value, decimals))


def _finite(value: Any) -> float | None:
    return value if _is_number(value) and math.isfinite(value) else None


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_or(value: Any, fallback: Any) -> Any:
    return int(value) if _is_number(value) else fallback


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _open(schema: Any) -> Any:
    return schema if isinstance(schema, Mapping) else True


def _pattern_schema(key: str, patterns: Mapping[str, Any]) -> Any:
    for pattern, sub in patterns.items():
        regex = _compile(pattern)
        if regex is not None and regex.search(key):
            return sub
    return None


@functools.lru_cache(maxsize=256)
def _parse(pattern: str) -> Any:
    """The stdlib parser's tree for ``pattern``: what :meth:`_Generator._emit` walks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _sre_parse.parse(pattern)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str] | None:
    """The compiled pattern, or None when Python's ``re`` cannot read it (ECMA-only syntax)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "possible nested set" and friends are not ours to show
        try:
            return re.compile(pattern)
        except (re.error, RecursionError, OverflowError):
            return None


def _in_class(ch: str, items: Sequence[tuple[Any, Any]]) -> bool:
    """Whether ``ch`` is in a parsed character class, ignoring its NEGATE marker."""
    c = _sre_c
    for op, arg in items:
        if op == c.LITERAL and ord(ch) == arg:
            return True
        if op == c.RANGE and arg[0] <= ord(ch) <= arg[1]:
            return True
        if op == c.CATEGORY:
            tests: dict[Any, bool] = {
                c.CATEGORY_DIGIT: ch.isdigit(),
                c.CATEGORY_NOT_DIGIT: not ch.isdigit(),
                c.CATEGORY_SPACE: ch.isspace(),
                c.CATEGORY_NOT_SPACE: not ch.isspace(),
                c.CATEGORY_WORD: ch.isalnum() or ch == "_",
                c.CATEGORY_NOT_WORD: not (ch.isalnum() or ch == "_"),
            }
            if tests.get(arg, True):  # an unknown category: assume it matches, stay safe
                return True
    return False


def _is_null(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return False
    return (
        schema.get("type") == "null"
        or ("const" in schema and schema["const"] is None)
        or schema.get("enum") == [None]
    )


def _declares(schema: Any, *kinds: str) -> bool:
    declared = schema.get("type") if isinstance(schema, Mapping) else None
    return any(kind in _as_list(declared) for kind in kinds)


def _plain_string(schema: Any) -> bool:
    constraints = ("format", "pattern", "enum", "const", "contentMediaType", "$ref")
    return _declares(schema, "string") and not any(k in schema for k in constraints)


def _is_const(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return False
    enum = schema.get("enum")
    return "const" in schema or (isinstance(enum, list) and len(enum) == 1)


def _cost(schema: Any) -> int:
    """How far a union branch is from a leaf; deep in a recursive model the cheapest wins."""
    if schema is True:
        return 1
    if not isinstance(schema, Mapping):
        return 5
    if _is_null(schema) or (isinstance(schema.get("type"), list) and "null" in schema["type"]):
        return 0
    if "$ref" in schema:
        return 3
    if "const" in schema or "enum" in schema:
        return 1
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return min(_cost(b) for b in schema[key])
    return 2 if schema.get("type") in ("array", "object") else 1


def _mapping_label(discriminator: Any, branch: Any) -> str | None:
    mapping = discriminator.get("mapping") if isinstance(discriminator, Mapping) else None
    ref = branch.get("$ref") if isinstance(branch, Mapping) else None
    if isinstance(mapping, Mapping) and ref is not None:
        for label, target in mapping.items():
            if target == ref:
                return str(label)
    return None


def _canon(value: Any) -> str:
    """JSON Schema equality: 1 == 1.0, True != 1, key order does not matter."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, Mapping):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True, default=str)


# -- a small checker: decides whether a default or example may be used, and oneOf exclusivity ----


def _is_type(value: Any, kind: Any) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return _is_number(value) and float(value).is_integer()
    if kind == "number":
        return _is_number(value)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list | tuple)
    if kind == "object":
        return isinstance(value, Mapping)
    return True


def _format_ok(value: str, fmt: Any) -> bool:
    parsers: dict[str, Callable[[str], object]] = {
        "date-time": dt.datetime.fromisoformat,
        "date": dt.date.fromisoformat,
        "time": dt.time.fromisoformat,
        "uuid": uuid.UUID,
        "ipv4": ipaddress.IPv4Address,
        "ipv6": ipaddress.IPv6Address,
    }
    parser = parsers.get(fmt) if isinstance(fmt, str) else None
    if parser is not None:
        try:
            parser(value)
        except ValueError:
            return False
        return fmt != "date-time" or "T" in value.upper()
    if fmt in ("email", "idn-email"):
        return re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is not None
    if fmt in ("uri", "url"):
        return re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", value) is not None
    return True  # formats it does not know are annotations, as the specification allows


def _validates(value: Any, schema: Any, root: Mapping[str, Any], refs: int = 0) -> bool:
    """Conservative JSON Schema check of the keywords this module generates for."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        return True
    if refs > _MAX_REFS:
        return False

    def ok(v: Any, s: Any, more_refs: int = 0) -> bool:
        return _validates(v, s, root, refs + more_refs)

    if "$ref" in schema:
        try:
            target = _deref(root, schema["$ref"])
        except ValueError:
            return False
        if not ok(value, target, 1):
            return False
    if not all(ok(value, s) for s in schema.get("allOf", ())):
        return False
    if "anyOf" in schema and not any(ok(value, s) for s in schema["anyOf"]):
        return False
    if "oneOf" in schema and sum(ok(value, s) for s in schema["oneOf"]) != 1:
        return False
    if "not" in schema and ok(value, schema["not"]):
        return False
    if "const" in schema and _canon(value) != _canon(schema["const"]):
        return False
    if "enum" in schema and all(_canon(value) != _canon(e) for e in schema["enum"]):
        return False
    if "type" in schema and not any(_is_type(value, t) for t in _as_list(schema["type"])):
        return False
    if isinstance(value, str):
        return _string_ok(value, schema)
    if _is_number(value):
        return _number_ok(value, schema)
    if isinstance(value, list | tuple):
        return _array_ok(list(value), schema, ok)
    if isinstance(value, Mapping):
        return _object_ok(value, schema, ok)
    return True


def _string_ok(value: str, schema: Mapping[str, Any]) -> bool:
    if len(value) < _int_or(schema.get("minLength"), 0):
        return False
    max_len = _int_or(schema.get("maxLength"), None)
    if max_len is not None and len(value) > max_len:
        return False
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        regex = _compile(pattern)
        if regex is not None and regex.search(value) is None:
            return False
    return _format_ok(value, schema.get("format"))


def _number_ok(value: float, schema: Mapping[str, Any]) -> bool:
    low, low_x, high, high_x = _bounds(schema)
    if low is not None and (value <= low if low_x else value < low):
        return False
    if high is not None and (value >= high if high_x else value > high):
        return False
    multiple = schema.get("multipleOf")
    if _is_number(multiple) and multiple > 0:
        ratio = value / multiple
        return abs(ratio - round(ratio)) < 1e-9
    return True


def _array_ok(value: list[Any], schema: Mapping[str, Any], ok: Callable[..., bool]) -> bool:
    if len(value) < _int_or(schema.get("minItems"), 0):
        return False
    max_items = _int_or(schema.get("maxItems"), None)
    if max_items is not None and len(value) > max_items:
        return False
    if schema.get("uniqueItems") is True and len({_canon(v) for v in value}) != len(value):
        return False
    prefix = schema.get("prefixItems")
    items = schema.get("items", True)
    if isinstance(items, list):
        prefix, items = items, schema.get("additionalItems", True)
    prefix = prefix if isinstance(prefix, list) else []
    for i, item in enumerate(value):
        if not ok(item, prefix[i] if i < len(prefix) else items):
            return False
    contains = schema.get("contains")
    return contains is None or any(ok(item, contains) for item in value)


def _object_ok(
    value: Mapping[str, Any], schema: Mapping[str, Any], ok: Callable[..., bool]
) -> bool:
    if any(name not in value for name in schema.get("required", ())):
        return False
    if len(value) < _int_or(schema.get("minProperties"), 0):
        return False
    max_props = _int_or(schema.get("maxProperties"), None)
    if max_props is not None and len(value) > max_props:
        return False
    props = schema.get("properties")
    props = props if isinstance(props, Mapping) else {}
    patterns = schema.get("patternProperties")
    patterns = patterns if isinstance(patterns, Mapping) else {}
    extra = schema.get("additionalProperties", True)
    names = schema.get("propertyNames")
    for key, item in value.items():
        if names is not None and not ok(key, names):
            return False
        matched = False
        if key in props:
            matched = True
            if not ok(item, props[key]):
                return False
        for pattern, sub in patterns.items():
            regex = _compile(pattern)
            if regex is not None and regex.search(str(key)):
                matched = True
                if not ok(item, sub):
                    return False
        if not matched and not ok(item, extra):
            return False
    return True
