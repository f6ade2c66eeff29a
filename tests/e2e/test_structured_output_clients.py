"""Structured output, tried as a new user would: popular clients against a real gateway.

LangChain's ``with_structured_output(method="function_calling")``, instructor's TOOLS
mode and pydantic-ai's default (tool) output all force a tool call and load its
arguments into a pydantic model; the SDKs' ``parse`` helpers send a ``json_schema``
format and load the content. Each must get a valid object back from the built-in
``mock/echo`` model (no upstream at all) and through the mock upstream as an ``openai``
provider -- which only works because the mocks answer with an instance of the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

import anthropic
import instructor
import openai
import pydantic
import pytest
from langchain_openai import ChatOpenAI
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess

#: The built-in provider, and the mock upstream behind an ``openai`` provider.
MODELS = ["mock/echo", "up/gpt-4o"]


class Address(pydantic.BaseModel):
    city: str
    postcode: Annotated[str, pydantic.Field(pattern=r"^\d{5}$")]


class Person(pydantic.BaseModel):
    """Constraints a real model must meet and ``{}`` does not."""

    name: str
    age: Annotated[int, pydantic.Field(ge=18, le=120)]
    role: Literal["admin", "user"]
    tags: Annotated[list[str], pydantic.Field(min_length=1)]
    address: Address
    nickname: str | None = None


def check(person: object, name: str) -> None:
    assert isinstance(person, Person)
    assert person.name == name  # strings are the prompt's text
    assert 18 <= person.age <= 120 and person.address.postcode.isdigit()


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("e2e-structured"),
        {
            "providers": [
                {
                    "name": "up",
                    "type": "openai",
                    "base_url": upstream.base_url,
                    "api_key": "sk-upstream-abcdefgh",
                }
            ],
        },
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.create_key("structured")


@pytest.fixture(scope="module")
def client(gw: GatewayProcess, key: str) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    yield c
    c.close()


@pytest.mark.parametrize("model", MODELS)
def test_langchain_function_calling(
    gw: GatewayProcess, key: str, mock: MockUpstream, model: str
) -> None:
    llm = ChatOpenAI(
        model=model, base_url=gw.base_url, api_key=pydantic.SecretStr(key), max_retries=0
    )
    check(llm.with_structured_output(Person, method="function_calling").invoke("Ada"), "Ada")


@pytest.mark.parametrize("model", MODELS)
def test_instructor_tools_mode(client: openai.OpenAI, mock: MockUpstream, model: str) -> None:
    patched = instructor.from_openai(client, mode=instructor.Mode.TOOLS)
    person = patched.chat.completions.create(
        model=model,
        response_model=Person,
        max_retries=0,
        messages=[{"role": "user", "content": "Grace"}],
    )
    check(person, "Grace")


@pytest.mark.parametrize("model", MODELS)
def test_pydantic_ai_tool_output(
    gw: GatewayProcess, key: str, mock: MockUpstream, model: str
) -> None:
    provider = OpenAIProvider(base_url=gw.base_url, api_key=key)
    agent = Agent(OpenAIChatModel(model, provider=provider), output_type=Person)
    check(agent.run_sync("Hedy").output, "Hedy")


@pytest.mark.parametrize("model", MODELS)
def test_openai_chat_completions_parse(
    client: openai.OpenAI, mock: MockUpstream, model: str
) -> None:
    completion = client.chat.completions.parse(
        model=model, response_format=Person, messages=[{"role": "user", "content": "Ada"}]
    )
    check(completion.choices[0].message.parsed, "Ada")


def test_openai_chat_completions_parse_streamed(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="mock/echo",
        response_format=Person,
        messages=[{"role": "user", "content": "Ada"}],
    ) as stream:
        final = stream.get_final_completion()
    check(final.choices[0].message.parsed, "Ada")


@pytest.mark.parametrize("model", MODELS)
def test_openai_responses_parse(client: openai.OpenAI, mock: MockUpstream, model: str) -> None:
    """Responses: translated to chat for ``mock/echo``, passed through for ``openai``."""
    response = client.responses.parse(model=model, input="Ada", text_format=Person)
    check(response.output_parsed, "Ada")


def test_anthropic_messages_parse(gw: GatewayProcess, key: str) -> None:
    """Anthropic's ``output_config`` on ``/v1/messages``, served by the built-in mock."""
    claude = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    try:
        parsed = claude.messages.parse(
            model="mock/echo",
            max_tokens=200,
            output_format=Person,
            messages=[{"role": "user", "content": "Ada"}],
        )
    finally:
        claude.close()
    check(parsed.parsed_output, "Ada")
