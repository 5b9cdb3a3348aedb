"""BM25 ranked inside the store (``personalign.serve.search``): the same top-k as the in-memory BM25Retriever on
SQLite and PostgreSQL, scoped to one user of one tenant, index rows written and deleted with their items, old
stores indexed by the migration, and the service retrieving from it."""

from __future__ import annotations

import random

import httpx
import pytest
from fakes import FakeEchoLLM
from serve_helpers import add, ask, running, store_url

from personalign.retrievers.bm25 import BM25Retriever
from personalign.serve.app import create_app
from personalign.serve.config import ServeConfig
from personalign.serve.personalizer import CHAT_TASK
from personalign.serve.search import StoredProfile, search
from personalign.serve.store import Store
from personalign.tasks import get_task

WORDS = ("cat dog jazz piano rock guitar tea coffee rain snow river mountain train bike book film code chess "
         "garden bread").split()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    url = store_url(request, request.param) or f"sqlite:///{tmp_path / 'store.db'}"
    made = Store(url)
    made.add_tenant("acme"), made.add_tenant("globex")
    yield made
    made.engine.dispose()


def index_rows(store: Store) -> list[tuple]:
    with store.engine.connect() as db:
        return [tuple(row) for row in db.exec_driver_sql("select owner, term, item_pk, tf from history_terms")]


def test_store_ranking_is_bm25_retrievers_top_k_over_the_users_own_items(store):
    rng = random.Random(7)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(1, 12))) for _ in range(120)] + ["!!!", "CAT, Cat; cat."]
    store.add_items("acme", "alice", [{"text": t} for t in texts])
    store.add_items("acme", "bob", [{"text": "jazz jazz jazz piano"}] * 1 + [{"text": "chess"}])  # not alice's
    store.add_items("globex", "alice", [{"text": "jazz piano jazz"}])                            # another tenant
    profile = store.items("acme", "alice")
    task = get_task(str(CHAT_TASK))
    queries = ["jazz piano", "cat cat dog", "Tell me about RIVER trains and bread!", "guitar", "no such words",
               "chess tea coffee rain snow film"]
    for query in queries:
        for k in (1, 4, 10):
            expected = [item["id"] for item in BM25Retriever().top_k(query, profile, task, k)]
            assert [item["id"] for item in search(store, "acme", "alice", query, k)] == expected, (query, k)
    assert search(store, "acme", "nobody", "jazz", 4) == []


def test_a_profile_reads_lazily_and_deleted_items_are_never_retrieved_nor_left_in_the_index(store):
    ids = store.add_items("acme", "alice", [{"text": "zebracorn marker"}, {"text": "plain tea"},
                                            {"text": "more tea and zebracorn"}])
    profile = StoredProfile(store, "acme", "alice")
    assert len(profile) == 3 and profile._items is None  # counted, not read
    assert [i["id"] for i in profile.search("zebracorn", 2)] == [ids[0], ids[2]]
    assert [item["text"] for item in profile][0] == "zebracorn marker"  # iterating loads them all
    store.delete_item("acme", "alice", ids[0])
    assert [i["id"] for i in search(store, "acme", "alice", "zebracorn marker", 3)] == [ids[2], ids[1]]
    assert not [row for row in index_rows(store) if row[1] == "marker"]
    store.delete_user("acme", "alice")
    assert search(store, "acme", "alice", "zebracorn", 3) == [] and index_rows(store) == []


def test_a_failed_add_leaves_no_index_rows(store):
    store.add_items("acme", "alice", [{"text": "first", "id": "a"}])
    before = index_rows(store)
    with pytest.raises(Exception):
        store.add_items("acme", "alice", [{"text": "ghostword", "id": "b"}, {"text": "again", "id": "a"}])
    assert index_rows(store) == before


def test_the_migration_indexes_the_items_of_an_existing_store(tmp_path):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from personalign.serve.db import MIGRATIONS, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        connection.execute(text("insert into tenants (id) values ('acme')"))
        for n, words in enumerate(["old jazz item", "old tea item"]):
            connection.execute(text("insert into history_items (tenant_id, user_id, item_id, text, created_at) "
                                    "values ('acme', 'alice', :id, :text, '2026-01-01 00:00:00')"),
                               {"id": f"i{n}", "text": words})
    engine.dispose()
    upgraded = Store(url)
    assert [item["id"] for item in search(upgraded, "acme", "alice", "tea", 1)] == ["i1"]
    upgraded.engine.dispose()


def test_the_service_retrieves_the_matching_item_from_a_large_history(tmp_path):
    config = ServeConfig(data_dir=str(tmp_path), method_config={"k": 1})
    store = Store(config.store())
    key = store.add_tenant("acme")
    store.add_items("acme", "alice", [{"text": f"note {n} about weather and errands"} for n in range(300)]
                    + [{"text": "I keep axolotls as pets", "id": "pets"}])
    with running(create_app(config, base_llm=FakeEchoLLM(), store=store)) as url:
        reply = ask(url, key, "alice", "what pets do I keep?")
        assert reply.model_extra["personalign"]["retrieved_ids"] == ["pets"]
        assert httpx.get(f"{url}/healthz").json()["pid"] > 0
        add(url, key, "alice", "axolotls are my favourite pets")
        newest = ask(url, key, "alice", "axolotls pets").model_extra["personalign"]["retrieved_ids"]
        assert newest != ["pets"] and len(newest) == 1
    store.engine.dispose()
