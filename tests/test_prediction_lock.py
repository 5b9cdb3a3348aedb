"""A prediction log has one writer at a time, across processes (filelock on ``<log>.lock``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from personalign.engine.predictions import PredictionLog
from personalign.errors import ConfigError

HOLD = """
import sys
from personalign.engine.predictions import PredictionLog
with PredictionLog(sys.argv[1]):
    print("holding", flush=True)
    sys.stdin.readline()
"""


def test_a_writer_in_another_process_is_refused_until_it_ends(tmp_path):
    path = tmp_path / "predictions" / "rag.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(ConfigError, match="rag.jsonl is being written by another process"):
            PredictionLog(path)
    finally:
        holder.communicate("done\n", timeout=30)
    assert holder.returncode == 0
    with PredictionLog(path) as log:  # free once the other writer has ended
        log.append({"id": "q1", "raw": "4"})
    assert "q1" in PredictionLog(path, lock=False)
