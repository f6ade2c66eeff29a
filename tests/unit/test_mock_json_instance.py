"""The mocks' JSON Schema instances validate: over pydantic models and generated schemas."""

from __future__ import annotations

import datetime
import enum
import re
import uuid
from typing import Annotated, Any, Literal

import jsonschema
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.mock_answers.json_instance import instance
from llmrelay.mock_answers.regex_sample import sample_matching


def assert_valid(schema: Any, value: Any) -> None:
    """Valid under the schema's own draft (2020-12 unless ``$schema`` says), formats too."""
    validator = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
    validator(schema, format_checker=validator.FORMAT_CHECKER).validate(value)


# -- pydantic models, as the structured-output clients send them ----------------------------


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(pydantic.BaseModel):
    street: str
    postcode: Annotated[str, pydantic.StringConstraints(pattern=r"^\d{5}$")]
    country: Literal["FR", "DE"] = "FR"


class Cat(pydantic.BaseModel):
    kind: Literal["cat"]
    lives: Annotated[int, pydantic.Field(ge=1, le=9)]


class Dog(pydantic.BaseModel):
    kind: Literal["dog"]
    good: bool


class Person(pydantic.BaseModel):
    name: str
    age: Annotated[int, pydantic.Field(gt=17, lt=130)]
    height: Annotated[float, pydantic.Field(ge=0.5, le=2.5, multiple_of=0.25)]
    nickname: str | None = None
    colour: Colour
    tags: Annotated[list[str], pydantic.Field(min_length=2, max_length=3)]
    address: Address
    previous: list[Address] = []
    pet: Annotated[Cat | Dog, pydantic.Field(discriminator="kind")]
    scores: dict[str, int]
    born: datetime.date
    seen: datetime.datetime
    ident: uuid.UUID
    code: Annotated[str, pydantic.StringConstraints(min_length=3, max_length=4)]


class Node(pydantic.BaseModel):
    """Recursive: the instance must end."""

    label: str
    children: list[Node] = []
    parent: Node | None = None


@pytest.mark.parametrize("model", [Person, Address, Node, Cat])
@pytest.mark.parametrize("text", ["", "Ada Lovelace", "a much longer prompt, with punctuation!"])
def test_pydantic_models_accept_the_instance(model: type[pydantic.BaseModel], text: str) -> None:
    schema = model.model_json_schema()
    value = instance(schema, text)
    assert_valid(schema, value)
    model.model_validate(value)


def test_values_come_from_the_prompt_and_are_stable() -> None:
    schema = Person.model_json_schema()
    first = instance(schema, "Ada")
    assert first == instance(schema, "Ada")
    assert first["name"] == "Ada" and first["age"] == 18 and first["colour"] == "red"
    assert first["address"]["postcode"] == "00000"
    assert len(set(first["tags"])) == 2  # minItems met, items distinct
    assert instance(schema, "Grace")["name"] == "Grace"


def test_openai_strict_schema() -> None:
    """OpenAI's strict mode: every property required, nullable as a type list."""
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["city", "days", "unit"],
        "properties": {
            "city": {"type": "string"},
            "days": {"type": ["integer", "null"], "minimum": 1, "maximum": 7},
            "unit": {"type": "string", "enum": ["c", "f"]},
        },
    }
    assert instance(schema, "Paris") == {"city": "Paris", "days": 1, "unit": "c"}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 3},
        {"type": "integer", "minimum": 10, "multipleOf": 7},
        {"type": "integer", "maximum": -5},
        {"type": "number", "exclusiveMaximum": 0},
        {"type": "number", "minimum": 2, "maximum": 2},
        {"type": "number", "multipleOf": 0.5, "minimum": 3.2},
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "number",
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": 1,
        },
        {"type": "string", "minLength": 12},
        {"type": "string", "maxLength": 2},
        {"type": "string", "format": "email"},
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "uri"},
        {"type": "string", "format": "ipv6"},
        {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2},
        {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "uniqueItems": True},
        {"type": "array", "contains": {"const": 5}, "items": {"type": "integer"}},
        {"type": "array", "maxItems": 0},
        {"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
        {"type": "object", "required": ["x"], "additionalProperties": {"type": "number"}},
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "integer", "minimum": 4}}, "required": ["b"]},
            ]
        },
        {"oneOf": [{"type": "null"}, {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"}]},
        {"$ref": "#/definitions/a", "definitions": {"a": {"type": "integer", "minimum": 3}}},
        {},
        True,
    ],
)
def test_keywords(schema: Any) -> None:
    assert_valid(schema, instance(schema, "some text"))


def test_constraints_the_anthropic_sdk_moved_into_descriptions() -> None:
    """``messages.parse`` strips what Claude does not enforce into the description and
    validates the answer against the full model: the mock must follow the hints."""
    schema = {
        "type": "object",
        "required": ["age", "code"],
        "properties": {
            "age": {
                "type": "integer",
                "description": "Years\n\n{default: 20, minimum: 18, maximum: 120}",
            },
            "code": {"type": "string", "description": "{pattern: ^[A-Z]{2}, [0-9]$}"},
            "note": {"type": "string", "description": "{not a hint}"},
        },
    }
    value = instance(schema, "text")
    assert value == {"age": 18, "code": "AA, 0", "note": "text"}


def test_gemini_openapi_types() -> None:
    """Gemini's schemas are OpenAPI's: capitalised types, ``nullable``."""
    schema = {
        "type": "OBJECT",
        "properties": {"n": {"type": "NUMBER", "nullable": True}, "s": {"type": "STRING"}},
    }
    assert instance(schema, "hi") == {"n": 1.5, "s": "hi"}


@pytest.mark.parametrize(
    "pattern",
    [
        r"^\d{5}$",
        r"^[A-Z]{3}-\d+$",
        r"^(?:\+1)?\d{3}-\d{4}$",
        r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
        r"abc",
        r"^(foo|bar)baz$",
        r"^[a-z]+$",
        r"^\w{3,5}$",
        r"^[\-a-f0-9]{8}$",
        r"^x*$",
        r"^[A-Z][a-z]+(?: [A-Z][a-z]+)*$",
        r"^\S+$",
        r"^(?P<year>\d{4})-(?P<m>\d{2})$",
        r"^\u0041\x42[.]$",
    ],
)
def test_patterns(pattern: str) -> None:
    value = sample_matching(pattern, "some text")
    assert re.search(pattern, value), value
    bounded = sample_matching(pattern, "some text", 3, 12)
    if re.search(pattern, bounded):
        assert 3 <= len(bounded) <= 12


def test_pattern_prefers_the_text() -> None:
    assert sample_matching(r"^[A-Z][a-z]+$", "Paris") == "Paris"


def test_ecma_named_groups() -> None:
    """JSON Schema patterns are ECMA-262: ``(?<name>...)`` is Python's ``(?P<name>...)``."""
    assert sample_matching(r"^(?<year>\d{4})$", "Paris") == "0000"


# -- generated schemas ----------------------------------------------------------------------


def _bounded_int() -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": draw(st.sampled_from(["integer", "number"]))}
        low = draw(st.none() | st.integers(-50, 50))
        # Wide enough that an open interval always holds a multiple of every step drawn
        # (a schema no value meets is the client's error, not the mock's).
        span = draw(st.integers(5, 40))
        if low is not None:
            schema[draw(st.sampled_from(["minimum", "exclusiveMinimum"]))] = low
        if draw(st.booleans()):
            top = (low if low is not None else 0) + span
            schema[draw(st.sampled_from(["maximum", "exclusiveMaximum"]))] = top
        if draw(st.booleans()):
            schema["multipleOf"] = draw(st.sampled_from([1, 2, 0.5, 0.25]))
        return schema

    return build()


def _string() -> st.SearchStrategy[dict[str, Any]]:
    plain = st.fixed_dictionaries(
        {"type": st.just("string")}, optional={"minLength": st.integers(0, 20)}
    )
    formatted = st.sampled_from(
        ["date", "date-time", "time", "email", "uuid", "hostname", "ipv4", "uri"]
    ).map(lambda f: {"type": "string", "format": f})
    limited = st.integers(0, 10).flatmap(
        lambda low: st.fixed_dictionaries(
            {
                "type": st.just("string"),
                "minLength": st.just(low),
                "maxLength": st.integers(low, low + 10),
            }
        )
    )
    patterned = st.sampled_from([r"^[a-z]{2,6}$", r"^\d+(\.\d\d)?$", r"^(AB|CD)-\d{3}$"]).map(
        lambda p: {"type": "string", "pattern": p}
    )
    return plain | formatted | limited | patterned


LEAVES = (
    _bounded_int()
    | _string()
    | st.just({"type": "boolean"})
    | st.just({"type": "null"})
    | st.lists(st.integers() | st.text(max_size=5), min_size=1, max_size=4, unique=True).map(
        lambda values: {"enum": values}
    )
    | st.integers().map(lambda v: {"const": v})
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = st.text("abcdefgh", min_size=1, max_size=4)
    objects = st.dictionaries(names, children, max_size=4).flatmap(
        lambda props: st.builds(
            lambda required, closed: {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": not closed,
            },
            st.lists(st.sampled_from(sorted(props)), unique=True) if props else st.just([]),
            st.booleans(),
        )
    )
    arrays = st.builds(
        lambda items, low, extra: {
            "type": "array",
            "items": items,
            "minItems": low,
            "maxItems": low + extra,
        },
        children,
        st.integers(0, 3),
        st.integers(0, 3),
    )
    optional = children.map(lambda c: {"anyOf": [c, {"type": "null"}]})
    nullable_type = _bounded_int().map(lambda c: {**c, "type": [c["type"], "null"]})
    return objects | arrays | optional | nullable_type


SCHEMAS = st.recursive(LEAVES, _extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(schema=SCHEMAS, text=st.text(max_size=12))
def test_generated_schemas(schema: Any, text: str) -> None:
    assert_valid(schema, instance(schema, text))


@settings(max_examples=100, deadline=None)
@given(inner=SCHEMAS, text=st.text(max_size=12))
def test_generated_schemas_behind_refs(inner: Any, text: str) -> None:
    """The same schemas as pydantic lays them out: ``$defs`` and ``$ref`` pointers."""
    schema = {
        "type": "object",
        "properties": {
            "item": {"$ref": "#/$defs/Item"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        },
        "required": ["item"],
        "$defs": {"Item": inner},
    }
    assert_valid(schema, instance(schema, text))


def test_a_nullable_number_no_value_can_meet_is_null() -> None:
    """Found by hypothesis: no integer lies in (0, 2) on a multiple of 2; null is allowed."""
    schema = {
        "anyOf": [
            {
                "type": ["integer", "null"],
                "exclusiveMinimum": 0,
                "exclusiveMaximum": 2,
                "multipleOf": 2,
            },
            {"type": "null"},
        ]
    }
    assert_valid(schema, instance(schema, ""))
