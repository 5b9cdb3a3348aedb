"""A bad ``store_url`` is one line naming the setting (password hidden), not a traceback from SQLAlchemy."""

from __future__ import annotations

import pytest

from personalign.cli import main


@pytest.mark.parametrize("url, shown", [("nosuch://x", "'nosuch://x'"),
                                        ("postgresql+nodriver://u:secret@h/db", "'postgresql+nodriver://u:***@h/db'"),
                                        ("::::", "'::::'"),
                                        ("postgresql://u:secret@h:port/db", "'h:port/db'")])
def test_a_bad_store_url_is_one_line(tmp_path, capsys, url, shown):
    config = tmp_path / "serve.yaml"
    config.write_text(f"store_url: '{url}'\nbase_llm: 'openai:m'\n")
    assert main(["tenant", "add", "acme", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"personalign: error: store_url: cannot use {shown} "), err
    assert "secret" not in err
