import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests never write into the user's real cache folder (the default of --cache-dir): a temporary one per session,
# set before any command-line parser reads the default, inherited by the commands tests start, removed at exit.
os.environ["PERSONALIGN_CACHE_DIR"] = tempfile.mkdtemp(prefix="personalign-test-cache-")
atexit.register(shutil.rmtree, os.environ["PERSONALIGN_CACHE_DIR"], True)
sys.path.insert(0, str(Path(__file__).parent))
from netutil import free_port, wait_until_up  # noqa: E402

REALLAMP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reallamp"


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread: on a shared, oversubscribed CPU, 2 threads ran ~10x slower than 1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """A real llama-cpp-python OpenAI-compatible server on loopback, serving the bundled model; yields its /v1 URL."""
    from personalign.backends import default_gguf_path

    needed = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama.cpp server extras not installed ({', '.join(missing)}): "
                    "pip install 'llama-cpp-python[server]'")
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", default_gguf_path(), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_up(proc, f"{base}/models", "llama_cpp.server", seconds=180)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (skipped when it cannot start)."""
    from postgres import postgres_server

    with postgres_server() as server:
        yield server
