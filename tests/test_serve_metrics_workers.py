"""Metrics under ``personalign serve --workers 2`` (one scrape counts every process), store URLs printed without
their password, and ``personalign vacuum`` saying which step fell short."""

from __future__ import annotations

import re
import subprocess
import time

import httpx
from serve_helpers import CLI, serve_workers, stop

from personalign.serve.db import shown_url


def _count(metrics: str, sample: str) -> float:
    """The value of one exposition sample (name and labels exactly as written), 0 when absent."""
    found = re.search(rf"^{re.escape(sample)} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_one_scrape_counts_the_requests_and_user_deletes_of_every_worker_process(tmp_path):
    proc, key, url = serve_workers(tmp_path)
    headers = {"Authorization": f"Bearer {key}"}
    served: dict[int, int] = {}   # process: the users it deleted
    healthz = unauthorized = 0
    try:
        deadline = time.monotonic() + 120
        while len(served) < 2 or min(served.values()) < 1:
            assert proc.poll() is None, "personalign serve --workers 2 exited"
            assert time.monotonic() < deadline, f"requests reached only the processes {sorted(served)}"
            try:  # one connection is served by the process that accepted it: its /healthz names that process
                with httpx.Client(limits=httpx.Limits(max_connections=1), timeout=10) as connection:
                    pid = connection.get(f"{url}/healthz").json()["pid"]
                    healthz += 1
                    user = f"secretuser{healthz}x"
                    added = connection.post(f"{url}/v1/users/{user}/history", headers=headers,
                                            json={"items": [{"text": "note"}]})
                    assert added.status_code == 201, added.text
                    assert connection.delete(f"{url}/v1/users/{user}", headers=headers).status_code == 200
                    assert connection.get(f"{url}/v1/users", headers={"Authorization": "Bearer no"}).status_code == 401
                    unauthorized += 1
            except httpx.TransportError:  # still starting
                time.sleep(0.2)
                continue
            served[pid] = served.get(pid, 0) + 1
        assert proc.pid not in served
        metrics = httpx.get(f"{url}/metrics").text  # one scrape, answered by either process
        deletes = sum(served.values())
        assert _count(metrics, 'personalign_request_seconds_count{route="/healthz",status="200"}') == healthz
        assert _count(metrics, 'personalign_request_seconds_count{route="/v1/users/{user}",status="200"}') == deletes
        assert _count(metrics, 'personalign_request_seconds_count{route="/v1/users",status="401"}') == unauthorized
        assert _count(metrics, "personalign_user_deletes_total") == deletes
        assert _count(metrics, 'personalign_history_items_total{op="delete"}') == deletes
        assert _count(metrics, "personalign_derived_queue_jobs") == 0  # read from the shared store
        # the processes' metric files: in the data folder, and no user id in them (labels are route templates)
        folders = list((tmp_path / "data").glob("metrics-*"))
        assert len(folders) == 1 and len(list(folders[0].glob("*.db"))) >= 2
        for file in folders[0].iterdir():
            assert b"secretuser" not in file.read_bytes(), file.name
    finally:
        stop(proc)
    assert not list((tmp_path / "data").glob("metrics-*"))  # removed when the service stops


def test_store_urls_are_shown_without_their_password():
    assert shown_url("postgresql+psycopg://svc:hunter2@db.internal:5432/personalign") == \
        "postgresql+psycopg://svc:***@db.internal:5432/personalign"
    assert shown_url("sqlite:////srv/data/personalign.db") == "sqlite:////srv/data/personalign.db"


def test_serve_and_vacuum_print_no_password_and_vacuum_names_what_fell_short(postgres, tmp_path):
    """The startup line and ``personalign vacuum`` hide the password; on a server with ``wal_recycle = on``
    vacuum exits 1 and says so, and what to set (the message used to blame the WAL switch)."""
    url = postgres.database().replace("postgres@", "postgres:hunter2@")  # trust auth: the password is not checked
    config = tmp_path / "serve.yaml"
    config.write_text(f"store_url: '{url}'\nport: 0\nbase_llm: openai:fake\n"
                      "base_llm_options: {base_url: 'http://127.0.0.1:9/v1', max_retries: 0}\n")
    serve = subprocess.Popen(CLI + ["serve", "--config", str(config), "--log-level", "warning"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = serve.stdout.readline()
    finally:
        stop(serve)
    assert line.startswith("personalign serve:") and "postgres:***@" in line and "hunter2" not in line, line
    from personalign.serve.store import Store

    store = Store(url)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ALTER SYSTEM SET wal_recycle = on")
        connection.exec_driver_sql("SELECT pg_reload_conf()")
    try:
        vacuum = subprocess.run(CLI + ["vacuum", "--config", str(config)], capture_output=True, text=True,
                                timeout=120)
    finally:
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ALTER SYSTEM RESET wal_recycle")
            connection.exec_driver_sql("SELECT pg_reload_conf()")
        store.engine.dispose()
    assert vacuum.returncode == 1, vacuum.stderr
    out = vacuum.stdout + vacuum.stderr
    assert "not complete" in vacuum.stdout and "wal_recycle = on" in vacuum.stdout
    assert "wal_recycle = off" in vacuum.stdout and "refused" not in vacuum.stdout
    assert "postgres:***@" in vacuum.stdout and "hunter2" not in out
