"""The service's derived data (PAG and POPI summaries, RPM user models, dense embeddings): built off the request
path, versioned, and deleted with the items they were built from."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from fakes import FakeEchoLLM
from serve_helpers import add, ask, running, store_url, stored_texts, summary_app, wait_embedded

from personalign.serve.app import create_app
from personalign.serve.config import ServeConfig
from personalign.serve.store import Store


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_pag_summaries_are_versioned_derived_data_and_deleting_an_item_removes_every_version_built_from_it(
        tmp_path, request, backend):
    app, store, worker, key = summary_app(tmp_path, store_url(request, backend))
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

    app, store, worker, key = summary_app(tmp_path, store_url(request, backend), method="rpm", llm=FakeRuleLLM())
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


@pytest.mark.model
def test_dense_retrieval_uses_background_embeddings_from_a_durable_queue_and_delete_removes_them(tmp_path):
    """The bundled MiniLM embeds items off the request path; a queued job survives a restart."""
    import sqlite3

    config = ServeConfig(data_dir=str(tmp_path), retriever="dense", derived_worker=False, method_config={"k": 1})
    key = Store(config.store()).add_tenant("acme")
    with running(create_app(config, base_llm=FakeEchoLLM())) as url:  # no worker: the job waits in the store
        felines, _ = add(url, key, "alice", "I adore felines and own three of them", "Stock market tips for 2021")
        assert httpx.get(f"{url}/healthz").json()["derived_queue"]["queued"] == 1
        unbuilt = ask(url, key, "alice", "stock market").model_extra["personalign"]  # never waits: BM25 meanwhile
        assert len(unbuilt["retrieved_ids"]) == 1
    worker_config = config.model_copy(update={"derived_worker": True})
    with running(create_app(worker_config, base_llm=FakeEchoLLM())) as url:  # a new process takes the job
        wait_embedded(url, key, "alice", 2)
        trace = ask(url, key, "alice", "tell me about cats").model_extra["personalign"]
        assert trace["retrieved_ids"] == [felines]  # semantic: no word in common with the query
        assert httpx.get(f"{url}/healthz").json()["derived_queue"]["queued"] == 0
        assert "personalign_derived_age_seconds 0.0" in httpx.get(f"{url}/metrics").text
        httpx.delete(f"{url}/v1/users/alice/history/{felines}", headers={"Authorization": f"Bearer {key}"})
    with sqlite3.connect(tmp_path / "personalign.db") as db:
        assert db.execute("select count(*) from item_embeddings").fetchone()[0] == 1  # the deleted item's is gone
        assert db.execute("select count(*) from history_items where text like '%felines%'").fetchone()[0] == 0
