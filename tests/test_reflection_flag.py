"""``--reflection`` sets RPO's reflection model: given with no rpo method, it is refused by name, not ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from personalign.cli import main

HISTORY = Path(__file__).resolve().parents[1] / "personalign" / "data" / "examples" / "histories" / "fair_fred.json"


@pytest.mark.parametrize("argv", [
    ["eval", "--data", "nowhere", "--task", "LaMP_3", "--methods", "user-mean,rag", "--reflection", "m.gguf"],
    ["personalize", "--history", str(HISTORY), "--method", "user-mean", "--reflection", "m.gguf", "4 stars?"],
])
def test_reflection_without_an_rpo_method_is_one_line_naming_the_flag(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("personalign: error: --reflection: ") and "rpo" in err, err
