"""value_for_schema / sample_json: values validate against every schema shape pydantic emits."""

from __future__ import annotations

import datetime
import decimal
import enum
import hashlib
import ipaddress
import json
import math
import random
import re
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import pytest
from pydantic import (
    AnyUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    Json,
    TypeAdapter,
)

from graphtrace.lm.digest_draws import DigestDraws
from graphtrace.lm.schema_values import sample_json, value_for_schema
from tests.process_support import python_output

SEEDS = range(50)
WORDS = re.compile(r"[a-z]+( [a-z]+)*")


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    MID = 2
    HIGH = 3


class Address(BaseModel):
    street: str
    city: str = Field(description="City name", min_length=2, max_length=40)
    zip_code: Annotated[str, Field(pattern=r"^\d{5}$")]


class Person(BaseModel):
    name: str
    age: Annotated[int, Field(ge=0, le=130)]
    email: Annotated[str, Field(pattern=r"^[a-z]+@[a-z]+\.(com|org)$")]
    address: Address
    previous: list[Address] = []
    nickname: str | None = None


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    lives: Annotated[int, Field(ge=0, le=9)]


class Dog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["dog"]
    name: Annotated[str, Field(min_length=2, max_length=5, examples=["Rex", "Fido"])]


class Owner(BaseModel):
    pet: Annotated[Union[Cat, Dog], Field(discriminator="kind")]  # noqa: UP007
    other: Cat | Dog | None = None


class Tree(BaseModel):
    value: int
    children: list[Tree] = []
    parent: Optional[Tree] = None  # noqa: UP045


class Expr(BaseModel):
    op: Literal["+", "-", "*"]
    left: int | Expr
    right: int | Expr


class Ticket(BaseModel):
    """A grab bag of constrained scalar and container fields."""

    id: uuid.UUID
    created: datetime.datetime
    created_aware: AwareDatetime
    due: datetime.date
    at: datetime.time
    took: datetime.timedelta
    title: Annotated[str, Field(min_length=5, max_length=12)]
    code: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{4}$")]
    tiny: Annotated[str, Field(max_length=2)]
    long: Annotated[str, Field(min_length=60)]
    count: Annotated[int, Field(gt=0, lt=5)]
    huge: Annotated[int, Field(gt=10**12)]
    step: Annotated[int, Field(multiple_of=7, ge=100, le=110)]
    ratio: Annotated[float, Field(gt=0, lt=1, multiple_of=0.1)]
    score: Annotated[float, Field(ge=-1000.5, le=-999.5)]
    price: decimal.Decimal
    flag: bool
    color: Color
    level: Level
    mode: Literal["fast", "slow", 3]
    tags: Annotated[list[str], Field(min_length=2, max_length=4)]
    unique: set[Color]
    frozen: frozenset[int]
    counts: dict[str, int]
    by_color: dict[Color, float]
    by_id: dict[uuid.UUID, str]
    by_day: dict[datetime.date, int]
    pair: tuple[int, str]
    many: tuple[int, ...]
    url: AnyUrl
    http: HttpUrl
    ip4: ipaddress.IPv4Address
    ip6: ipaddress.IPv6Address
    net: ipaddress.IPv4Network
    blob: bytes
    payload: Json[list[int]]
    path: Path
    anything: Any
    maybe: int | None = None


class Sloppy(BaseModel):
    """Defaults pydantic never validates must not leak into generated values."""

    name: str = None  # type: ignore[assignment]
    size: int = "big"  # type: ignore[assignment]


ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "str": TypeAdapter(str),
    "int-bounds": TypeAdapter(Annotated[int, Field(ge=-5, le=5)]),
    "int-exclusive": TypeAdapter(Annotated[int, Field(gt=2, lt=4)]),
    "float": TypeAdapter(float),
    "float-bounds": TypeAdapter(Annotated[float, Field(gt=0.0, le=0.001)]),
    "bool": TypeAdapter(bool),
    "none": TypeAdapter(None),
    "literal": TypeAdapter(Literal["a", "b", "c"]),
    "literal-one": TypeAdapter(Literal["only"]),
    "enum": TypeAdapter(Color),
    "int-enum": TypeAdapter(Level),
    "list": TypeAdapter(list[int]),
    "nested-list": TypeAdapter(list[list[str]]),
    "dict": TypeAdapter(dict[str, int]),
    "dict-literal-keys": TypeAdapter(dict[Literal["x", "y"], bool]),
    "dict-pattern-keys": TypeAdapter(dict[Annotated[str, Field(pattern=r"^k_")], int]),
    "tuple": TypeAdapter(tuple[int, str]),
    "tuple-variadic": TypeAdapter(tuple[str, ...]),
    "set": TypeAdapter(set[int]),
    "set-of-enum": TypeAdapter(set[Level]),
    "optional": TypeAdapter(Optional[int]),  # noqa: UP045
    "union": TypeAdapter(int | str | None),
    "uuid": TypeAdapter(uuid.UUID),
    "datetime": TypeAdapter(datetime.datetime),
    "date": TypeAdapter(datetime.date),
    "constrained-str": TypeAdapter(Annotated[str, Field(min_length=3, max_length=8)]),
    "pattern": TypeAdapter(Annotated[str, Field(pattern=r"^(ab|cd)+[^xyz]{2,}$")]),
    "model": TypeAdapter(Person),
    "union-of-models": TypeAdapter(Cat | Dog),
    "discriminated": TypeAdapter(Owner),
    "list-of-models": TypeAdapter(list[Address]),
    "recursive": TypeAdapter(Tree),
    "mutually-recursive": TypeAdapter(Expr),
    "grab-bag": TypeAdapter(Ticket),
    "sloppy-defaults": TypeAdapter(Sloppy),
}


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_values_validate(name: str) -> None:
    adapter = ADAPTERS[name]
    schema = adapter.json_schema()
    for seed in SEEDS:
        value = value_for_schema(schema, random.Random(seed))
        adapter.validate_python(value)
        text = sample_json(schema, seed)
        assert json.loads(text) == value
        adapter.validate_json(text)
        # strict JSON mode: no "3" for an int, no 1.0 for a bool, exact types only
        adapter.validate_json(text, strict=True)


@pytest.mark.parametrize("model", [Person, Owner, Tree, Expr, Ticket])
def test_model_validate_and_validate_json(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    for seed in SEEDS:
        model.model_validate(value_for_schema(schema, random.Random(seed)))
        model.model_validate_json(sample_json(schema, seed))


def test_same_seed_same_value_and_state_matters() -> None:
    schema = Ticket.model_json_schema()
    assert sample_json(schema, 7) == sample_json(schema, 7)
    assert sample_json(schema, "run-7") == sample_json(schema, "run-7")
    rng = random.Random(7)
    first = value_for_schema(schema, rng)
    second = value_for_schema(schema, rng)  # the RNG advanced, so the value moves on
    assert first != second
    assert first == value_for_schema(schema, random.Random(7))


def test_stable_across_processes() -> None:
    schema = Person.model_json_schema()
    code = (
        "import json, sys\n"
        "from graphtrace.lm.schema_values import sample_json\n"
        "print(sample_json(json.loads(sys.argv[1]), 'seed-x'))\n"
    )
    out = python_output(code, json.dumps(schema), hash_seed=12345)
    assert out == sample_json(schema, "seed-x")


def test_variety() -> None:
    colors = {value_for_schema({"enum": ["r", "g", "b"]}, random.Random(s)) for s in SEEDS}
    assert colors == {"r", "g", "b"}
    schema = TypeAdapter(Color).json_schema()
    assert len({sample_json(schema, s) for s in SEEDS}) > 1
    texts = {sample_json({"type": "string"}, s) for s in SEEDS}
    assert len(texts) > 20
    optional = [
        value_for_schema(TypeAdapter(int | None).json_schema(), random.Random(s)) for s in SEEDS
    ]
    assert None in optional
    assert sum(v is not None for v in optional) > len(optional) // 2  # mostly not null
    bools = {value_for_schema({"type": "boolean"}, random.Random(s)) for s in SEEDS}
    assert bools == {True, False}


def test_strings_read_like_words() -> None:
    for seed in SEEDS:
        text = value_for_schema({"type": "string"}, random.Random(seed))
        assert WORDS.fullmatch(text), text
        person = Person.model_validate(
            value_for_schema(Person.model_json_schema(), random.Random(seed))
        )
        assert WORDS.fullmatch(person.name), person.name


def test_optional_properties_sometimes_filled() -> None:
    schema = Person.model_json_schema()
    values = [value_for_schema(schema, random.Random(s)) for s in SEEDS]
    assert any("nickname" in v for v in values)
    assert any("nickname" not in v for v in values)
    assert all({"name", "age", "email", "address"} <= v.keys() for v in values)


def test_examples_are_used_sometimes() -> None:
    names = {
        Dog.model_validate(value_for_schema(Dog.model_json_schema(), random.Random(s))).name
        for s in range(100)
    }
    assert names & {"Rex", "Fido"}
    assert names - {"Rex", "Fido"}


def test_discriminator_tag_always_present() -> None:
    schema = Owner.model_json_schema()
    for seed in SEEDS:
        pet = value_for_schema(schema, random.Random(seed))["pet"]
        assert pet["kind"] in ("cat", "dog")


def test_recursive_models_stay_small() -> None:
    for model in (Tree, Expr):
        schema = model.model_json_schema()
        sizes = [len(sample_json(schema, s)) for s in SEEDS]
        assert max(sizes) < 5000, max(sizes)
    depths = [_depth(value_for_schema(Tree.model_json_schema(), random.Random(s))) for s in SEEDS]
    assert max(depths) > 1  # it does recurse


def _depth(tree: dict[str, Any]) -> int:
    below = [_depth(c) for c in tree.get("children", [])]
    if tree.get("parent"):
        below.append(_depth(tree["parent"]))
    return 1 + max(below, default=0)


def test_numbers_are_small_and_in_bounds() -> None:
    for seed in SEEDS:
        rng = random.Random(seed)
        assert 0 <= value_for_schema({"type": "integer"}, rng) <= 100
        wide = value_for_schema({"type": "integer", "minimum": -(10**9), "maximum": 10**9}, rng)
        assert 0 <= wide <= 100
        above = value_for_schema({"type": "integer", "exclusiveMinimum": 10**12}, rng)
        assert 10**12 < above <= 10**12 + 101
        below = value_for_schema({"type": "number", "maximum": -5000}, rng)
        assert -5100 <= below <= -5000
        assert value_for_schema({"type": "integer", "multipleOf": 7, "minimum": 100}, rng) % 7 == 0
        odd = value_for_schema({"type": "integer", "multipleOf": 1.5, "minimum": 1}, rng)
        assert odd % 3 == 0 and odd >= 3
        tenth = value_for_schema(
            {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "multipleOf": 0.1},
            rng,
        )
        assert 0 < tenth < 1 and math.isclose(tenth * 10, round(tenth * 10))
        tiny = value_for_schema({"type": "number", "exclusiveMinimum": 0, "maximum": 1e-9}, rng)
        assert 0 < tiny <= 1e-9
        # draft 4 style boolean exclusivity
        draft4 = value_for_schema(
            {"type": "integer", "minimum": 5, "exclusiveMinimum": True, "maximum": 6}, rng
        )
        assert draft4 == 6


def test_string_formats_parse() -> None:
    parsers = {
        "date-time": datetime.datetime.fromisoformat,
        "date": datetime.date.fromisoformat,
        "time": datetime.time.fromisoformat,
        "uuid": uuid.UUID,
        "ipv4": ipaddress.IPv4Address,
        "ipv6": ipaddress.IPv6Address,
        "email": lambda s: re.fullmatch(r"[a-z.]+@example\.com", s) or 1 / 0,
        "uri": lambda s: AnyUrl(s),
        "url": lambda s: HttpUrl(s),
        "duration": TypeAdapter(datetime.timedelta).validate_python,
        "ipvanynetwork": ipaddress.ip_network,
        "ipvanyinterface": ipaddress.ip_interface,
        "ipv6network": ipaddress.IPv6Network,
        "base64": lambda s: __import__("base64").b64decode(s, validate=True),
    }
    for fmt, parse in parsers.items():
        for seed in SEEDS:
            parse(value_for_schema({"type": "string", "format": fmt}, random.Random(seed)))
    stamp = value_for_schema({"type": "string", "format": "date-time"}, random.Random(0))
    assert datetime.datetime.fromisoformat(stamp).tzinfo is not None  # RFC 3339 needs an offset


def test_string_lengths() -> None:
    for seed in SEEDS:
        rng = random.Random(seed)
        assert value_for_schema({"type": "string", "maxLength": 0}, rng) == ""
        exact = value_for_schema({"type": "string", "minLength": 7, "maxLength": 7}, rng)
        assert len(exact) == 7 and not exact.endswith(" ")
        assert len(value_for_schema({"type": "string", "minLength": 300}, rng)) >= 300
        url = value_for_schema({"type": "string", "format": "uri", "maxLength": 20}, rng)
        assert len(url) <= 20


def test_patterns() -> None:
    cases = {
        r"^[A-Z]{3}-\d{4}$": r"[A-Z]{3}-\d{4}",
        r"^[a-z]+$": r"[a-z]+",
        r"^\+?[0-9]{7,12}$": r"\+?[0-9]{7,12}",
        r"^(?P<w>ab)(?P=w)x?$": r"ababx?",
        r"^[^\s]{4}\b": r"\S{4}.*",
    }
    for pattern, full in cases.items():
        for seed in SEEDS:
            value = value_for_schema({"type": "string", "pattern": pattern}, random.Random(seed))
            assert re.search(pattern, value) and re.fullmatch(full, value), (pattern, value)
    # patterns and lengths together
    for seed in SEEDS:
        value = value_for_schema(
            {"type": "string", "pattern": "^[a-z]+$", "minLength": 20, "maxLength": 22},
            random.Random(seed),
        )
        assert re.fullmatch("[a-z]{20,22}", value), value


def test_unsatisfiable_pattern_falls_back_to_words() -> None:
    schemas = [
        {"type": "string", "pattern": "(unclosed"},  # not a regex at all
        {"type": "string", "pattern": "^(?=.*[0-9])(?=.*[A-Z]).{8}$"},  # lookaheads: not sampled
    ]
    for schema in schemas:
        for seed in SEEDS:
            value = value_for_schema(schema, random.Random(seed))
            assert isinstance(value, str) and value


def test_arrays() -> None:
    for seed in SEEDS:
        rng = random.Random(seed)
        bounded = value_for_schema(
            {"type": "array", "items": {"type": "integer"}, "minItems": 5, "maxItems": 6}, rng
        )
        assert 5 <= len(bounded) <= 6
        closed = value_for_schema(
            {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": "integer"}],
                "items": False,
            },
            rng,
        )
        assert len(closed) == 2 and isinstance(closed[0], str) and isinstance(closed[1], int)
        draft7 = value_for_schema(
            {"type": "array", "items": [{"const": 1}], "additionalItems": False}, rng
        )
        assert draft7 == [1]
        unique = value_for_schema(
            {"type": "array", "items": {"enum": [1, 2, 3]}, "uniqueItems": True, "minItems": 3}, rng
        )
        assert sorted(unique) == [1, 2, 3]
        bools = value_for_schema(
            {"type": "array", "items": {"type": "boolean"}, "uniqueItems": True, "maxItems": 5}, rng
        )
        assert len(bools) == len(set(bools)) <= 2
        contains = value_for_schema(
            {
                "type": "array",
                "items": {"type": "integer"},
                "contains": {"const": 42},
                "maxItems": 2,
            },
            rng,
        )
        assert 42 in contains and len(contains) <= 2


def test_objects() -> None:
    closed = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "additionalProperties": False,
        "minProperties": 2,
    }
    named = {
        "type": "object",
        "propertyNames": {"pattern": "^[a-z]{2}[0-9]$"},
        "additionalProperties": {"type": "number"},
        "minProperties": 2,
        "maxProperties": 3,
    }
    undeclared = {"type": "object", "required": ["x", "y"], "properties": {"x": {"type": "string"}}}
    for seed in SEEDS:
        rng = random.Random(seed)
        assert value_for_schema(closed, rng).keys() == {"a", "b"}
        keys = value_for_schema(named, rng).keys()
        assert 2 <= len(keys) <= 3 and all(re.fullmatch("[a-z]{2}[0-9]", k) for k in keys)
        assert {"x", "y"} <= value_for_schema(undeclared, rng).keys()
        assert value_for_schema({"type": "object", "additionalProperties": False}, rng) == {}


def test_refs_allof_and_unions() -> None:
    merged = {
        "allOf": [
            {
                "type": "object",
                "properties": {"a": {"type": "integer", "minimum": 3}},
                "required": ["a"],
            },
            {"properties": {"a": {"maximum": 4}, "b": {"const": 1}}, "required": ["b"]},
        ]
    }
    self_ref = {"type": "object", "properties": {"child": {"$ref": "#"}, "n": {"type": "integer"}}}
    definitions = {
        "definitions": {"N": {"type": "integer", "minimum": 9, "maximum": 9}},
        "$ref": "#/definitions/N",
    }
    one_of = {"oneOf": [{"type": "number"}, {"type": "integer"}]}
    escaped = {"$defs": {"a/b~c": {"const": "ok"}}, "$ref": "#/$defs/a~1b~0c"}
    for seed in SEEDS:
        rng = random.Random(seed)
        value = value_for_schema(merged, rng)
        assert 3 <= value["a"] <= 4 and value["b"] == 1
        assert isinstance(value_for_schema(self_ref, rng), dict)
        assert value_for_schema(definitions, rng) == 9
        number = value_for_schema(one_of, rng)
        assert isinstance(number, float) and not number.is_integer()  # only the number branch
        assert value_for_schema(escaped, rng) == "ok"
        sub = {"$ref": "#/$defs/Address"}
        address = value_for_schema(sub, rng, root=Person.model_json_schema())
        Address.model_validate(address)


def test_type_lists_and_any() -> None:
    seen = set()
    for seed in SEEDS:
        rng = random.Random(seed)
        value = value_for_schema({"type": ["string", "null"], "minLength": 2}, rng)
        assert value is None or len(value) >= 2
        seen.add(type(value))
        json.dumps(value_for_schema({}, rng))
        json.dumps(value_for_schema(True, rng))  # type: ignore[arg-type]
    assert seen == {str, type(None)}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (False, "admits no value"),
        ({"enum": []}, "empty `enum`"),
        ({"$ref": "#/$defs/Missing"}, "does not resolve"),
        ({"$ref": "https://example.com/schema.json"}, "only local"),
        ({"anyOf": []}, "non-empty list"),
        (
            {
                "$defs": {
                    "A": {
                        "type": "object",
                        "properties": {"a": {"$ref": "#/$defs/A"}},
                        "required": ["a"],
                    }
                },
                "$ref": "#/$defs/A",
            },
            "recursion",
        ),
    ],
)
def test_impossible_schemas_raise(schema: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        value_for_schema(schema, random.Random(0))


class _Note(BaseModel):
    note: str
    summary: str = Field(description="one line")


class _Choice(BaseModel):
    next: Literal["Triage", "Reply", "END"]


class _Form(BaseModel):
    """Enough fields that a reply draws past the 128 bits of its seed (DigestDraws refills)."""

    name: str
    city: str
    street: str
    pet: str
    food: str
    tone: Literal["calm", "brisk", "warm"]
    colour: str
    hobby: str
    verdict: Literal["yes", "no"]


@pytest.mark.parametrize("model", [_Note, _Choice, _Form])
def test_flat_records_get_the_values_the_full_walk_gives(model: type[BaseModel]) -> None:
    # the shortcut for objects of plain strings must not change what a seed produces
    from graphtrace.lm.schema_values import _flat_record, _Generator

    schema = model.model_json_schema()
    schema["required"] = list(schema["properties"])  # every field asked for, as fills do
    assert _flat_record(schema) is not None
    refills = 0
    for seed in range(300):
        walked = _Generator(random.Random(seed), schema).gen(schema, (), 0)
        assert value_for_schema(schema, random.Random(seed)) == walked
        model.model_validate(walked)
        # and with the generator FakeLM draws from, seeded as FakeLM seeds it (digest bytes,
        # whose bits all vary: a small integer's bytes would draw zeros past its first few)
        digest = hashlib.blake2b(seed.to_bytes(4, "little"), digest_size=16).digest()
        draws, walk_draws = DigestDraws(digest), DigestDraws(digest)
        walked = _Generator(walk_draws, schema).gen(schema, (), 0)
        assert value_for_schema(schema, draws) == walked
        model.model_validate(walked)
        refills += draws.getstate()[3]  # blocks drawn past the seed's 128 bits
        # the draws go on where the walk's do: the shortcut hands back what it did not read
        assert draws.getrandbits(32) == walk_draws.getrandbits(32)
    if model is _Form:
        assert refills  # the path that reads past the seed ran
