"""Downloading LaMP: clear errors without a network, and the right layout from a (local) server."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from personalign.data.download import download_lamp, lamp_url
from personalign.data.lamp_io import load_split
from personalign.errors import ConfigError, PersonalignError
from personalign.tasks import get_task

FILES = ["train_questions", "train_outputs", "dev_questions", "dev_outputs", "test_questions"]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over ``tmp_path/site``; yields (base URL, site folder)."""
    site = tmp_path / "site"
    site.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/downloads/LaMP", site
    httpd.shutdown()
    httpd.server_close()


def publish(site: Path, remote_dir: str, task: str) -> dict[str, bytes]:
    """Put small fake LaMP files at ``site/downloads/LaMP/<remote_dir>/<part>/<part>_<kind>.json``."""
    contents = {}
    for name in FILES:
        part, kind = name.split("_")
        if kind == "questions":
            spec = get_task(task)
            item = {field: spec.labels[0] if field == spec.output_field and spec.labels else "4"
                    for field in spec.profile_fields}  # a profile tag is one of the labels, as in LaMP
            value = [{"id": f"{part}1", "input": f"input: {part} ✓", "profile": [item]}]
        else:
            value = {"task": task, "golds": [{"id": f"{part}1", "output": get_task(task).labels[-1] if task == "LaMP_2" else "5"}]}
        target = site / "downloads" / "LaMP" / remote_dir / part / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        contents[name] = json.dumps(value, ensure_ascii=False).encode()
        target.write_bytes(contents[name])
    return contents


def test_no_network_gives_one_clear_line(tmp_path):
    with pytest.raises(PersonalignError) as excinfo:
        download_lamp("LaMP_3", "user", tmp_path, base_url="http://127.0.0.1:9", timeout=5)
    message = str(excinfo.value)
    assert len(message.splitlines()) == 1
    assert "network is unreachable" in message
    assert "http://127.0.0.1:9/LaMP_3/train/train_questions.json" in message
    assert str(tmp_path / "LaMP_3" / "user") in message
    assert not any(tmp_path.rglob("*.json")) and not any(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("task,split,remote_dir", [
    ("LaMP_3", "user", "LaMP_3"),
    ("LaMP_3", "time", "time/LaMP_3"),
    ("LaMP_2", "user", "LaMP_2/new"),
])
def test_downloads_into_layout(tmp_path, server, task, split, remote_dir):
    base_url, site = server
    contents = publish(site, remote_dir, task)
    out = tmp_path / "data"
    paths = download_lamp(task, split, out, base_url=base_url, timeout=5)
    assert paths == [out / task / split / f"{name}.json" for name in FILES]
    for name, path in zip(FILES, paths):
        assert path.read_bytes() == contents[name]
    examples, golds = load_split(out, get_task(task), split, "dev")
    assert [e.id for e in examples] == ["dev1"] and golds == {"dev1": get_task(task).labels[-1] if task == "LaMP_2" else "5"}
    assert load_split(out, get_task(task), split, "test")[1] is None

    (site / "downloads" / "LaMP" / remote_dir / "dev" / "dev_outputs.json").write_text("changed")
    download_lamp(task, split, out, base_url=base_url, timeout=5)  # existing files are kept
    assert paths[3].read_bytes() == contents["dev_outputs"]
    download_lamp(task, split, out, base_url=base_url, timeout=5, force=True)
    assert paths[3].read_text() == "changed"


def test_http_404_is_a_clear_error(tmp_path, server):
    base_url, site = server
    publish(site, "LaMP_3", "LaMP_3")
    (site / "downloads" / "LaMP" / "LaMP_3" / "test" / "test_questions.json").unlink()
    with pytest.raises(PersonalignError) as excinfo:
        download_lamp("LaMP_3", "user", tmp_path, base_url=base_url, timeout=5)
    message = str(excinfo.value)
    assert len(message.splitlines()) == 1
    assert "HTTP 404" in message and lamp_url("LaMP_3", "user", "test", "questions", base_url) in message
    assert not (tmp_path / "LaMP_3" / "user" / "test_questions.json").exists()


def test_official_urls_and_bad_arguments(tmp_path):
    assert lamp_url("LaMP_4", "user", "train", "questions") == \
        "https://ciir.cs.umass.edu/downloads/LaMP/LaMP_4/train/train_questions.json"
    assert lamp_url("LaMP_4", "time", "dev", "outputs") == \
        "https://ciir.cs.umass.edu/downloads/LaMP/time/LaMP_4/dev/dev_outputs.json"
    assert lamp_url("LaMP_2", "user", "test", "questions") == \
        "https://ciir.cs.umass.edu/downloads/LaMP/LaMP_2/new/test/test_questions.json"
    for task, split in (("LaMP_6", "user"), ("LaMP_9", "user"), ("LaMP_3", "random")):
        with pytest.raises(ConfigError):
            download_lamp(task, split, tmp_path)
