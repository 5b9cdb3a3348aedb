"""Helpers of the service tests: a real uvicorn server on loopback, ``personalign serve`` processes, and the
official openai client's calls."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fakes import FakeEchoLLM
from netutil import free_port, wait_until_up

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

from personalign.serve.app import create_app  # noqa: E402
from personalign.serve.config import ServeConfig  # noqa: E402
from personalign.serve.store import Store  # noqa: E402


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


@contextmanager
def serving(config: ServeConfig, base_llm=None) -> Iterator[tuple[str, str]]:
    """The service for ``config`` (``base_llm`` replaces the configured base) under a real uvicorn, with one
    tenant, "acme": yields the URL and the tenant's key."""
    store = Store(config.store())
    key = store.add_tenant("acme")
    with running(create_app(config, base_llm=base_llm, store=store)) as url:
        yield url, key


CLI = [sys.executable, "-m", "personalign.cli"]


def tenant_key(config: Path, name: str = "acme") -> str:
    """``personalign tenant add``: the key it prints once."""
    made = subprocess.run(CLI + ["tenant", "add", name, "--config", str(config)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return made.stdout.split("API key ")[1].split()[0]


def store_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    """A new database on the session's PostgreSQL server for backend "postgres"; None (the SQLite default) otherwise."""
    return request.getfixturevalue("postgres").database() if backend == "postgres" else None


def serve_config(tmp_path: Path, extra_yaml: str = "") -> tuple[Path, str, str]:
    """A ``serve.yaml`` on a free port with tenant "acme" added: its path, the tenant's key and the service URL."""
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nport: {port}\n{extra_yaml}")
    return config, tenant_key(config), f"http://127.0.0.1:{port}"


def serve_process(config: Path, url: str) -> subprocess.Popen:
    """``personalign serve --config`` in its own process, once its /healthz answers."""
    proc = subprocess.Popen(CLI + ["serve", "--config", str(config), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_up(proc, f"{url}/healthz", "personalign serve")
    return proc


def serve_workers(tmp_path: Path, workers: int = 2) -> tuple[subprocess.Popen, str, str]:
    """``personalign serve --workers N`` as a subprocess, its base an unreachable fake (no model needed):
    the process, the tenant key and the service's base URL (poll ``/healthz`` until it answers)."""
    config, key, url = serve_config(tmp_path, "base_llm: openai:fake\nbase_llm_options: {base_url: "
                                    "'http://127.0.0.1:9/v1', max_retries: 0}\n")
    proc = subprocess.Popen(CLI + ["serve", "--config", str(config), "--workers", str(workers), "--log-level",
                                   "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, key, url


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=20)


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


def summary_app(tmp_path, store_url=None, method="pag", llm=None):
    """A service whose derived data (PAG by default) a test builds by hand (no worker thread): app, store, worker, key."""
    from personalign.serve.derived import DerivedWorker, SummaryBuilder

    config = ServeConfig(data_dir=str(tmp_path), store_url=store_url, method=method, derived_worker=False)
    store = Store(config.store())
    app = create_app(config, base_llm=llm or FakeEchoLLM(), store=store)
    assert store.derived == ("summary",) and app.state.worker is None
    worker = DerivedWorker(store, [SummaryBuilder(app.state.personalizer)])
    return app, store, worker, store.add_tenant("acme")


def stored_texts(store: Store, table: str, column: str) -> list[str]:
    """Every value of one column of one table, read from the storage itself."""
    with store.engine.connect() as db:
        return [str(row[0]) for row in db.exec_driver_sql(f"select {column} from {table}")]


def wait_embedded(url: str, key: str, user: str, count: int, seconds: float = 60) -> list[dict]:
    deadline = time.monotonic() + seconds
    while True:
        items = httpx.get(f"{url}/v1/users/{user}/history", headers={"Authorization": f"Bearer {key}"}).json()["items"]
        if sum(i.get("embedded", False) for i in items) >= count:
            return items
        assert time.monotonic() < deadline, f"embeddings not built: {items}"
        time.sleep(0.2)
