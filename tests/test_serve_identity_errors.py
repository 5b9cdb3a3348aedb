"""Naming the user (body fields and headers), the OpenAI error shape on every error, ``GET /v1/models/{id}``,
and retries that do not multiply with the client's: the service on a real uvicorn server, the official openai
client, and (for retries) a real HTTP base that fails and counts its attempts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fakes import FakeEchoLLM
from scripted_base import scripted_bases
from serve_helpers import add, client, openai, running, serving

from personalign.errors import ConfigError
from personalign.serve.app import create_app
from personalign.serve.config import ServeConfig
from personalign.serve.store import Store

HI = [{"role": "user", "content": "what do I like?"}]


@pytest.fixture
def service(tmp_path):
    config = ServeConfig(data_dir=str(tmp_path))
    with serving(config, FakeEchoLLM()) as (url, key):
        add(url, key, "zoë", "zoë likes sailing")
        add(url, key, "bob", "bob likes chess")
        yield url, key


def openai_shaped(reply: httpx.Response) -> dict[str, Any]:
    """The error object of an OpenAI-shaped error answer (and nothing of FastAPI's ``detail``)."""
    body = reply.json()
    assert list(body) == ["error"] and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"], body
    return body["error"]


def personalized_for(reply) -> str:
    content = reply.choices[0].message.content
    return "zoë" if "sailing" in content else "bob" if "chess" in content else ""


def test_the_user_can_be_named_by_any_field_or_header_and_they_must_agree(service):
    url, key = service
    chat = client(url, key).chat.completions
    ask = lambda **extra: chat.create(model="personalign", messages=HI, **extra)  # noqa: E731
    assert personalized_for(ask(user="zoë")) == "zoë"
    assert personalized_for(ask(extra_body={"safety_identifier": "zoë"})) == "zoë"
    utf8_header = httpx.post(f"{url}/v1/chat/completions", json={"model": "personalign", "messages": HI},
                             headers={"Authorization": f"Bearer {key}", "X-Personalign-User": "zoë".encode()})
    assert "sailing" in utf8_header.json()["choices"][0]["message"]["content"]  # UTF-8 in a header: the same zoë
    assert personalized_for(ask(extra_headers={"x-sm-user-id": "bob"})) == "bob"
    agreeing = ask(user="bob", extra_body={"safety_identifier": "bob"}, extra_headers={"x-sm-user-id": "bob"})
    assert personalized_for(agreeing) == "bob"
    plain = ask(extra_body={"prompt_cache_key": "zoë"})  # a cache key is not an identity
    assert personalized_for(plain) == "" and plain.model_extra["personalign"]["fallback"] == "no user"
    assert personalized_for(ask(user="", extra_headers={"x-sm-user-id": "bob"})) == "bob"  # empty: not set
    with pytest.raises(openai.BadRequestError) as conflict:
        ask(user="zoë", extra_headers={"X-Personalign-User": "bob"})
    assert conflict.value.status_code == 400
    message = conflict.value.body["message"]
    assert "header x-personalign-user" in message and "user" in message.split("in ")[-1]
    with pytest.raises(openai.BadRequestError, match="safety_identifier"):
        ask(user="zoë", extra_body={"safety_identifier": "bob"})
    with pytest.raises(openai.BadRequestError, match="safety_identifier"):
        ask(extra_body={"safety_identifier": 42})


def test_every_error_is_in_the_openai_shape(service):
    url, key = service
    auth = {"Authorization": f"Bearer {key}"}
    unknown = httpx.get(f"{url}/v1/no/such/route", headers=auth)
    assert unknown.status_code == 404 and openai_shaped(unknown)["code"] == "unknown_url"
    assert "GET /v1/no/such/route" in openai_shaped(unknown)["message"]
    wrong_method = httpx.delete(f"{url}/v1/models", headers=auth)
    assert wrong_method.status_code == 405 and openai_shaped(wrong_method)["code"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "GET"
    chat = f"{url}/v1/chat/completions"
    not_json = httpx.post(chat, content=b'{"model": "m", "messages": [', headers={**auth, "Content-Type": "application/json"})
    assert not_json.status_code == 400 and openai_shaped(not_json)["code"] == "invalid_json"
    not_utf8 = httpx.post(chat, content=b'{"model": "m\xff\xfe", "messages": []}',
                          headers={**auth, "Content-Type": "application/json"})
    assert not_utf8.status_code == 400 and openai_shaped(not_utf8)["code"] == "invalid_json"
    not_an_object = httpx.post(chat, content=b'"hello"', headers={**auth, "Content-Type": "application/json"})
    assert not_an_object.status_code == 400 and openai_shaped(not_an_object)["param"] == "body"
    no_key = httpx.get(f"{url}/v1/models/personalign")
    assert no_key.status_code == 401 and openai_shaped(no_key)["code"] == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:  # the openai client parses it like OpenAI's own
        client(url, key).models.retrieve("gpt-nothing")
    assert missing.value.body["code"] == "model_not_found" and "gpt-nothing" in missing.value.body["message"]
    model = client(url, key).models.retrieve("personalign")
    assert (model.id, model.object, model.owned_by) == ("personalign", "model", "personalign")


def test_an_unexpected_failure_is_a_500_in_the_openai_shape(tmp_path):
    class Broken(FakeEchoLLM):
        def _generate(self, messages, params):
            raise RuntimeError("a bug, not an upstream error")

    config = ServeConfig(data_dir=str(tmp_path), fallback_to_base=False)
    with serving(config, Broken()) as (url, key):
        reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "personalign", "messages": HI, "user": "u"},
                           headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 500 and openai_shaped(reply)["code"] == "internal_error"
    assert "a bug" not in reply.text and "Traceback" not in reply.text


# ---------------------------------------------------------------- retries against a real failing HTTP base

Respond = Callable[[int], tuple[int, dict[str, str], float]]


@pytest.fixture
def failing_base() -> Iterator[Callable[[Respond], tuple[str, list[dict]]]]:
    """A real HTTP base on loopback: ``respond(n)`` gives (status, headers, seconds to stall) for attempt n;
    yields its URL and the list of the attempts it got (one entry each)."""
    with scripted_bases() as start:
        def failing(respond: Respond) -> tuple[str, list[dict]]:
            def scripted(n: int, _: dict) -> tuple[int, dict, Any]:
                status, headers, stall = respond(n)
                time.sleep(stall)
                return status, headers, {"error": {"message": f"base says {status}"}}
            url, state = start(scripted)
            return url, state["requests"]
        yield failing


def service_before(base_url: str, tmp_path, **options: Any):
    config = ServeConfig(data_dir=str(tmp_path), base_llm="openai:base-model",
                         base_llm_options={"base_url": base_url, "backoff_base": 0.01, **options})
    store = Store(config.store())
    return create_app(config, store=store), store.add_tenant("acme")


@pytest.mark.parametrize("base_status, base_headers, status, retry_after, tries", [
    (503, {}, 503, "1", 2),                     # overloaded: one retry, then "come back in 1 s"
    (429, {"Retry-After": "0.2"}, 429, "1", 2),  # a short wait asked: the service waits it once
    (429, {"Retry-After": "30"}, 429, "30", 1),  # a long wait asked: not retried here, the client waits it
    (500, {}, 502, None, 2),                    # failing: one retry, 502, nothing to wait for
    (400, {}, 400, None, 1),                    # the base refused the request: no retry anywhere
], ids=["503", "429-short", "429-long", "500", "400"])
def test_the_base_is_retried_at_most_once_per_client_request(failing_base, tmp_path, base_status, base_headers,
                                                             status, retry_after, tries):
    base_url, attempts = failing_base(lambda n: (base_status, base_headers, 0.0))
    app, key = service_before(base_url, tmp_path)
    with running(app) as url:
        for user in (None, "alice"):  # the plain and the personalized path
            attempts.clear()
            reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "personalign", "messages": HI,
                                                                   **({"user": user} if user else {})},
                               headers={"Authorization": f"Bearer {key}"})
            assert (reply.status_code, reply.headers.get("retry-after"), len(attempts)) == (status, retry_after, tries)
            assert f"base says {base_status}" in openai_shaped(reply)["message"]


def test_a_retry_is_logged_by_status_without_the_bases_reply(failing_base, tmp_path, capfd):
    """A base's error body may quote the prompt (the user's items): the retry line names only the status."""
    base_url, attempts = failing_base(lambda n: (503, {}, 0.0))
    app, key = service_before(base_url, tmp_path)
    with running(app) as url:
        reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "personalign", "messages": HI, "user": "alice"},
                           headers={"Authorization": f"Bearer {key}"})
    logged = capfd.readouterr().err
    assert reply.status_code == 503 and len(attempts) == 2
    assert "HTTP 503; retry 1/1" in logged and "base says" not in logged


def test_a_base_timeout_is_a_504_after_one_retry(failing_base, tmp_path):
    base_url, attempts = failing_base(lambda n: (200, {}, 1.0))
    app, key = service_before(base_url, tmp_path, timeout=0.2)
    with running(app) as url, pytest.raises(openai.APIStatusError) as caught:
        client(url, key).chat.completions.create(model="personalign", messages=HI)
    assert caught.value.status_code == 504 and caught.value.body["code"] == "upstream_timeout" and len(attempts) == 2


def test_with_the_openai_clients_own_retries_the_base_sees_two_attempts_per_client_attempt(failing_base, tmp_path):
    base_url, attempts = failing_base(lambda n: (503, {}, 0.0))
    app, key = service_before(base_url, tmp_path)
    with running(app) as url:
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=key)  # the SDK's default: 2 retries, honouring Retry-After
        start = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model="personalign", messages=HI, user="alice")
        seconds = time.monotonic() - start
    assert caught.value.status_code == 503 and caught.value.response.headers["retry-after"] == "1"
    assert len(attempts) == 3 * 2  # 3 client attempts x (1 + 1 service retry); it was 3 x 4 = 12
    print(f"\nbase attempts per client request: {len(attempts)} in {seconds:.2f} s")


def test_the_service_refuses_more_than_one_retry_of_the_base(tmp_path):
    with pytest.raises(ConfigError, match="max_retries"):
        service_before("http://127.0.0.1:9/v1", tmp_path, max_retries=3)


def test_a_streamed_request_is_not_retried_and_gets_the_same_error(failing_base, tmp_path):
    base_url, attempts = failing_base(lambda n: (503, {"Retry-After": "2"}, 0.0))
    app, key = service_before(base_url, tmp_path)
    with running(app) as url:
        reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "personalign", "messages": HI, "stream": True,
                                                               "user": "alice"},
                           headers={"Authorization": f"Bearer {key}"})
    assert (reply.status_code, reply.headers.get("retry-after"), len(attempts)) == (503, "2", 1)
    assert openai_shaped(reply)["code"] == "upstream_unavailable"
