"""Backends without a model: the SQLite cache, the OpenAI client against a real local HTTP server, get_llm."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from scripted_base import Responder, scripted_bases

from personalign.backends import get_llm, shorten_messages
from personalign.backends._cached import CachedLLM
from personalign.backends.base import LLM
from personalign.backends.openai import OpenAICompatibleLLM
from personalign.errors import BackendError, ConfigError
from personalign.types import Completion, GenParams, Messages


def ask(text: str) -> Messages:
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------- cache


class FakeCountingLLM(LLM):
    """A FAKE backend: echoes the last message and counts what reaches it."""

    def __init__(self, name: str = "fake-model"):
        self.name = name
        self.calls: list[Messages] = []
        self.batches: list[list[Messages]] = []

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        self.calls.append(messages)
        return Completion(f"{messages[-1]['content']}|t={params.temperature}", prompt_tokens=5, completion_tokens=2)

    def chat_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Completion]:
        self.batches.append(list(batch))
        return super().chat_batch(batch, params)


def test_cache_second_identical_call_is_a_hit(tmp_path):
    inner = FakeCountingLLM()
    llm = CachedLLM(inner, tmp_path / "cache.sqlite")
    first = llm.chat(ask("hi"), GenParams(max_tokens=8))
    second = llm.chat(ask("hi"), GenParams(max_tokens=8))
    assert len(inner.calls) == 1
    assert (first.cached, second.cached) == (False, True)
    assert (second.text, second.prompt_tokens, second.completion_tokens) == ("hi|t=0.0", 5, 2)
    assert llm.name == "fake-model" and llm.count_tokens("a b") == inner.count_tokens("a b")
    assert llm.describe()["name"] == "fake-model"


def test_cache_misses_on_other_params_messages_or_model(tmp_path):
    path = tmp_path / "cache.sqlite"
    inner = FakeCountingLLM()
    llm = CachedLLM(inner, path)
    llm.chat(ask("hi"))
    assert not llm.chat(ask("hi"), GenParams(temperature=0.5)).cached
    assert not llm.chat(ask("hi"), GenParams(stop=("\n",))).cached
    assert not llm.chat(ask("hello")).cached
    assert len(inner.calls) == 4
    other = FakeCountingLLM(name="other-model")
    assert not CachedLLM(other, path).chat(ask("hi")).cached
    assert len(other.calls) == 1


def test_cache_persists_across_instances(tmp_path):
    path = tmp_path / "cache.sqlite"
    first = CachedLLM(FakeCountingLLM(), path)
    first.chat(ask("remember me"))
    first.close()
    inner = FakeCountingLLM()
    again = CachedLLM(inner, path).chat(ask("remember me"))
    assert again.cached and again.text == "remember me|t=0.0" and inner.calls == []


def test_cache_batch_forwards_only_misses_and_keeps_order(tmp_path):
    inner = FakeCountingLLM()
    llm = CachedLLM(inner, tmp_path / "cache.sqlite")
    llm.chat_batch([ask("b"), ask("d")])
    inner.batches.clear()
    out = llm.chat_batch([ask("a"), ask("b"), ask("c"), ask("d"), ask("c")])
    assert inner.batches == [[ask("a"), ask("c")]]
    assert [c.text.split("|")[0] for c in out] == ["a", "b", "c", "d", "c"]
    assert [c.cached for c in out] == [False, True, False, True, True]


def test_cache_batch_stores_each_chunk_as_it_comes(tmp_path):
    inner = FakeCountingLLM()
    llm = CachedLLM(inner, tmp_path / "cache.sqlite", chunk_size=2)
    llm.chat_batch([ask(str(i)) for i in range(5)])
    assert [len(b) for b in inner.batches] == [2, 2, 1]
    assert len(llm.store) == 5


# ---------------------------------------------------------------- OpenAI-compatible client

def reply(text: str, usage: bool = True) -> dict:
    body: dict[str, Any] = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    if usage:
        body["usage"] = {"prompt_tokens": 11, "completion_tokens": 3}
    return body


@pytest.fixture
def serve() -> Iterator[Callable[[Responder], tuple[str, dict]]]:
    """Start real HTTP servers on 127.0.0.1; ``respond(n, body)`` gives (status, headers, JSON) for request n."""
    with scripted_bases() as start:
        yield start


def test_openai_success_sends_key_and_body_from_env(serve, monkeypatch):
    url, state = serve(lambda n, body: (200, {}, reply("Paris")))
    monkeypatch.setenv("PERSONALIGN_LLM_BASE_URL", url)
    monkeypatch.setenv("PERSONALIGN_LLM_API_KEY", "sk-test-123")
    llm = OpenAICompatibleLLM("my-model")
    out = llm.chat(ask("Capital of France?"), GenParams(max_tokens=5, temperature=0.3, top_p=0.9, seed=7, stop=("\n",)))
    assert (out.text, out.prompt_tokens, out.completion_tokens, out.cached) == ("Paris", 11, 3, False)
    request = state["requests"][0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    assert request["body"] == {"model": "my-model", "messages": ask("Capital of France?"), "max_tokens": 5,
                               "temperature": 0.3, "top_p": 0.9, "seed": 7, "stop": ["\n"]}
    assert llm.name == f"openai:my-model@{url}"


def test_openai_without_usage_estimates_tokens_and_cuts_at_stop(serve):
    url, _ = serve(lambda n, body: (200, {}, reply("one two STOP three", usage=False)))
    out = OpenAICompatibleLLM("m", base_url=url).chat(ask("count please"), GenParams(stop=("STOP",)))
    assert out.text == "one two " and out.prompt_tokens > 0 and out.completion_tokens > 0


def test_openai_retries_server_errors(serve):
    url, state = serve(lambda n, body: (500, {}, {"error": "boom"}) if n <= 2 else (200, {}, reply("ok")))
    out = OpenAICompatibleLLM("m", base_url=url, backoff_base=0.001).chat(ask("x"))
    assert out.text == "ok" and len(state["requests"]) == 3


def test_openai_honours_retry_after_on_429(serve, monkeypatch):
    import personalign.backends.openai as openai_backend

    url, state = serve(lambda n, body: (429, {"Retry-After": "0"}, {"error": "slow down"}) if n == 1
                       else (200, {}, reply("ok")))
    waits: list[float] = []
    monkeypatch.setattr(openai_backend.time, "sleep", waits.append)
    out = OpenAICompatibleLLM("m", base_url=url, backoff_base=5.0).chat(ask("x"))  # backoff alone would wait >= 2.5 s
    assert out.text == "ok" and len(state["requests"]) == 2
    assert waits == [0.0]  # the server's Retry-After, not the exponential backoff


def test_openai_client_error_fails_at_once(serve):
    url, state = serve(lambda n, body: (400, {}, {"error": {"message": "bad model name"}}))
    with pytest.raises(BackendError) as caught:
        OpenAICompatibleLLM("m", base_url=url, backoff_base=0.001).chat(ask("x"))
    assert "400" in str(caught.value) and "bad model name" in str(caught.value) and "\n" not in str(caught.value)
    assert len(state["requests"]) == 1


def test_openai_timeout_gives_up_after_retries(serve):
    def slow(n: int, body: dict) -> tuple[int, dict, Any]:
        time.sleep(1.0)
        return 200, {}, reply("too late")

    url, state = serve(slow)
    llm = OpenAICompatibleLLM("m", base_url=url, timeout=0.2, max_retries=1, backoff_base=0.001)
    with pytest.raises(BackendError, match="timed out"):
        llm.chat(ask("x"))
    assert len(state["requests"]) == 2


def test_openai_batch_bounded_concurrency_in_order(serve):
    def echo(n: int, body: dict) -> tuple[int, dict, Any]:
        time.sleep(0.05)
        return 200, {}, reply("echo:" + body["messages"][-1]["content"])

    url, state = serve(echo)
    llm = OpenAICompatibleLLM("m", base_url=url, concurrency=2)
    out = llm.chat_batch([ask(str(i)) for i in range(8)])
    assert [c.text for c in out] == [f"echo:{i}" for i in range(8)]
    assert len(state["requests"]) == 8 and state["max_in_flight"] == 2


# ---------------------------------------------------------------- get_llm and helpers


def test_get_llm_unknown_backend_lists_choices():
    with pytest.raises(ConfigError) as caught:
        get_llm("nosuch:thing")
    message = str(caught.value)
    assert "nosuch" in message and "llamacpp" in message and "openai" in message and "transformers" in message


def test_get_llm_splits_on_first_colon_caches_and_checks_options(serve, tmp_path):
    url, _ = serve(lambda n, body: (200, {}, reply(body["model"])))
    llm = get_llm("openai:org:model:v1", cache_path=tmp_path / "c.sqlite", base_url=url)
    assert isinstance(llm, CachedLLM) and llm.model == "org:model:v1"
    assert llm.chat(ask("x")).text == "org:model:v1" and llm.chat(ask("x")).cached
    with pytest.raises(ConfigError, match="no_such_option"):
        get_llm("openai:m", no_such_option=1)


def test_shorten_messages_cuts_the_middle_of_the_longest():
    words = [f"w{i}" for i in range(1000)]
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": " ".join(words)}]
    count = lambda ms: sum(len(m["content"].split()) for m in ms)  # noqa: E731
    short = shorten_messages(messages, count, 100)
    assert count(short) <= 100 and short[0] == messages[0]
    assert short[1]["content"].startswith("w0 w1") and short[1]["content"].endswith("w998 w999")
    assert " ... " in short[1]["content"] and len(messages[1]["content"].split()) == 1000


def test_model_file_id_changes_when_a_file_is_rewritten_with_the_same_size(tmp_path):
    from personalign.backends import model_file_id

    model = tmp_path / "m.gguf"
    model.write_bytes(b"a" * 3_000_000)
    first = model_file_id(model)
    assert model_file_id(model) == first and first.startswith("m.gguf@")
    model.write_bytes(b"a" * 2_999_999 + b"b")  # re-exported weights, same size
    assert model_file_id(model) != first


# ---------------------------------------------------------------- identities and cache keys


def test_requantized_copies_are_named_by_content_not_by_file_name(tmp_path, monkeypatch):
    from personalign.backends.llamacpp import requantized_path

    monkeypatch.setenv("PERSONALIGN_MODEL_CACHE", str(tmp_path / "cache"))
    first, second = tmp_path / "a" / "model.f16.gguf", tmp_path / "b" / "model.f16.gguf"
    for path, data in ((first, b"weights of task A"), (second, b"weights of task B")):
        path.parent.mkdir()
        path.write_bytes(data)
    assert requantized_path(first, "q8_0") != requantized_path(second, "q8_0")
    before = requantized_path(first, "q8_0")
    first.write_bytes(b"retrained weights")
    assert requantized_path(first, "q8_0") != before
    with pytest.raises(ConfigError, match="unknown quant"):
        requantized_path(first, "q2")


class FakeIdentityLLM(FakeCountingLLM):
    """A FAKE backend with a settable identity (as llama.cpp's n_ctx or transformers' dtype)."""

    def __init__(self, **identity):
        super().__init__()
        self._identity = identity

    def identity(self):
        return {"name": self.name, **self._identity}


def test_cache_key_covers_every_result_changing_setting(tmp_path):
    path = tmp_path / "cache.sqlite"
    for identity in ({"n_ctx": 2048}, {"n_ctx": 4096}, {"dtype": "torch.bfloat16"}):
        inner = FakeIdentityLLM(**identity)
        CachedLLM(inner, path).chat(ask("same prompt"), GenParams())
        assert len(inner.calls) == 1  # another context size or dtype is another model: a miss
    inner = FakeIdentityLLM(n_ctx=2048)
    CachedLLM(inner, path).chat(ask("same prompt"), GenParams())
    assert inner.calls == []


def test_model_identity_is_the_content_not_the_path(tmp_path):
    from personalign.backends import model_file_id

    a, b = tmp_path / "one" / "m.gguf", tmp_path / "two" / "m.gguf"
    for path in (a, b):
        path.parent.mkdir()
        path.write_bytes(b"same bytes")
    assert model_file_id(a) == model_file_id(b)
    b.write_bytes(b"other bytes")
    assert model_file_id(a) != model_file_id(b)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    before = model_file_id(folder)
    (folder / "model.safetensors").write_bytes(b"y")
    assert model_file_id(folder) != before


def test_bad_backend_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="n_threads must be an integer >= 1, got 'abc'"):
        get_llm("llamacpp", n_threads="abc")
    with pytest.raises(ConfigError, match="timeout must be a number"):
        get_llm("openai:m", base_url="http://127.0.0.1:9/v1", timeout="soon")
    with pytest.raises(ConfigError, match="it takes .*timeout="):
        get_llm("openai:m", nonsense=1)
    with pytest.raises(ConfigError, match="--workers is for in-process backends"):
        get_llm("openai:m", workers=2)
