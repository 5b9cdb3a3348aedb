import os

import pytest
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

REALLAMP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reallamp"


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread: on a shared, oversubscribed CPU, 2 threads ran ~10x slower than 1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
