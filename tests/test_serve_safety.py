"""Issue 27's safety and store classes, on a real uvicorn server (and a real ``personalign serve`` process), on
SQLite and on a real PostgreSQL server: one validation layer and never a 500 (tests/serve_probe.py), the history
limit under concurrency, duplicates, deletes that leave no byte of the text in any file the service wrote or in
its log, and metrics with status codes. The trace viewer under stored script: tests/test_serve_viewer.py.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fakes import FakeEchoLLM
from netutil import free_port
from serve_helpers import CLI, running, store_url, tenant_key
from serve_probe import LIMIT, run_probe

from personalign.serve.app import create_app
from personalign.serve.config import ServeConfig
from personalign.serve.logs import redact_path
from personalign.serve.store import Store


class LogRecords(logging.Handler):
    """Every record of the root and uvicorn loggers, formatted with its traceback, from any thread."""

    LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def attach(self) -> None:
        """Listen on every logger; call it once the server runs (uvicorn's set-up drops its loggers' handlers)."""
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)


@pytest.fixture
def all_logs():
    handler = LogRecords()
    yield handler
    for name in LogRecords.LOGGERS:
        logging.getLogger(name).removeHandler(handler)


def service(tmp_path: Path, url: str | None, llm=None, **settings):  # type: ignore[no-untyped-def]
    config = ServeConfig(data_dir=str(tmp_path), store_url=url, **settings)
    store = Store(config.store(), config.max_history_items)
    return create_app(config, base_llm=llm or FakeEchoLLM(), store=store), store, store.add_tenant("acme")


# ---------------------------------------------------------------- one validation layer, never a 500


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_probe_classes_get_4xx_in_the_openai_shape_never_a_500_and_never_after_the_base_call(
        tmp_path, request, backend, all_logs, capfd):
    llm = FakeEchoLLM()
    app, store, key = service(tmp_path, store_url(request, backend), llm, max_request_bytes=LIMIT)
    with running(app) as url:
        all_logs.attach()
        rows = run_probe(url, key, lambda: len(llm.prompts))
    store.engine.dispose()
    wrong = [row for row in rows if row["status"] not in row["allowed"] or not row["openai_shape"]]
    assert not wrong, wrong
    assert not [row for row in rows if row["status"] >= 400 and row["base_called"]]  # refused before the base call
    assert len(rows) == 59 and {row["status"] for row in rows} >= {200, 201, 400, 409, 413}
    logged = "\n".join(all_logs.lines) + "".join(capfd.readouterr())
    assert "Traceback" not in logged and "second" not in logged and "again" not in logged  # the duplicates' texts


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_validation_errors_name_the_field(tmp_path, request, backend):
    app, store, key = service(tmp_path, store_url(request, backend))
    auth = {"Authorization": f"Bearer {key}"}
    with running(app) as url:
        bad_text = httpx.post(f"{url}/v1/users/bob/history", headers=auth,
                              json={"items": [{"text": "ok"}, {"text": "a\x00b"}]})
        assert bad_text.status_code == 400 and bad_text.json()["error"]["param"] == "items.1.text"
        slash = httpx.post(f"{url}/v1/users/bob/history", headers=auth, json={"items": [{"text": "t", "id": "a/b"}]})
        assert slash.status_code == 400 and slash.json()["error"]["param"] == "items.0.id"
        long_user = httpx.get(f"{url}/v1/users/{'u' * 257}/history", headers=auth)
        assert long_user.status_code == 400 and long_user.json()["error"]["param"] == "user"
        chat = httpx.post(f"{url}/v1/chat/completions", headers=auth, json={
            "model": "m", "user": "bob", "messages": [{"role": "user", "content": [{"type": "text", "text": "\x00"}]}]})
        assert chat.status_code == 400 and chat.json()["error"]["param"] == "messages.0.content.0.text"
        assert httpx.get(f"{url}/v1/users", headers=auth).json()["users"] == []  # nothing was stored
    store.engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_history_limit_holds_under_20_concurrent_adds(tmp_path, request, backend):
    app, store, key = service(tmp_path, store_url(request, backend), max_history_items=5)
    with running(app) as url:
        def add_one(n: int) -> int:
            return httpx.post(f"{url}/v1/users/carol/history", json={"items": [{"text": f"item {n}"}]},
                              headers={"Authorization": f"Bearer {key}"}, timeout=60).status_code

        barrier = threading.Barrier(20)

        def together(n: int) -> int:
            barrier.wait()
            return add_one(n)

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(together, range(20)))
    assert sorted(statuses) == [201] * 5 + [422] * 15
    assert len(store.items("acme", "carol")) == 5
    store.engine.dispose()


def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(tmp_path):
    llm = FakeEchoLLM()
    import tracemalloc

    app, store, key = service(tmp_path, None, llm, max_request_bytes=LIMIT)

    def body():  # 50 MB, chunked (no Content-Length)
        yield b'{"model": "m", "user": "dave", "messages": [{"role": "user", "content": "'
        for _ in range(800):
            yield b"x" * (64 * 1024)
        yield b'"}]}'

    with running(app) as url:
        tracemalloc.start()  # the server runs in this process: its peak allocation while it reads the body
        try:
            reply = httpx.post(f"{url}/v1/chat/completions", content=body(), timeout=60,
                               headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            status, code = reply.status_code, reply.json()["error"]["code"]
        except httpx.TransportError:  # the server may close the connection after its 413
            status, code = 413, "request_too_large"
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert (status, code) == (413, "request_too_large") and llm.prompts == []
    assert peak < 10 * 2**20  # the body was never held whole (before the fix: 50 MB read, then forwarded)
    store.engine.dispose()


# ---------------------------------------------------------------- delete means gone, on disk and in the log


class _EchoBase(BaseHTTPRequestHandler):
    """FAKE OpenAI-compatible base: answers ``echo:`` and every message of the request, so answers quote items."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = "echo: " + " | ".join(str(m.get("content")) for m in body["messages"])
        data = json.dumps({"id": "fake", "object": "chat.completion", "created": 0, "model": "fake",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def files_holding(folder: Path, *markers: str) -> list[str]:
    """Every file under ``folder`` whose raw bytes hold one of the markers (UTF-8)."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {m}" for m in markers if m.encode() in data]
    return found


def wait_for(condition, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_after_a_delete_no_byte_of_the_text_is_in_any_file_of_the_service_nor_in_its_log(tmp_path):
    """A real ``personalign serve`` (SQLite, PAG: summaries are derived data) in front of a fake echoing base."""
    base = ThreadingHTTPServer(("127.0.0.1", 0), _EchoBase)
    threading.Thread(target=base.serve_forever, daemon=True).start()
    port, data = free_port(), tmp_path / "data"
    config = tmp_path / "serve.yaml"
    config.write_text(f"data_dir: {data}\nport: {port}\nmethod: pag\nbase_llm: openai:fake\n"
                      f"base_llm_options: {{base_url: 'http://127.0.0.1:{base.server_address[1]}/v1', api_key: x}}\n")
    key, url = tenant_key(config), f"http://127.0.0.1:{port}"
    log = tmp_path / "service.log"
    mark = lambda name: f"{name}{uuid.uuid4().hex}"  # noqa: E731
    item_text, item_id, user_text, user_id = mark("itemtext"), mark("itemid"), mark("usertext"), mark("userid")
    auth = {"Authorization": f"Bearer {key}"}
    with log.open("wb") as sink:
        proc = subprocess.Popen(CLI + ["serve", "--config", str(config), "--log-level", "info"], stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _healthy(url), 60)
        history = f"{url}/v1/users/{user_id}/history"
        added = httpx.post(history, headers=auth, json={"items": [{"text": f"my secret is {item_text}", "id": item_id},
                                                                  {"text": f"and {user_text} too"}, {"text": "jazz"}]})
        assert added.status_code == 201, added.text
        duplicate = httpx.post(history, headers=auth, json={"items": [{"text": f"again {item_text}", "id": item_id}]})
        assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "duplicate_item"

        def ask() -> str:
            reply = httpx.post(f"{url}/v1/chat/completions", headers=auth, timeout=30, json={
                "model": "personalign", "user": user_id, "messages": [{"role": "user", "content": "my secret?"}]})
            assert reply.status_code == 200, reply.text
            return reply.json()["choices"][0]["message"]["content"]

        assert item_text in ask()  # an answer that quotes the item, stored with its trace
        wait_for(lambda: httpx.get(f"{url}/healthz").json()["derived_queue"]["queued"] == 0
                 and httpx.get(f"{url}/healthz").json()["derived_queue"]["running"] == 0)
        assert item_text in ask()  # and one made with the summary built from it (derived data)
        assert files_holding(data, item_text)  # the text is on disk before the delete (the check can fail)
        deleted = httpx.delete(f"{history}/{item_id}", headers=auth)
        assert deleted.status_code == 200 and deleted.json()["answers_deleted"] == 2
        assert files_holding(data, item_text, item_id) == []  # db, -wal, -shm, everything, with the service up
        assert item_text.encode() not in log.read_bytes()
        ask()  # new derived data and answers from the remaining items
        gone = httpx.delete(f"{url}/v1/users/{user_id}", headers=auth)
        assert gone.status_code == 200 and gone.json()["deleted"]["items"] == 2
        assert files_holding(data, item_text, item_id, user_text, user_id) == []
        metrics = httpx.get(f"{url}/metrics").text
        assert "personalign_user_deletes_total 1.0" in metrics
        assert 'personalign_history_items_total{op="delete"} 3.0' in metrics  # one by id, two with the user
        assert re.search(r'personalign_request_seconds_count\{route="/v1/users/\{user\}/history",status="409"\} 1\.0',
                         metrics)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        base.shutdown()
    assert files_holding(data, item_text, item_id, user_text, user_id) == []  # and after the stop
    logged = log.read_bytes()
    assert b"DELETE /v1/users/*/history/* HTTP/1.1" in logged  # the access log is on, without the ids
    assert not [m for m in (item_text, item_id, user_text, user_id) if m.encode() in logged]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_answer_or_summary_made_from_an_item_deleted_meanwhile_is_not_stored(tmp_path, request, backend):
    """A request that retrieved an item (or a summary build that read it) finishes after the item's delete: the
    delete could not erase what was not stored yet, so the store refuses to store it (both wait on the user's lock)."""
    store = Store(store_url(request, backend) or f"sqlite:///{tmp_path / 'personalign.db'}")
    store.add_tenant("acme")
    secret, kept = store.add_items("acme", "alice", [{"text": "my secret"}, {"text": "kept"}])
    pks = [item["_pk"] for item in store.summary_source("acme", "alice", 10)]
    record = {"request_id": "r", "method": "rag", "query": "q", "retrieved_ids": [secret], "final": "my secret"}
    store.delete_item("acme", "alice", secret)
    assert store.add_answer("acme", "alice", record) is False
    assert store.put_summary("acme", "alice", "m", "summary of my secret", pks) is None
    assert store.answers("acme", "alice") == [] and store.summary("acme", "alice") is None
    assert store.add_answer("acme", "alice", {**record, "retrieved_ids": [kept]}) is True
    store.engine.dispose()


def test_a_wal_checkpoint_blocked_by_a_reader_is_reported_and_the_next_delete_completes_it(tmp_path, caplog):
    import sqlite3

    store = Store(f"sqlite:///{tmp_path / 'personalign.db'}")
    store.add_tenant("acme")
    first, second = f"first{uuid.uuid4().hex}", f"second{uuid.uuid4().hex}"
    store.add_items("acme", "alice", [{"text": first, "id": "a"}, {"text": second, "id": "b"}, {"text": "kept"}])
    reader = sqlite3.connect(tmp_path / "personalign.db", isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("select count(*) from history_items").fetchone() == (3,)  # a snapshot in the WAL
    with caplog.at_level(logging.WARNING, "personalign.serve"):
        store.delete_item("acme", "alice", "a")
    assert "checkpoint after a delete was blocked by a reader" in caplog.text and first not in caplog.text
    assert files_holding(tmp_path, first)  # reported, not hidden: the old page images are still in the WAL
    reader.execute("COMMIT")
    reader.close()
    store.delete_item("acme", "alice", "b")
    assert files_holding(tmp_path, first, second) == []
    assert (tmp_path / "personalign.db-wal").stat().st_size == 0
    store.engine.dispose()


def test_an_unexpected_failure_is_logged_without_its_message(tmp_path, all_logs):
    app, store, key = service(tmp_path, None)
    secret = f"secret{uuid.uuid4().hex}"

    def broken(tenant: str) -> list:
        raise RuntimeError(f"a message quoting {secret}")

    store.users = broken
    with running(app) as url:
        all_logs.attach()
        reply = httpx.get(f"{url}/v1/users", headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 500 and secret not in reply.text
    logged = "\n".join(all_logs.lines)
    assert "RuntimeError (message withheld" in logged and "in broken" in logged  # type and frames stay
    assert secret not in logged
    store.engine.dispose()


def test_the_access_log_path_keeps_the_route_not_the_ids():
    assert redact_path("/v1/users/alice/history/x1?limit=3") == "/v1/users/*/history/*"
    assert redact_path("/v1/users/al%20ice/answers") == "/v1/users/*/answers"
    assert redact_path("/v1/chat/completions") == "/v1/chat/completions"
    # users named like a route word are redacted too: the user is the segment's position, not its spelling
    assert redact_path("/v1/users/history/history/export") == "/v1/users/*/history/*"
    assert redact_path("/v1/users/answers") == "/v1/users/*"


def test_postgres_keeps_deleted_text_in_its_files_until_the_vacuum_that_removes_it(postgres, tmp_path):
    """The caveat of docs/serve.md, shown on a real server: dead tuples (and WAL) hold the text after DELETE;
    ``personalign vacuum`` (``Store.vacuum``: VACUUM FULL, WAL switch, CHECKPOINT) removes every copy."""
    url = postgres.database()
    store = Store(url)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ALTER SYSTEM SET wal_recycle = on")  # PostgreSQL's default
        connection.exec_driver_sql("SELECT pg_reload_conf()")
    vacuumed = store.vacuum()  # it cannot promise the bytes are gone: recycled WAL segments keep them
    assert not vacuumed and "wal_recycle = on" in vacuumed.problem
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ALTER SYSTEM SET wal_recycle = off")  # docs/serve.md: old WAL is removed, not
        connection.exec_driver_sql("SELECT pg_reload_conf()")              # renamed for reuse with its old bytes
    store.add_tenant("acme")
    secret = f"pgsecret{uuid.uuid4().hex}"
    store.add_items("acme", "alice", [{"text": f"my secret is {secret}", "id": "s"}, {"text": "kept"}])
    store.add_answer("acme", "alice", {"request_id": "r", "method": "rag", "query": "q", "retrieved_ids": ["s"],
                                       "final": f"you said {secret}"})
    cluster = postgres.socket_dir / "data"
    assert store.delete_item("acme", "alice", "s") == 1
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("CHECKPOINT")  # what the server does on its own within checkpoint_timeout
    assert _cluster_files_holding(cluster, secret)  # the caveat: still in the table's files and the WAL
    config = tmp_path / "serve.yaml"
    config.write_text(f"store_url: '{url}'\n")
    vacuum = subprocess.run(CLI + ["vacuum", "--config", str(config)], capture_output=True, text=True, timeout=120)
    assert vacuum.returncode == 0 and "done" in vacuum.stdout, vacuum.stderr
    assert _cluster_files_holding(cluster, secret) == []
    assert [i["text"] for i in store.items("acme", "alice")] == ["kept"]
    store.engine.dispose()
    store = Store(url, vacuum_after_delete=True)  # the config option: the same, inside every delete
    other = f"pgother{uuid.uuid4().hex}"
    store.add_items("acme", "alice", [{"text": other, "id": "o"}])
    store.delete_item("acme", "alice", "o")
    assert _cluster_files_holding(cluster, other) == []
    store.engine.dispose()


def _cluster_files_holding(cluster: Path, marker: str) -> list[str]:
    """Files of the PostgreSQL cluster holding the marker (read as root or the owner: the cluster is 0700)."""
    found = subprocess.run(["grep", "-rla", "--", marker, str(cluster)], capture_output=True, text=True)
    if found.returncode == 2:
        pytest.skip(f"cannot read the cluster's files: {found.stderr.strip()}")
    return found.stdout.split()


# ---------------------------------------------------------------- metrics


def test_request_metrics_carry_the_status_and_user_deletes_are_counted(tmp_path):
    app, store, key = service(tmp_path, None)
    auth = {"Authorization": f"Bearer {key}"}
    with running(app) as url:
        httpx.post(f"{url}/v1/users/erin/history", headers=auth, json={"items": [{"text": "a"}, {"text": "b"}]})
        httpx.post(f"{url}/v1/users/erin/history", headers=auth, json={"items": [{"text": "\x00"}]})
        httpx.get(f"{url}/v1/users", headers={"Authorization": "Bearer wrong"})
        item = httpx.get(f"{url}/v1/users/erin/history", headers=auth).json()["items"][0]["id"]
        httpx.delete(f"{url}/v1/users/erin/history/{item}", headers=auth)
        httpx.delete(f"{url}/v1/users/erin", headers=auth)
        metrics = httpx.get(f"{url}/metrics").text
    for route, status in (("/v1/users/{user}/history", "201"), ("/v1/users/{user}/history", "400"),
                          ("/v1/users", "401"), ("/v1/users/{user}", "200")):
        assert f'personalign_request_seconds_count{{route="{route}",status="{status}"}} 1.0' in metrics
    assert 'personalign_history_items_total{op="add"} 2.0' in metrics
    assert 'personalign_history_items_total{op="delete"} 2.0' in metrics  # one by id, one with its user
    assert "personalign_user_deletes_total 1.0" in metrics
    store.engine.dispose()
