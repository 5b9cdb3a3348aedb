"""OpenAI behaviour of the service, through the official openai SDK on a real uvicorn server on loopback, in front
of a FAKE OpenAI-compatible base (tests/fake_openai_base.py) that supports tools, JSON and streaming.

Each feature is asserted against the fake directly as the control: without a user the service answers exactly
what the base answers; with one, the answer is personalized (RAG) but keeps OpenAI's shape and semantics.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fake_openai_base import FakeOpenAIBase
from fakes import FakeEchoLLM
from serve_helpers import add, client, openai, running, serving

from personalign.serve.app import create_app
from personalign.serve.config import ServeConfig
from personalign.serve.store import Store
from personalign.serve.streaming import FinalText

WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}]
QUESTION_TEXT = "what is the weather in Paris"
ASK = [{"role": "user", "content": QUESTION_TEXT}]


def service_in_front_of(base_url: str, tmp_path, **config) -> tuple[object, str]:
    """The app with the fake as its HTTP base (RAG, SQLite) and tenant acme's key."""
    config = ServeConfig(data_dir=str(tmp_path), base_llm="openai:fake-base",
                         base_llm_options={"base_url": base_url, "api_key": "unused"}, **config)
    store = Store(config.store())
    return create_app(config, store=store), store.add_tenant("acme")


@pytest.fixture
def stack(tmp_path):
    """(the service's openai client, the fake's own client, the fake, the service URL, the tenant key)."""
    fake = FakeOpenAIBase()
    with fake as base_url:
        app, key = service_in_front_of(base_url, tmp_path)
        with running(app) as url:
            add(url, key, "alice", "I always answer in French", "I love cats")
            yield client(url, key), openai.OpenAI(base_url=base_url, api_key="x", max_retries=0), fake, url, key


def chat(c, **kw):
    return c.chat.completions.create(model="fake-base", **{"messages": ASK, **kw})


def test_without_a_user_the_answer_is_the_bases_own(stack):
    service, direct, fake, _, _ = stack
    for kw in ({}, {"stop": [" the"]}, {"max_tokens": 2}, {"n": 3}, {"logprobs": True, "top_logprobs": 1}):
        ours, theirs = chat(service, **kw), chat(direct, **kw)
        assert [(c.index, c.message.content, c.finish_reason) for c in ours.choices] == [
            (c.index, c.message.content, c.finish_reason) for c in theirs.choices], kw
        assert ours.choices[0].logprobs == theirs.choices[0].logprobs
    assert [c.finish_reason for c in chat(service, max_tokens=2).choices] == ["length"]
    assert chat(service, stop=" the").choices[0].message.content == "fake answer to: what is"
    images = [{"role": "user", "content": [{"type": "text", "text": "what is this"},
                                           {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]
    assert chat(service, messages=images).choices[0].message.content == "fake answer to: what is this [1 image(s)]"


def test_a_personalized_answer_keeps_n_stop_max_tokens_and_logprobs(stack):
    service, _, fake, _, _ = stack
    reply = chat(service, user="alice", n=2)
    assert [c.index for c in reply.choices] == [0, 1] and "I love cats" in reply.choices[0].message.content
    assert all("I love cats" in r["messages"][-1]["content"] for r in fake.requests[-2:])  # two whole runs
    streamed = {0: "", 1: ""}
    for chunk in chat(service, user="alice", n=2, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert list(streamed.values()) == [c.message.content for c in reply.choices]
    cut = chat(service, user="alice", stop=["history"])
    assert "history" not in cut.choices[0].message.content and cut.choices[0].finish_reason == "stop"
    assert fake.requests[-1]["stop"] == ["history"]  # the final stage got it
    assert chat(service, user="alice", max_tokens=3).choices[0].finish_reason == "length"
    scored = chat(service, user="alice", logprobs=True)
    assert [t.token for t in scored.choices[0].logprobs.content] == scored.choices[0].message.content.split(" ")


def test_streaming_is_incremental_and_ends_with_openais_usage_chunk(tmp_path):
    fake = FakeOpenAIBase(token_delay=0.02)
    with fake as base_url:
        app, key = service_in_front_of(base_url, tmp_path)
        with running(app) as url:
            add(url, key, "alice", "I love cats")
            service = client(url, key)
            for user in ("alice", None):
                extra = {"user": user} if user else {}
                cats = [{"role": "user", "content": "tell me something about cats that I would like to read"}]
                whole = chat(service, messages=cats, **extra).choices[0].message.content
                start, first, chunks = time.perf_counter(), None, []
                for chunk in chat(service, messages=cats, stream=True, stream_options={"include_usage": True}, **extra):
                    chunks.append(chunk)
                    if chunk.choices and chunk.choices[0].delta.content and first is None:
                        first = time.perf_counter() - start
                total = time.perf_counter() - start
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                assert text == whole and len(whole.split()) > 10
                assert first < total / 3, (first, total)  # tokens arrive as the base generates them
                *body, last = chunks
                assert last.choices == [] and last.usage.completion_tokens == len(whole.split())
                assert all(c.usage is None for c in body) and body[-1].choices[0].finish_reason == "stop"


def test_tool_calls_come_back_unchanged_and_tool_results_reach_the_model(stack):
    service, direct, fake, _, _ = stack
    theirs = chat(direct, tools=WEATHER)
    for extra in ({}, {"user": "alice"}):
        ours = chat(service, tools=WEATHER, **extra)
        assert ours.choices[0].finish_reason == "tool_calls" and ours.choices[0].message.content is None
        assert ours.choices[0].message.tool_calls == theirs.choices[0].message.tool_calls
        assert fake.requests[-1]["tools"] == WEATHER
        streamed = list(chat(service, tools=WEATHER, stream=True, **extra))
        calls = [t for c in streamed if c.choices for t in c.choices[0].delta.tool_calls or []]
        assert [(t.id, t.function.name, t.function.arguments) for t in calls] == [
            (t.id, t.function.name, t.function.arguments) for t in theirs.choices[0].message.tool_calls]
        assert streamed[-1].choices[0].finish_reason == "tool_calls"
    call = theirs.choices[0].message.tool_calls[0]
    later = ASK + [theirs.choices[0].message.model_dump(exclude_none=True),
                   {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    assert chat(service, messages=later, tools=WEATHER).choices[0].message.content == "tool said: sunny, 21 C"
    assert fake.requests[-1]["messages"][1]["tool_calls"][0]["id"] == call.id  # the pass-through keeps both
    personal = chat(service, messages=later, tools=WEATHER, user="alice").choices[0]
    assert personal.finish_reason == "stop" and "sunny, 21 C" in personal.message.content  # RAG's prompt has it
    assert "I love cats" in personal.message.content


def test_structured_output_parses_with_and_without_a_user(stack):
    from pydantic import BaseModel

    class Pet(BaseModel):
        name: str
        legs: int

    service, direct, fake, _, _ = stack
    theirs = direct.chat.completions.parse(model="fake-base", messages=ASK, response_format=Pet)
    ours = service.chat.completions.parse(model="fake-base", messages=ASK, response_format=Pet)
    assert ours.choices[0].message.parsed == theirs.choices[0].message.parsed and theirs.choices[0].message.parsed.legs == 7
    personal = service.chat.completions.parse(model="fake-base", messages=ASK, response_format=Pet, user="alice")
    assert personal.choices[0].message.parsed.legs == 7 and fake.requests[-1]["response_format"]["type"] == "json_schema"
    assert json.loads(chat(service, user="alice", response_format={"type": "json_object"}).choices[0].message.content)


def test_what_the_service_cannot_honour_is_refused_by_name(stack, tmp_path):
    service, _, _, url, key = stack
    image = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]}]
    cases = [({"frequency_penalty": 0.5}, "frequency_penalty"), ({"functions": [{"name": "f"}]}, "functions"),
             ({"reasoning_effort": "high"}, "reasoning_effort"), ({"whatever": 1}, "whatever"),
             ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"messages": image, "user": "alice"}, "messages.0.content.1"),
             ({"top_logprobs": 2}, "top_logprobs")]
    for body, param in cases:
        reply = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": "m", "messages": ASK, **body})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == param, (body, reply.text)
    harmless = chat(service, metadata={"a": "b"}, store=False, frequency_penalty=0, parallel_tool_calls=True)
    assert harmless.choices[0].message.content == "fake answer to: what is the weather in Paris"
    config = ServeConfig(data_dir=str(tmp_path / "echo"))
    with serving(config, FakeEchoLLM()) as (echo, echo_key):  # a base without tools or JSON
        for body, param in (({"tools": WEATHER}, "tools"), ({"response_format": {"type": "json_object"}}, "response_format"),
                            ({"logprobs": True}, "logprobs"), ({"messages": image}, "messages.0.content.1")):
            reply = httpx.post(f"{echo}/v1/chat/completions", headers={"Authorization": f"Bearer {echo_key}"},
                               json={"model": "m", "messages": ASK, **body})
            assert reply.status_code == 400 and reply.json()["error"]["param"] == param, (body, reply.text)


def test_rpo_streams_only_the_personalized_segment_and_falls_back_when_malformed():
    extract = FinalText("rpo", ("STOP",))
    for raw, expected in [("<think>she likes cats</think>\n<personalized> Cats, then. </personalized>", "Cats, then."),
                          ("<THINK>x</THINK><Personalized>cut by the budg", "cut by the budg"),
                          ("<think>x</think> <personalized>one STOP two</personalized>", "one"),
                          ("no tags at all", None), ("<think>x</think><personalized> </personalized>", None)]:
        sent = ""
        for end in range(1, len(raw) + 1):  # one character at a time: what is certain only grows
            certain = extract.certain(raw[:end])
            assert certain.startswith(sent) and "think" not in certain.lower()
            sent = certain
        assert extract.text(raw) == expected and (expected or "").startswith(sent)
    plain = FinalText("plain", ("</s>",))
    assert plain.certain("hello </") == "hello " and plain.text("hello </s> more") == "hello "


def test_the_responses_api_is_answered_by_the_same_machinery(stack):
    service, direct, fake, url, key = stack
    plain = service.responses.create(model="fake-base", input=QUESTION_TEXT, instructions="be brief")
    assert fake.requests[-1]["messages"][0] == {"role": "system", "content": "be brief"}
    assert plain.output_text == chat(direct).choices[0].message.content and plain.status == "completed"
    personal = service.responses.create(model="fake-base", input=[{"role": "user", "content": QUESTION_TEXT}],
                                        safety_identifier="alice", max_output_tokens=500)
    assert "I love cats" in personal.output_text and personal.usage.output_tokens == len(personal.output_text.split())
    assert service.responses.create(model="fake-base", input=QUESTION_TEXT, max_output_tokens=2).status == "incomplete"
    events = list(service.responses.create(model="fake-base", input=QUESTION_TEXT, user="alice", stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 3 and "".join(deltas) == personal.output_text and events[-1].type == "response.completed"
    assert events[-1].response.output_text == personal.output_text
    tool = [{"type": "function", "name": "get_weather", "parameters": WEATHER[0]["function"]["parameters"]}]
    called = service.responses.create(model="fake-base", input=QUESTION_TEXT, tools=tool)
    (call,) = called.output
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {"city": "city of Paris"}
    later = service.responses.create(model="fake-base", tools=tool, input=[
        {"role": "user", "content": QUESTION_TEXT}, {"type": "function_call", "call_id": call.call_id,
                                                     "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert later.output_text == "tool said: sunny"
    refused = httpx.post(f"{url}/v1/responses", headers={"Authorization": f"Bearer {key}"},
                         json={"model": "m", "input": "hi", "previous_response_id": "resp_1"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "previous_response_id"
    image = [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AA=="}]}]
    for body, param in (({"input": image, "user": "alice"}, "input"), ({"max_output_tokens": 0}, "max_output_tokens"),
                        ({"tools": [{"type": "web_search"}]}, "tools.0.type")):
        refused = httpx.post(f"{url}/v1/responses", headers={"Authorization": f"Bearer {key}"},
                             json={"model": "m", "input": "hi", **body})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, (body, refused.text)


class FakeReflectionLLM(FakeEchoLLM):
    """FAKE reflection model for orchestration: streams ``reply`` a few characters at a time."""

    def __init__(self, reply: str):
        super().__init__()
        self.name, self.reply = "fake-reflection", reply

    def _generate(self, messages, params):
        from personalign.types import Completion

        return Completion(self.reply, 10, len(self.reply.split()))

    def stream(self, messages, params=None):
        for start in range(0, len(self.reply), 3):
            yield self.reply[start:start + 3]
        yield self._generate(messages, params)


@pytest.mark.parametrize("reply, expected", [
    ("<think>she is brief</think>\n<personalized>A short answer.</personalized>", "A short answer."),
    ("I forgot the tags", None)])
def test_rpo_streams_its_personalized_segment_through_the_service(tmp_path, reply, expected):
    config = ServeConfig(data_dir=str(tmp_path), method="rpo", method_options={"reflection_llm": FakeReflectionLLM(reply)})
    with serving(config, FakeEchoLLM()) as (url, key):
        add(url, key, "alice", "I like brief answers")
        service = client(url, key)
        whole = chat(service, user="alice")
        chunks = list(chat(service, user="alice", stream=True))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        base = whole.model_extra["personalign"]["base_answer"]
        assert whole.choices[0].message.content == "".join(pieces) == (expected or base)
        assert whole.model_extra["personalign"]["fallback"] == ("" if expected else "malformed output")
        assert not any("think" in p for p in pieces) and (len(pieces) > 1) == bool(expected)
        refused = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json={"model": "m", "messages": ASK, "user": "alice", "response_format": {"type": "text"},
                                   "logprobs": True})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "logprobs"


@pytest.mark.model
def test_the_embedded_model_streams_tokens_as_it_generates_them(tmp_path):
    config = ServeConfig(data_dir=str(tmp_path), base_llm="llamacpp", base_llm_options={"n_ctx": 2048})
    with serving(config) as (url, key):
        add(url, key, "alice", "I play the violin", "My favourite composer is Bach")
        service = client(url, key)
        for user in ("alice", None):
            extra = {"user": user} if user else {}
            messages = [{"role": "user", "content": "Describe a violin in three sentences."}]
            reply = chat(service, messages=messages, max_tokens=48, **extra)
            whole = reply.choices[0]
            start, times, text = time.perf_counter(), [], ""
            for chunk in chat(service, messages=messages, max_tokens=48, stream=True, **extra):
                if chunk.choices and chunk.choices[0].delta.content:
                    times.append(time.perf_counter() - start)
                    text += chunk.choices[0].delta.content
            assert text == whole.message.content and len(times) > 10  # token by token, the same answer
            assert times[0] < 0.7 * times[-1], times  # the first token long before the last
            assert whole.finish_reason == ("length" if reply.usage.completion_tokens == 48 else "stop")
