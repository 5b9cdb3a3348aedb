"""The service's store survives restarts, SIGKILL and schema upgrades, and two processes share one PostgreSQL."""

from __future__ import annotations

import time

import httpx
import pytest
import sqlalchemy
from fakes import FakeEchoLLM
from netutil import free_port
from postgres import postgres_server
from serve_helpers import add, client, running, serve_config, serve_process, stop, tenant_key, wait_embedded

from personalign.serve.app import create_app
from personalign.serve.config import ServeConfig
from personalign.serve.store import Store


def test_history_is_durable_across_restarts_and_keys_are_stored_hashed(tmp_path):
    config = ServeConfig(data_dir=str(tmp_path))
    key = Store(config.store()).add_tenant("acme")
    with running(create_app(config, base_llm=FakeEchoLLM())) as url:
        add(url, key, "alice", "remember me")
    with running(create_app(config, base_llm=FakeEchoLLM())) as url:  # a new process on the same store
        items = httpx.get(f"{url}/v1/users/alice/history", headers={"Authorization": f"Bearer {key}"}).json()["items"]
    assert [i["text"] for i in items] == ["remember me"]
    assert key.encode() not in (tmp_path / "personalign.db").read_bytes()


@pytest.mark.model
def test_two_service_processes_share_one_postgres_store(tmp_path):
    """No process state: what one process adds, another lists, answers from, and deletes; jobs are claimed once."""
    with postgres_server() as server:
        url = server.database()
        ports = [free_port(), free_port()]
        configs = []
        for port in ports:
            path = tmp_path / f"serve{port}.yaml"
            path.write_text(f"store_url: '{url}'\nport: {port}\nretriever: dense\nmethod_config: {{k: 1}}\n"
                            "base_llm_options: {n_ctx: 1024}\n")
            configs.append(path)
        key, urls = tenant_key(configs[0]), [f"http://127.0.0.1:{p}" for p in ports]
        procs = [serve_process(c, u) for c, u in zip(configs, urls)]
        try:
            cats, _ = add(urls[0], key, "alice", "I adore felines", "Quarterly tax forms")
            add(urls[1], key, "bob", "I collect stamps")
            wait_embedded(urls[1], key, "alice", 2)  # built by whichever process claimed the job
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
    from alembic.script import ScriptDirectory

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
        head = ScriptDirectory.from_config(config).get_current_head()
        assert connection.exec_driver_sql("select version_num from alembic_version").scalar_one() == head


@pytest.mark.model
def test_kill_9_during_writes_loses_no_acknowledged_item(tmp_path):
    """Writers add items while the server is killed with SIGKILL; after a restart every acknowledged id is there."""
    import signal
    from concurrent.futures import ThreadPoolExecutor

    config, key, url = serve_config(tmp_path)
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
