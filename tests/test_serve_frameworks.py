"""The client frameworks users reach for first, against the service in front of a FAKE OpenAI-compatible base
(tests/fake_openai_base.py), each feature asserted against the same framework pointed at the fake directly:
LangChain's ChatOpenAI and LiteLLM; a plain call, streaming (with usage), a tool call and structured output.

Without a user the service must give exactly what the base gives; with one (``user``, through the framework's
own field or ``extra_body``) tool calls are still the base's, and text and structured answers keep their shape.
"""

from __future__ import annotations

import os

import pytest
from fake_openai_base import FakeOpenAIBase
from pydantic import BaseModel
from serve_helpers import add, serving

from personalign.serve.config import ServeConfig

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM: no download of its price list
QUESTION = "what is the weather in Paris"


class Pet(BaseModel):
    name: str
    legs: int


def get_weather(city: str) -> str:
    """Weather in a city."""
    return "sunny"


WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}]


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory):
    """(the service's /v1 URL and key, the fake's /v1 URL)."""
    tmp_path = tmp_path_factory.mktemp("frameworks")
    with FakeOpenAIBase() as base_url:
        config = ServeConfig(data_dir=str(tmp_path), base_llm="openai:fake-base",
                             base_llm_options={"base_url": base_url, "api_key": "unused"})
        with serving(config) as (url, key):
            add(url, key, "alice", "I love cats", "I live in Paris")
            yield f"{url}/v1", key, base_url


def langchain_model(url: str, key: str, user: str | None = None):
    langchain_openai = pytest.importorskip("langchain_openai")
    return langchain_openai.ChatOpenAI(model="fake-base", base_url=url, api_key=key, max_retries=0,
                                       stream_usage=True, **({"extra_body": {"user": user}} if user else {}))


def test_langchain_chatopenai(endpoints):
    url, key, base_url = endpoints
    direct = langchain_model(base_url, "x")
    for user in (None, "alice"):
        ours = langchain_model(url, key, user)
        plain = ours.invoke(QUESTION)
        assert plain.content and plain.response_metadata["finish_reason"] == "stop"
        if user is None:
            assert plain.content == direct.invoke(QUESTION).content
        else:
            assert "I live in Paris" in plain.content  # personalized: RAG put her history in the prompt
        chunks = list(ours.stream(QUESTION))
        assert len(chunks) > 3 and "".join(c.content for c in chunks) == plain.content
        total = sum(chunks[1:], chunks[0])
        assert total.usage_metadata and total.usage_metadata["output_tokens"] == len(plain.content.split())
        called = ours.bind_tools([get_weather]).invoke(QUESTION)
        control = direct.bind_tools([get_weather]).invoke(QUESTION)
        assert called.tool_calls and called.tool_calls == control.tool_calls  # the base's calls, unchanged
        pet = ours.with_structured_output(Pet).invoke("describe a pet")
        assert isinstance(pet, Pet) and pet.legs == 7
        if user is None:
            assert pet == direct.with_structured_output(Pet).invoke("describe a pet")


def test_litellm(endpoints):
    litellm = pytest.importorskip("litellm")
    url, key, base_url = endpoints

    def ask(where: str, api_key: str, **kw):
        return litellm.completion(model="openai/fake-base", api_base=where, api_key=api_key, max_retries=0,
                                  messages=[{"role": "user", "content": QUESTION}], **kw)

    for user in (None, "alice"):
        # LiteLLM drops ``user`` for a model outside OpenAI's catalogue: the body field goes in extra_body
        extra = {"extra_body": {"user": user}} if user else {}
        plain = ask(url, key, **extra)
        control = ask(base_url, "x")
        assert plain.choices[0].finish_reason == "stop"
        if user is None:
            assert plain.choices[0].message.content == control.choices[0].message.content
        else:
            assert "I live in Paris" in plain.choices[0].message.content
        chunks = list(ask(url, key, stream=True, stream_options={"include_usage": True}, **extra))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len(chunks) > 3 and text == plain.choices[0].message.content
        assert any(getattr(c, "usage", None) and c.usage.completion_tokens == len(text.split()) for c in chunks)
        called = ask(url, key, tools=WEATHER, **extra)
        expected = ask(base_url, "x", tools=WEATHER)
        assert called.choices[0].finish_reason == "tool_calls"
        assert [(t.id, t.function.name, t.function.arguments) for t in called.choices[0].message.tool_calls] == [
            (t.id, t.function.name, t.function.arguments) for t in expected.choices[0].message.tool_calls]
        pet = Pet.model_validate_json(ask(url, key, response_format=Pet, **extra).choices[0].message.content)
        assert pet.legs == 7
        if user is None:
            assert pet == Pet.model_validate_json(ask(base_url, "x", response_format=Pet).choices[0].message.content)
