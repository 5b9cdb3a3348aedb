"""The personalization service on a real uvicorn server on loopback, driven by the official openai client: answers,
tenants, deletes, errors, and the real bundled model behind it.

Orchestration tests use FakeEchoLLM (it echoes the prompt, so a test sees what the method retrieved); the
``model`` tests run the real bundled model. Derived data: test_serve_derived.py; durability: test_serve_durability.py.
"""

from __future__ import annotations

import subprocess

import httpx
import pytest
import sqlalchemy
from fakes import FakeEchoLLM
from serve_helpers import add, ask, client, openai, running, serve_config, serve_process, serving, stop, store_url

from personalign.serve.app import create_app
from personalign.serve.config import ServeConfig, load_serve_config
from personalign.serve.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
def service(request, tmp_path):
    """A running app on SQLite, then the same on a real PostgreSQL server (skipped when it cannot start)."""
    url = store_url(request, request.param)
    config = ServeConfig(data_dir=str(tmp_path), store_url=url, max_history_items=5, max_request_bytes=4000)
    store = Store(config.store(), config.max_history_items)
    keys = {"acme": store.add_tenant("acme"), "globex": store.add_tenant("globex")}
    llm = FakeEchoLLM()
    with running(create_app(config, base_llm=llm, store=store)) as url:
        yield url, keys, llm, config, store
    store.engine.dispose()


def test_completion_is_personalized_from_the_users_history_and_streams_the_same(service):
    url, keys, llm, _, store = service
    add(url, keys["acme"], "alice", "I always write in lowercase, no emojis", "I love short answers about cats")
    reply = ask(url, keys["acme"], "alice", "tell me about cats")
    content = reply.choices[0].message.content
    assert "I love short answers about cats" in content  # RAG put her history in the prompt
    trace = reply.model_extra["personalign"]
    assert len(trace["retrieved_ids"]) == 2 and trace["stages"] == ["answer"] and trace["fallback"] == ""
    stream = client(url, keys["acme"]).chat.completions.create(
        model="personalign", messages=[{"role": "user", "content": "tell me about cats"}], user="alice", stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == content
    plain = ask(url, keys["acme"], None, "tell me about cats")
    assert plain.choices[0].message.content == "echo: tell me about cats"  # no user: the base answer
    models = client(url, keys["acme"]).models.list()
    assert [m.id for m in models.data] == ["personalign"]


def test_the_requests_sampling_fields_reach_the_base_call_and_the_method(service):
    url, keys, llm, _, _ = service
    add(url, keys["acme"], "alice", "I love short answers about cats")
    chat = client(url, keys["acme"]).chat.completions
    for user in ("alice", None):
        extra = {"user": user} if user else {}
        chat.create(model="personalign", messages=[{"role": "user", "content": "hi"}], temperature=0.7, top_p=0.9,
                    seed=3, max_tokens=12, **extra)
        assert (llm.params[-1].temperature, llm.params[-1].top_p, llm.params[-1].seed, llm.params[-1].max_tokens) == (
            0.7, 0.9, 3, 12)
    chat.create(model="personalign", messages=[{"role": "user", "content": "hi"}], user="alice")
    assert (llm.params[-1].temperature, llm.params[-1].seed) == (0.0, 0)  # left out: the method's greedy default
    with pytest.raises(openai.BadRequestError, match="temperature"):
        chat.create(model="personalign", messages=[{"role": "user", "content": "hi"}], temperature=3)


def test_earlier_turns_of_a_conversation_reach_the_method(service):
    url, keys, llm, _, _ = service
    add(url, keys["acme"], "alice", "I love short answers about cats")
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "my cat is called Miso"},
                {"role": "assistant", "content": "nice name"}, {"role": "user", "content": "what is her name?"}]
    reply = client(url, keys["acme"]).chat.completions.create(model="personalign", messages=messages, user="alice")
    prompt = llm.prompts[-1]
    assert "user: my cat is called Miso" in prompt and "assistant: nice name" in prompt
    assert prompt.index("Miso") < prompt.index("The user's new message: what is her name?")
    assert "I love short answers about cats" in reply.choices[0].message.content


def test_tenants_see_only_their_own_users(service):
    url, keys, llm, _, store = service
    add(url, keys["acme"], "alice", "acme secret: alice prefers tea")
    assert "alice prefers tea" not in ask(url, keys["globex"], "alice", "what do I prefer?").choices[0].message.content
    headers = {"Authorization": f"Bearer {keys['globex']}"}
    assert httpx.get(f"{url}/v1/users/alice/history", headers=headers).json()["items"] == []
    assert httpx.get(f"{url}/v1/users", headers=headers).json()["users"] == []
    (item,) = httpx.get(f"{url}/v1/users/alice/history", headers={"Authorization": f"Bearer {keys['acme']}"}).json()["items"]
    gone = httpx.delete(f"{url}/v1/users/alice/history/{item['id']}", headers=headers)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_delete_erases_the_item_and_the_answers_made_from_it_and_one_user_only(service):
    url, keys, llm, _, store = service
    acme = {"Authorization": f"Bearer {keys['acme']}"}
    secret, kept = add(url, keys["acme"], "alice", "my password hint is pineapple", "i like jazz")
    add(url, keys["acme"], "bob", "bob likes pineapple pizza")
    add(url, keys["globex"], "alice", "globex alice likes pineapple too")
    ask(url, keys["acme"], "alice", "pineapple?")
    assert len(httpx.get(f"{url}/v1/users/alice/answers", headers=acme).json()["answers"]) == 1
    deleted = httpx.delete(f"{url}/v1/users/alice/history/{secret}", headers=acme).json()
    assert deleted["answers_deleted"] == 1  # the answer built from the item went with it
    export = httpx.get(f"{url}/v1/users/alice/export", headers=acme).json()
    assert "pineapple" not in str(export) and [i["id"] for i in export["items"]] == [kept]
    assert "password hint" not in ask(url, keys["acme"], "alice", "pineapple?").choices[0].message.content
    assert httpx.delete(f"{url}/v1/users/alice", headers=acme).json()["deleted"] == {"items": 1, "answers": 1,
                                                                                      "summaries": 0}
    assert httpx.get(f"{url}/v1/users", headers=acme).json()["users"] == [{"user": "bob", "items": 1}]
    globex = httpx.get(f"{url}/v1/users/alice/history", headers={"Authorization": f"Bearer {keys['globex']}"})
    assert len(globex.json()["items"]) == 1  # the same user name in another tenant is untouched
    with store.engine.connect() as db:  # read the storage itself: nothing of acme's alice is left anywhere
        for table, column in (("history_items", "text"), ("answers", "query"), ("answers", "final")):
            rows = db.exec_driver_sql(f"select count(*) from {table} where tenant_id = 'acme' and user_id = 'alice'")
            assert rows.scalar_one() == 0, (table, column)
        leftover = db.execute(sqlalchemy.text("select count(*) from history_items where text like :t"), {"t": "%hint%"})
        assert leftover.scalar_one() == 0


def test_errors_come_in_the_openai_shape_with_the_right_status(service):
    url, keys, _, config, _ = service
    with pytest.raises(openai.AuthenticationError):
        ask(url, "pa-wrong", "alice", "hi")
    with pytest.raises(openai.APIStatusError) as big:
        ask(url, keys["acme"], "alice", "x" * 5000)
    assert big.value.status_code == 413 and big.value.body["code"] == "request_too_large"
    headers = {"Authorization": f"Bearer {keys['acme']}"}
    full = httpx.post(f"{url}/v1/users/carol/history", json={"items": [{"text": f"t{i}"} for i in range(6)]},
                      headers=headers)
    assert full.status_code == 422 and full.json()["error"]["code"] == "history_limit_exceeded"
    bad = httpx.post(f"{url}/v1/users/carol/history", json={"items": [{"txt": "typo"}]}, headers=headers)
    assert bad.status_code == 400 and "items.0" in bad.json()["error"]["message"]
    nomsg = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": []}, headers=headers)
    assert nomsg.status_code == 400 and nomsg.json()["error"]["param"] == "messages"


def test_a_dead_base_model_is_a_502_and_counted(tmp_path):
    config = ServeConfig(data_dir=str(tmp_path))
    with serving(config, FakeEchoLLM(fail=True)) as (url, key):
        with pytest.raises(openai.APIStatusError) as err:
            ask(url, key, "alice", "hi")
        assert err.value.status_code == 502 and err.value.body["code"] == "upstream_error"
        metrics = httpx.get(f"{url}/metrics").text
        assert "personalign_upstream_errors_total 1.0" in metrics and "personalign_request_seconds" in metrics
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        assert "trace viewer" in httpx.get(f"{url}/viewer").text


def test_config_errors_are_one_line(tmp_path):
    from personalign.errors import ConfigError

    (tmp_path / "bad.yaml").write_text("port: 99999\n")
    with pytest.raises(ConfigError, match="port"):
        load_serve_config(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("bsae_llm: llamacpp\n")
    with pytest.raises(ConfigError, match="bsae_llm"):
        load_serve_config(tmp_path / "typo.yaml")


@pytest.mark.model
def test_real_bundled_model_behind_the_service(tmp_path):
    config = ServeConfig(data_dir=str(tmp_path), base_llm="llamacpp", base_llm_options={"n_ctx": 2048})
    with serving(config) as (url, key):
        add(url, key, "alice", "I play the violin in an orchestra", "My favourite composer is Bach")
        reply = client(url, key).chat.completions.create(
            model="personalign", messages=[{"role": "user", "content": "Suggest one piece of music for me."}],
            user="alice", max_tokens=32)
    assert reply.choices[0].message.content.strip() and reply.usage.completion_tokens <= 32  # max_tokens holds
    assert reply.usage.prompt_tokens > 20 and len(reply.model_extra["personalign"]["retrieved_ids"]) == 2


@pytest.mark.model
def test_personalign_serve_as_a_user_runs_it(tmp_path):
    """``personalign tenant add`` then ``personalign serve --config`` in its own process, on the embedded model."""
    config, key, url = serve_config(tmp_path, "base_llm_options: {n_ctx: 2048}\n")
    proc = serve_process(config, url)
    try:
        add(url, key, "alice", "I answer in one short sentence.")
        reply = client(url, key).chat.completions.create(
            model="personalign", messages=[{"role": "user", "content": "Name a fruit."}], user="alice", max_tokens=16)
        assert reply.choices[0].message.content.strip() and reply.model_extra["personalign"]["retrieved_ids"]
    finally:
        stop(proc)


def test_trace_viewer_shows_a_users_trace_in_headless_chromium(tmp_path):
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt install chromium)")
    config = ServeConfig(data_dir=str(tmp_path))
    with serving(config, FakeEchoLLM()) as (url, key):
        add(url, key, "alice", "I write haiku about the sea")
        ask(url, key, "alice", "write me a poem")
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
                              "--dump-dom", f"{url}/viewer#key={key}&user=alice"], capture_output=True, text=True,
                             timeout=120).stdout
    assert "alice: recent answers" in dom and "I write haiku about the sea" in dom  # history and retrieved item
    assert "write me a poem" in dom and "echo: " in dom  # the query and the final answer, side by side
