"""Issue 28, item 6: llama.cpp worker processes die with their parent, whatever kills it.

A real ``personalign eval --workers 2`` on the bundled model runs in a subprocess whose stderr is a pipe;
the eval process is killed (SIGKILL, SIGTERM), and then its workers (and multiprocessing's resource
tracker) must be gone within seconds, so a pipe reader such as ``| cat`` sees end-of-file.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "personalign" / "data" / "examples"


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_to_eof(stream, seconds: float) -> bool:
    """True when ``stream`` reaches end-of-file within ``seconds``."""
    deadline = time.monotonic() + seconds
    fd = stream.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready and not os.read(fd, 65536):
            return True
    return False


BUSY_POOL = """
import time
from personalign.backends import get_llm
from personalign.backends._pool import WorkerPoolLLM
from personalign.types import GenParams
llm = WorkerPoolLLM("llamacpp", 2, {"n_threads": 1}, get_llm)
llm.submit_batch([[{"role": "user", "content": f"Write a long story, number {i}."}] for i in range(6)],
                 GenParams(max_tokens=400))
print("busy", flush=True)
time.sleep(300)
"""


def kill_and_check(proc: subprocess.Popen, how: int, spawned: list[int]) -> None:
    os.kill(proc.pid, how)
    proc.wait(timeout=10)
    assert read_to_eof(proc.stderr, 10), "stderr is still held open by a survivor"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in spawned):
        time.sleep(0.1)
    assert not [p for p in spawned if alive(p)]


def cleanup(proc: subprocess.Popen, spawned: list[int]) -> None:
    for pid in [proc.pid, *children(proc.pid), *(p for p in spawned if alive(p))]:  # survivors of a failure
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


@pytest.mark.model
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_busy_workers_die_with_their_killed_parent(how):
    """Workers in the middle of long generations (the case that left orphans) die with the parent."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_POOL], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    spawned: list[int] = []
    try:
        assert proc.stdout.readline().strip() == b"busy", proc.stderr.read()[-2000:]
        time.sleep(1.0)
        spawned = children(proc.pid)  # two workers, and multiprocessing's resource tracker
        assert len(spawned) >= 2, spawned
        kill_and_check(proc, how, spawned)
    finally:
        cleanup(proc, spawned)


@pytest.mark.model
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_eval(tmp_path):
    argv = [sys.executable, "-m", "personalign.cli", "eval", "--data", str(EXAMPLES), "--task", "LaMP_7",
            "--methods", "zero-shot", "--workers", "2", "--llm-options", "n_threads=1", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    spawned: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and len(children(proc.pid)) < 2:
            time.sleep(0.2)
        # killed as soon as its workers are up: on a fast machine the whole eval (2 questions) ends within a
        # second or two, and its workers with it (the busy-worker case is the test above)
        spawned = children(proc.pid)
        assert proc.poll() is None and len(spawned) >= 2, f"workers never started: {spawned}"
        kill_and_check(proc, signal.SIGKILL, spawned)
    finally:
        cleanup(proc, spawned)
