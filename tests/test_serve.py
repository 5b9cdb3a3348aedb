"""The personalization service on a real uvicorn server on loopback, driven by the official openai client.

Orchestration tests use FakeEchoLLM (it echoes the prompt, so a test sees what the method retrieved);
one integration test runs the real bundled model.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from fakes import FakeEchoLLM

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

from personalign.serve.app import create_app  # noqa: E402
from personalign.serve.config import ServeConfig, load_serve_config  # noqa: E402
from personalign.serve.store import Store  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app) -> Iterator[str]:
    """The app under a real uvicorn server on a free loopback port (in a thread); yields its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


CLI = [sys.executable, "-m", "personalign.cli"]


def tenant_key(config: Path, name: str = "acme") -> str:
    """``personalign tenant add``: the key it prints once."""
    made = subprocess.run(CLI + ["tenant", "add", name, "--config", str(config)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return made.stdout.split("API key ")[1].split()[0]


def serve_process(config: Path, url: str) -> subprocess.Popen:
    """``personalign serve --config`` in its own process, once its /healthz answers."""
    proc = subprocess.Popen(CLI + ["serve", "--config", str(config), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "personalign serve exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "personalign serve did not start"
        time.sleep(0.2)


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="session")
def postgres():
    from postgres import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def service(request, tmp_path):
    """A running app on SQLite, then the same on a real PostgreSQL server (skipped when it cannot start)."""
    url = request.getfixturevalue("postgres").database() if request.param == "postgres" else None
    config = ServeConfig(data_dir=str(tmp_path), store_url=url, max_history_items=5, max_request_bytes=4000)
    store = Store(config.store(), config.max_history_items)
    keys = {"acme": store.add_tenant("acme"), "globex": store.add_tenant("globex")}
    llm = FakeEchoLLM()
    with running(create_app(config, base_llm=llm, store=store)) as url:
        yield url, keys, llm, config, store
    store.engine.dispose()


def client(url: str, key: str):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def add(url: str, key: str, user: str, *texts: str) -> list[str]:
    reply = httpx.post(f"{url}/v1/users/{user}/history", json={"items": [{"text": t} for t in texts]},
                       headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 201, reply.text
    return reply.json()["ids"]


def ask(url: str, key: str, user: str | None, text: str):
    extra = {"user": user} if user else {}
    return client(url, key).chat.completions.create(model="personalign", messages=[{"role": "user", "content": text}],
                                                    **extra)


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


def summary_app(tmp_path, store_url=None, method="pag", llm=None):
    """A service whose derived data (PAG by default) a test builds by hand (no worker thread): app, store, worker, key."""
    from personalign.serve.derived import DerivedWorker, SummaryBuilder

    config = ServeConfig(data_dir=str(tmp_path), store_url=store_url, method=method, derived_worker=False)
    store = Store(config.store())
    app = create_app(config, base_llm=llm or FakeEchoLLM(), store=store)
    assert store.derived == ("summary",) and app.state.worker is None
    worker = DerivedWorker(store, [SummaryBuilder(app.state.personalizer)])
    return app, store, worker, store.add_tenant("acme")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_pag_summaries_are_versioned_derived_data_and_deleting_an_item_removes_every_version_built_from_it(
        tmp_path, request, backend):
    store_url = request.getfixturevalue("postgres").database() if backend == "postgres" else None
    app, store, worker, key = summary_app(tmp_path, store_url)
    auth = {"Authorization": f"Bearer {key}"}
    with running(app) as url:
        secret, = add(url, key, "alice", "my secret is pineapple")
        add(url, key, "alice", "i like jazz")
        assert store.queue()["queued"] == 1  # one rebuild waits for both adds
        before = ask(url, key, "alice", "music?").model_extra["personalign"]
        assert before["summary_version"] is None and "summary" not in before["stages"]  # it never waits for a build
        assert worker.run_once()["kind"] == "summary" and worker.run_once() is None
        built = store.summary("acme", "alice")
        assert "pineapple" in built["text"] and built["items"] == 2
        reply = ask(url, key, "alice", "music?")
        assert reply.model_extra["personalign"]["summary_version"] == built["version"]
        assert "About this user: " + built["text"] in app.state.personalizer.llm.prompts[-1]
        for text in ("i play piano", "i hate noise"):  # two more versions; only the newest two are kept
            add(url, key, "alice", text)
            worker.run_once()
        newest = store.summary("acme", "alice")["version"]
        assert newest > built["version"]
        with store.engine.connect() as db:
            assert db.exec_driver_sql("select count(*) from user_summaries").scalar_one() == 2
        metrics = httpx.get(f"{url}/metrics").text
        assert 'personalign_derived_lookups_total{kind="summary",result="miss"} 1.0' in metrics
        assert 'personalign_derived_lookups_total{kind="summary",result="hit"} 1.0' in metrics
        ask(url, key, "alice", "music?")  # an answer that used the newest summary
        assert store.answers("acme", "alice")[0]["summary_version"] == newest
        deleted = httpx.delete(f"{url}/v1/users/alice/history/{secret}", headers=auth).json()
        assert deleted["answers_deleted"] == 3  # each retrieved the item or used a summary built from it
        assert store.summary("acme", "alice") is None  # every kept version was built from the deleted item
        ask(url, key, "alice", "music?")
        assert "pineapple" not in app.state.personalizer.llm.prompts[-1]
        worker.run_once()  # the rebuild the delete queued
        rebuilt = store.summary("acme", "alice")
        assert rebuilt["version"] > newest and "pineapple" not in rebuilt["text"] and rebuilt["items"] == 3
        with store.engine.connect() as db:  # the storage itself
            texts = [row[0] for row in db.exec_driver_sql("select text from user_summaries")]
        assert len(texts) == 1 and not any("pineapple" in t for t in texts)
        assert "pineapple" not in str(httpx.get(f"{url}/v1/users/alice/export", headers=auth).json())
        deleted = httpx.delete(f"{url}/v1/users/alice", headers=auth).json()["deleted"]
        assert deleted == {"items": 3, "answers": 1, "summaries": 1}
    store.engine.dispose()


def stored_texts(store: Store, table: str, column: str) -> list[str]:
    """Every value of one column of one table, read from the storage itself."""
    with store.engine.connect() as db:
        return [str(row[0]) for row in db.exec_driver_sql(f"select {column} from {table}")]


def test_popi_summaries_are_derived_data_of_the_service_and_go_with_their_items(tmp_path):
    app, store, worker, key = summary_app(tmp_path, method="popi")
    llm = app.state.personalizer.llm
    with running(app) as url:
        secret, _ = add(url, key, "alice", "my secret is pineapple", "i like jazz")
        first = ask(url, key, "alice", "music?").model_extra["personalign"]
        assert first["summary_version"] is None and "This user's preferences" not in llm.prompts[-1]
        worker.run_once()
        built = store.summary("acme", "alice", app.state.personalizer.derived_id)
        assert built["model_id"].startswith("popi_summary:") and "pineapple" in built["text"]
        assert llm.count_tokens(built["text"]) <= 48  # the budget, enforced on the stored summary
        reply = ask(url, key, "alice", "music?").model_extra["personalign"]
        assert reply["summary_version"] == built["version"]
        assert llm.prompts[-1].startswith("This user's preferences: " + built["text"])
        deleted = httpx.delete(f"{url}/v1/users/alice/history/{secret}", headers={"Authorization": f"Bearer {key}"})
        assert deleted.json()["answers_deleted"] == 1  # the answer that used the summary; the first used none
        assert not any("pineapple" in t for t in stored_texts(store, "user_summaries", "text"))
        assert [a["summary_version"] for a in store.answers("acme", "alice")] == [None]
    store.engine.dispose()


def test_a_derived_version_of_other_models_or_another_method_is_not_used(tmp_path):
    app, store, worker, key = summary_app(tmp_path, method="popi")
    store.add_items("acme", "alice", [{"text": "i like jazz"}])
    (pk,) = [i["_pk"] for i in store.summary_source("acme", "alice", 10)]
    store.put_summary("acme", "alice", "profile_summary:another-model", "a PAG summary", [pk])
    assert store.summary("acme", "alice", app.state.personalizer.derived_id) is None
    worker.run_once()
    assert store.summary("acme", "alice", app.state.personalizer.derived_id)["text"] != "a PAG summary"
    store.engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rpm_user_models_are_derived_data_updated_incrementally_and_deleted_with_their_items(tmp_path, request, backend):
    from fakes import FakeRuleLLM

    store_url = request.getfixturevalue("postgres").database() if backend == "postgres" else None
    app, store, worker, key = summary_app(tmp_path, store_url, method="rpm", llm=FakeRuleLLM())
    personalizer, llm = app.state.personalizer, app.state.personalizer.llm
    assert personalizer.method.encoder._memory.size == 0  # no embedding outlives its item in the process
    with running(app) as url:
        jazz, _ = add(url, key, "alice", "a jazz piano night", "the broken kettle, refund please")
        before = ask(url, key, "alice", "any piano tips?").model_extra["personalign"]
        assert before["summary_version"] is None and "- none yet" in llm.prompts[-1]  # it never waits for a build
        calls = len(llm.prompts)
        worker.run_once()
        assert len(llm.prompts) - calls == 4  # features and a reasoning path per item
        model = json.loads(store.summary("acme", "alice", personalizer.derived_id)["text"])
        assert sorted(i["answer"] for i in model["items"].values()) == ["a jazz piano night",
                                                                         "the broken kettle, refund please"]
        add(url, key, "alice", "so happy with my guitar")
        calls = len(llm.prompts)
        worker.run_once()
        assert len(llm.prompts) - calls == 2  # incremental: only the new item costs calls
        version = store.summary("acme", "alice", personalizer.derived_id)["version"]
        reply = ask(url, key, "alice", "any piano tips?").model_extra["personalign"]
        assert reply["summary_version"] == version and "Reasoning: Because of jazz; piano" in llm.prompts[-1]
        assert httpx.delete(f"{url}/v1/users/alice/history/{jazz}",
                            headers={"Authorization": f"Bearer {key}"}).json()["answers_deleted"] == 1
        assert not any("jazz" in t for t in stored_texts(store, "user_summaries", "text"))
        assert not any("jazz" in t for t in stored_texts(store, "answers", "query || final"))
        worker.run_once()  # the rebuild the delete queued
        rebuilt = json.loads(store.summary("acme", "alice", personalizer.derived_id)["text"])
        assert len(rebuilt["items"]) == 2 and "jazz" not in json.dumps(rebuilt)
    store.engine.dispose()


def test_a_request_gets_the_in_process_model_between_the_calls_of_a_build(tmp_path):
    from fakes import FakeRuleLLM

    class SlowFakeRuleLLM(FakeRuleLLM):
        def _generate(self, messages, params):
            time.sleep(0.1)
            return super()._generate(messages, params)

    app, store, worker, _ = summary_app(tmp_path, method="rpm", llm=SlowFakeRuleLLM())
    store.add_items("acme", "alice", [{"text": f"jazz night number {i}"} for i in range(8)])  # a build of 16 calls
    build = threading.Thread(target=worker.run_once)
    build.start()
    time.sleep(0.3)
    start = time.monotonic()
    result = app.state.personalizer.answer([{"role": "user", "content": "any piano tips?"}], [])
    assert time.monotonic() - start < 1.0 and build.is_alive()  # 2 calls, after at most one of the build's
    assert result.stages == ["rpm_query", "answer"]
    build.join()
    assert len(json.loads(store.summary("acme", "alice")["text"])["items"]) == 8
    store.engine.dispose()


def test_a_summary_built_from_an_item_deleted_meanwhile_is_not_stored(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}", derived=("summary",))
    store.add_tenant("acme")
    ids = store.add_items("acme", "alice", [{"text": "a"}, {"text": "b"}])
    source = store.summary_source("acme", "alice", limit=10)
    store.delete_item("acme", "alice", ids[0])  # while the summary was being written
    assert store.put_summary("acme", "alice", "m", "summary of a and b", [i["_pk"] for i in source]) is None
    assert store.summary("acme", "alice") is None


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
    store = Store(config.store())
    key = store.add_tenant("acme")
    with running(create_app(config, base_llm=FakeEchoLLM(fail=True), store=store)) as url:
        with pytest.raises(openai.APIStatusError) as err:
            ask(url, key, "alice", "hi")
        assert err.value.status_code == 502 and err.value.body["code"] == "upstream_error"
        metrics = httpx.get(f"{url}/metrics").text
        assert "personalign_upstream_errors_total 1.0" in metrics and "personalign_request_seconds" in metrics
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        assert "trace viewer" in httpx.get(f"{url}/viewer").text


def test_history_is_durable_across_restarts_and_keys_are_stored_hashed(tmp_path):
    config = ServeConfig(data_dir=str(tmp_path))
    key = Store(config.store()).add_tenant("acme")
    with running(create_app(config, base_llm=FakeEchoLLM())) as url:
        add(url, key, "alice", "remember me")
    with running(create_app(config, base_llm=FakeEchoLLM())) as url:  # a new process on the same store
        items = httpx.get(f"{url}/v1/users/alice/history", headers={"Authorization": f"Bearer {key}"}).json()["items"]
    assert [i["text"] for i in items] == ["remember me"]
    assert key.encode() not in (tmp_path / "personalign.db").read_bytes()


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
    store = Store(config.store())
    key = store.add_tenant("acme")
    with running(create_app(config, store=store)) as url:
        add(url, key, "alice", "I play the violin in an orchestra", "My favourite composer is Bach")
        reply = client(url, key).chat.completions.create(
            model="personalign", messages=[{"role": "user", "content": "Suggest one piece of music for me."}],
            user="alice", max_tokens=32)
    assert reply.choices[0].message.content.strip() and reply.usage.completion_tokens <= 32  # max_tokens holds
    assert reply.usage.prompt_tokens > 20 and len(reply.model_extra["personalign"]["retrieved_ids"]) == 2


@pytest.mark.model
def test_personalign_serve_as_a_user_runs_it(tmp_path):
    """``personalign tenant add`` then ``personalign serve --config`` in its own process, on the embedded model."""
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nport: {port}\nbase_llm_options: {{n_ctx: 2048}}\n")
    key, url = tenant_key(config), f"http://127.0.0.1:{port}"
    proc = serve_process(config, url)
    try:
        add(url, key, "alice", "I answer in one short sentence.")
        reply = client(url, key).chat.completions.create(
            model="personalign", messages=[{"role": "user", "content": "Name a fruit."}], user="alice", max_tokens=16)
        assert reply.choices[0].message.content.strip() and reply.model_extra["personalign"]["retrieved_ids"]
    finally:
        stop(proc)


def postgres_server_or_skip():
    from postgres import postgres_server

    return postgres_server()


def _wait_embedded(url: str, key: str, user: str, count: int, seconds: float = 60) -> list[dict]:
    deadline = time.monotonic() + seconds
    while True:
        items = httpx.get(f"{url}/v1/users/{user}/history", headers={"Authorization": f"Bearer {key}"}).json()["items"]
        if sum(i.get("embedded", False) for i in items) >= count:
            return items
        assert time.monotonic() < deadline, f"embeddings not built: {items}"
        time.sleep(0.2)


@pytest.mark.model
def test_dense_retrieval_uses_background_embeddings_from_a_durable_queue_and_delete_removes_them(tmp_path):
    """The bundled MiniLM embeds items off the request path; a queued job survives a restart."""
    import sqlite3

    config = ServeConfig(data_dir=str(tmp_path), retriever="dense", derived_worker=False, k=1)
    key = Store(config.store()).add_tenant("acme")
    with running(create_app(config, base_llm=FakeEchoLLM())) as url:  # no worker: the job waits in the store
        felines, _ = add(url, key, "alice", "I adore felines and own three of them", "Stock market tips for 2021")
        assert httpx.get(f"{url}/healthz").json()["derived_queue"]["queued"] == 1
        unbuilt = ask(url, key, "alice", "stock market").model_extra["personalign"]  # never waits: BM25 meanwhile
        assert len(unbuilt["retrieved_ids"]) == 1
    worker_config = config.model_copy(update={"derived_worker": True})
    with running(create_app(worker_config, base_llm=FakeEchoLLM())) as url:  # a new process takes the job
        _wait_embedded(url, key, "alice", 2)
        trace = ask(url, key, "alice", "tell me about cats").model_extra["personalign"]
        assert trace["retrieved_ids"] == [felines]  # semantic: no word in common with the query
        assert httpx.get(f"{url}/healthz").json()["derived_queue"]["queued"] == 0
        assert "personalign_derived_age_seconds 0.0" in httpx.get(f"{url}/metrics").text
        httpx.delete(f"{url}/v1/users/alice/history/{felines}", headers={"Authorization": f"Bearer {key}"})
    with sqlite3.connect(tmp_path / "personalign.db") as db:
        assert db.execute("select count(*) from item_embeddings").fetchone()[0] == 1  # the deleted item's is gone
        assert db.execute("select count(*) from history_items where text like '%felines%'").fetchone()[0] == 0


@pytest.mark.model
def test_two_service_processes_share_one_postgres_store(tmp_path):
    """No process state: what one process adds, another lists, answers from, and deletes; jobs are claimed once."""
    with postgres_server_or_skip() as server:
        url = server.database()
        ports = [free_port(), free_port()]
        configs = []
        for port in ports:
            path = tmp_path / f"serve{port}.yaml"
            path.write_text(f"store_url: '{url}'\nport: {port}\nretriever: dense\nk: 1\n"
                            "base_llm_options: {n_ctx: 1024}\n")
            configs.append(path)
        key, urls = tenant_key(configs[0]), [f"http://127.0.0.1:{p}" for p in ports]
        procs = [serve_process(c, u) for c, u in zip(configs, urls)]
        try:
            cats, _ = add(urls[0], key, "alice", "I adore felines", "Quarterly tax forms")
            add(urls[1], key, "bob", "I collect stamps")
            _wait_embedded(urls[1], key, "alice", 2)  # built by whichever process claimed the job
            reply = client(urls[1], key).chat.completions.create(
                model="personalign", messages=[{"role": "user", "content": "tell me about cats"}], user="alice",
                max_tokens=8)
            assert reply.model_extra["personalign"]["retrieved_ids"] == [cats]
            assert httpx.delete(f"{urls[1]}/v1/users/alice", headers={"Authorization": f"Bearer {key}"}).status_code == 200
            left = httpx.get(f"{urls[0]}/v1/users", headers={"Authorization": f"Bearer {key}"}).json()["users"]
            assert left == [{"user": "bob", "items": 1}]
        finally:
            stop(*procs)
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as db:
            jobs = db.execute(sqlalchemy.text("select status, attempts from jobs")).all()
        engine.dispose()
        assert jobs == [("done", 1)]  # bob's job; alice's went with her, and none ran twice


def test_a_store_of_the_previous_schema_upgrades_without_losing_data(tmp_path):
    from alembic import command
    from alembic.config import Config

    from personalign.serve.db import MIGRATIONS, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:  # the first schema, as an older release created it
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql("insert into tenants (id) values ('acme')")
        connection.exec_driver_sql("insert into api_keys (key_sha256, tenant_id) values ('h', 'acme')")
        connection.exec_driver_sql("insert into history_items (tenant_id, user_id, item_id, text, created_at) "
                                   "values ('acme', 'alice', 'i1', 'kept across the upgrade', '2026-01-01 00:00:00')")
        assert "item_embeddings" not in {r[0] for r in connection.exec_driver_sql(
            "select name from sqlite_master where type='table'")}
    engine.dispose()
    store = Store(url, derived=("embed",))  # opening it upgrades to head
    assert [i["text"] for i in store.items("acme", "alice")] == ["kept across the upgrade"]
    store.add_items("acme", "alice", [{"text": "new"}])
    assert store.queue()["queued"] == 1  # the new table works
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("select version_num from alembic_version").scalar_one() == "0003"


@pytest.mark.model
def test_kill_9_during_writes_loses_no_acknowledged_item(tmp_path):
    """Writers add items while the server is killed with SIGKILL; after a restart every acknowledged id is there."""
    import signal
    from concurrent.futures import ThreadPoolExecutor

    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nport: {port}\n")
    key, url = tenant_key(config), f"http://127.0.0.1:{port}"
    start = lambda: serve_process(config, url)  # noqa: E731
    acknowledged: list[str] = []
    proc = start()

    def writer(n: int) -> None:
        for i in range(1000):
            try:
                reply = httpx.post(f"{url}/v1/users/u{n}/history", json={"items": [{"text": f"w{n} item {i}"}]},
                                   headers={"Authorization": f"Bearer {key}"}, timeout=5)
            except httpx.TransportError:
                return  # the server is gone
            if reply.status_code == 201:
                acknowledged.extend(reply.json()["ids"])

    with ThreadPoolExecutor(4) as pool:
        for n in range(4):
            pool.submit(writer, n)
        deadline = time.monotonic() + 30
        while len(acknowledged) < 10 and time.monotonic() < deadline:  # kill in the middle of the writes
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(acknowledged) >= 10
    proc = start()
    try:
        stored = set()
        for n in range(4):
            reply = httpx.get(f"{url}/v1/users/u{n}/history", headers={"Authorization": f"Bearer {key}"})
            stored |= {i["id"] for i in reply.json()["items"]}
        assert set(acknowledged) <= stored
    finally:
        stop(proc)


def test_trace_viewer_shows_a_users_trace_in_headless_chromium(tmp_path):
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt install chromium)")
    config = ServeConfig(data_dir=str(tmp_path))
    store = Store(config.store())
    key = store.add_tenant("acme")
    with running(create_app(config, base_llm=FakeEchoLLM(), store=store)) as url:
        add(url, key, "alice", "I write haiku about the sea")
        ask(url, key, "alice", "write me a poem")
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
                              "--dump-dom", f"{url}/viewer#key={key}&user=alice"], capture_output=True, text=True,
                             timeout=120).stdout
    assert "alice: recent answers" in dom and "I write haiku about the sea" in dom  # history and retrieved item
    assert "write me a poem" in dom and "echo: " in dom  # the query and the final answer, side by side
