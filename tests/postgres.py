"""A throwaway PostgreSQL server for tests (initdb into a temp folder, a Unix socket, a free port)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from netutil import free_port

BIN = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None) \
    if Path("/usr/lib/postgresql").is_dir() else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """Postgres refuses to run as root: run it as the 'postgres' user when we are root."""
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


class PostgresServer:
    """A running throwaway server; ``database()`` makes a fresh, empty database and returns its URL."""

    def __init__(self, socket_dir: Path, port: int):
        self.socket_dir, self.port, self.count = socket_dir, port, 0

    def database(self) -> str:
        self.count += 1
        name = f"personalign{self.count}"
        subprocess.run(_as_postgres([str(BIN / "createdb"), "-h", str(self.socket_dir), "-p", str(self.port),
                                     "-U", "postgres", name]), check=True, capture_output=True)
        return f"postgresql+psycopg://postgres@/{name}?host={self.socket_dir}&port={self.port}"


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a server (``database()`` gives URLs); skip when PostgreSQL or psycopg is missing."""
    pytest.importorskip("psycopg", reason="pip install 'psycopg[binary]' to test the Postgres store")
    if BIN is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("PostgreSQL server binaries not installed (apt install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="personalign-pg-"))  # pytest's tmp_path is not reachable by 'postgres'
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    run = lambda cmd: subprocess.run(_as_postgres(cmd), check=True, capture_output=True, text=True)  # noqa: E731
    run([str(BIN / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres", "--no-sync"])
    run([str(BIN / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o",
         f"-k {root} -p {port} -c listen_addresses='' -c fsync=off", "start"])
    try:
        yield PostgresServer(root, port)
    finally:
        subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
