"""``personalign serve --workers 2``: two processes answer on one port and share one store."""

from __future__ import annotations

import subprocess
import time

import httpx
from serve_helpers import serve_workers, stop


def test_two_worker_processes_serve_requests_and_see_the_same_history(tmp_path):
    proc, key, url = serve_workers(tmp_path)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        seen: dict[int, list[list[str]]] = {}  # process: the item ids each of its reads returned
        writer: dict[str, int] = {}              # item id: the process that stored it
        written = 0
        deadline = time.monotonic() + 120

        def both_read_both() -> bool:  # each process has read items stored by each
            return len(seen) == 2 and all({writer[i] for i in reads[-1]} == set(seen) for reads in seen.values())

        while not both_read_both():
            assert proc.poll() is None, "personalign serve --workers 2 exited"
            assert time.monotonic() < deadline, f"requests reached only the processes {sorted(seen)}"
            try:
                # one connection is served by the process that accepted it: its /healthz names that process
                with httpx.Client(limits=httpx.Limits(max_connections=1), timeout=10) as connection:
                    pid = connection.get(f"{url}/healthz").json()["pid"]
                    written += 1
                    added = connection.post(f"{url}/v1/users/alice/history", headers=headers,
                                            json={"items": [{"text": f"note {written}", "id": f"n{written}"}]})
                    assert added.status_code == 201, added.text
                    writer[f"n{written}"] = pid
                    items = connection.get(f"{url}/v1/users/alice/history", headers=headers).json()["items"]
            except httpx.TransportError:  # still starting
                time.sleep(0.2)
                continue
            seen.setdefault(pid, []).append([item["id"] for item in items])
        assert len(seen) == 2 and proc.pid not in seen
        for reads in seen.values():  # every read returned every item stored so far, by either process
            for ids in reads:
                assert ids == [f"n{n}" for n in range(1, int(ids[-1][1:]) + 1)]
    finally:
        stop(proc)


def test_an_answer_commits_without_an_fsync_and_the_next_item_add_is_fsynced_again(tmp_path):
    """The per-request answer write does not hold SQLite's one write lock for an fsync (the ceiling of personalized
    requests); item adds, on the same pooled connection next, still commit with synchronous=FULL (2)."""
    from sqlalchemy import event

    from personalign.serve.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.add_tenant("acme")
    store.add_items("acme", "alice", [{"text": "jazz", "id": "a"}])
    seen: list[tuple[str, int]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _record(connection, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT"):
            seen.append((" ".join(statement.split()[:3]), cursor.connection.execute("PRAGMA synchronous").fetchone()[0]))

    assert store.add_answer("acme", "alice", {"request_id": "r1", "method": "rag", "query": "q", "base_answer": "",
                                              "retrieved_ids": ["a"], "thinking": "", "final": "f", "fallback": "",
                                              "summary_version": None})
    store.add_items("acme", "alice", [{"text": "rock", "id": "b"}])
    assert [level for statement, level in seen if statement == "INSERT INTO answers"] == [1]        # NORMAL
    assert [level for statement, level in seen if statement == "INSERT INTO history_items"] == [2]  # FULL
    store.engine.dispose()


def test_processes_that_open_a_new_store_at_once_migrate_it_one_at_a_time(tmp_path):
    """Four processes open one new SQLite store at the same instant: each gets a store at the head revision."""
    import sys

    go, url = tmp_path / "go", f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    script = ("import pathlib, sys, time\nfrom personalign.serve.store import Store\n"
              "while not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.005)\n"
              "Store(sys.argv[2]).add_tenant(sys.argv[3])\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(go), url, f"t{n}"], stderr=subprocess.PIPE, text=True)
             for n in range(4)]
    time.sleep(8)  # every process has imported and waits at the barrier
    go.touch()
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], errors
    from personalign.serve.store import Store

    store = Store(url)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("select count(*) from tenants").scalar_one() == 4
    store.engine.dispose()
