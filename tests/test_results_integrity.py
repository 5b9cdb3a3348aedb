"""Issue 28, items 2-4, 9, 10: no stale or silent results, no tracebacks from damaged run state.

Every test here drives the real CLI entry point (``personalign.cli.main``) or the real runner; the only
fakes are the LLM backends from tests/fakes.py (orchestration only, never reported numbers).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakes import FakeHashLLM

from personalign.cli import main
from personalign.data.lamp_io import write_outputs, write_questions
from personalign.errors import ConfigError
from personalign.eval.runner import EvalConfig, run_eval
from personalign.tasks import get_task
from personalign.types import Example

LAMP3 = get_task("LaMP_3")
N = 6


def golds_for(shift: int) -> list[tuple[str, str]]:
    return [(str(i), str(1 + (i + shift) % 5)) for i in range(N)]


def rating_data(root: Path, shift: int = 0) -> Path:
    folder = root / "LaMP_3" / "user"
    folder.mkdir(parents=True, exist_ok=True)
    examples = [Example(id=str(i), input=LAMP3.format_input(f"product {i}"), user_id=f"u{i}",
                        profile=[{"text": f"item {i} {j}", "score": str(1 + (i + j) % 5), "id": f"{i}-{j}"}
                                 for j in range(3)]) for i in range(N)]
    write_questions(folder / "dev_questions.json", examples)
    write_outputs(folder / "dev_outputs.json", "LaMP_3", golds_for(shift))
    return root


def config(data: Path, out: Path, methods=("zero-shot",), **kwargs) -> EvalConfig:
    return EvalConfig(data=str(data), task="LaMP_3", methods=list(methods), out=str(out),
                      cache_dir=str(out / "cache"), **kwargs)


def mae_of_three(shift: int) -> float:
    """The MAE of a model that always answers 3, against the golds of ``golds_for(shift)``."""
    return sum(abs(3 - int(g)) for _, g in golds_for(shift)) / N


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("personalign: error")]


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


# ------------------------------------------------------------------ item 2: stale golds


def test_rescore_and_report_after_a_gold_edit_never_give_the_stale_number(tmp_path, capsys):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out")
    stale = run_eval(cfg, llm=FakeHashLLM(["3"]))["zero-shot"]["lenient"]["mae"]
    assert stale == pytest.approx(mae_of_three(0))
    rating_data(tmp_path / "data", shift=2)  # the golds are edited in place
    assert mae_of_three(2) != pytest.approx(stale)

    code, out, err = cli(capsys, "rescore", str(tmp_path / "out"))
    scored = metrics(cfg.run_dir).get("zero-shot")
    if code == 0:  # read the golds from the data: the truth
        assert scored["lenient"]["mae"] == pytest.approx(mae_of_three(2))
    else:  # or a clear refusal, and the stale number is not left standing as the result
        (line,) = error_lines(err)
        assert "zero-shot" in line and "data" in line and "eval" in line
        assert scored is None or scored["lenient"]["mae"] != pytest.approx(stale)
    code, out, err = cli(capsys, "report", "--runs", str(tmp_path / "out"), "--task", "LaMP_3")
    assert f"{stale:.4f}" not in out
    assert code == 0 or len(error_lines(err)) >= 1


# ------------------------------------------------------------------ item 3: empty completions


def test_empty_completions_are_retried_on_the_next_run(tmp_path, capsys):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out")
    broken = run_eval(cfg, llm=FakeHashLLM([""]))["zero-shot"]
    assert broken["empty_rate"] == 1.0
    capsys.readouterr()
    healthy = FakeHashLLM(["3"])
    result = run_eval(cfg, llm=healthy)["zero-shot"]
    assert healthy.calls == N  # every empty completion was asked again
    assert result["empty_rate"] == 0.0 and result["n"] == N
    assert result["lenient"]["mae"] == pytest.approx(mae_of_three(0))
    assert metrics(cfg.run_dir)["zero-shot"]["lenient"]["mae"] == pytest.approx(mae_of_three(0))


def test_a_run_that_still_holds_empty_completions_says_so(tmp_path, capsys):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out")
    run_eval(cfg, llm=FakeHashLLM([""]))
    err = capsys.readouterr().err
    assert re.search(r"zero-shot.*6 of 6 .*empty.*again", err), err


# ------------------------------------------------------------------ item 4: rows dropped or invented


@pytest.mark.parametrize("damage", ["empty", "all garbage"])
def test_a_log_with_no_readable_rows_is_an_error_not_a_vanished_row(tmp_path, capsys, damage):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", methods=["zero-shot", "user-mean"])
    run_eval(cfg, llm=FakeHashLLM(["3"]))
    log = cfg.run_dir / "predictions" / "zero-shot.jsonl"
    log.write_text("" if damage == "empty" else "garbage\n[1, 2]\n{not json\n")
    code, out, err = cli(capsys, "rescore", str(tmp_path / "out"))
    assert code != 0
    (line,) = error_lines(err)
    assert "zero-shot.jsonl" in line
    assert "zero-shot" in (cfg.run_dir / "results.md").read_text()  # visible, marked, not silently gone
    assert "user-mean" in metrics(cfg.run_dir)  # the healthy log is still scored
    code, out, err = cli(capsys, "report", "--runs", str(tmp_path / "out"), "--task", "LaMP_3")
    assert code != 0 and error_lines(err)


def test_a_row_whose_id_is_not_in_the_data_is_refused_not_scored(tmp_path, capsys):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out")
    run_eval(cfg, llm=FakeHashLLM(["3"]))
    log = cfg.run_dir / "predictions" / "zero-shot.jsonl"
    row = json.loads(log.read_text().splitlines()[0])
    with log.open("a") as handle:
        handle.write(json.dumps({**row, "id": "999"}) + "\n")
    code, out, err = cli(capsys, "rescore", str(tmp_path / "out"))
    assert code != 0
    (line,) = error_lines(err)
    assert "999" in line and "zero-shot.jsonl" in line
    assert metrics(cfg.run_dir).get("zero-shot", {}).get("n", N) <= N  # never n=7 of 6


def test_report_refuses_unknown_methods_and_extra_fields(tmp_path, capsys):
    data = rating_data(tmp_path / "data")
    run_eval(config(data, tmp_path / "out", methods=["user-mean", "user-prior"]))
    runs = ["report", "--runs", str(tmp_path / "out"), "--task", "LaMP_3"]
    code, out, err = cli(capsys, *runs, "--methods", "nope")
    (line,) = error_lines(err)
    assert code == 2 and "nope" in line and "user-mean" in line and "user-prior" in line
    code, out, err = cli(capsys, *runs, "--extra", "bogus")
    (line,) = error_lines(err)
    assert code == 2 and "bogus" in line and "fallback_rate" in line
    code, out, err = cli(capsys, *runs, "--methods", "user-mean", "--extra", "s/ex")
    assert code == 0 and "user-mean" in out and "user-prior" not in out


# ------------------------------------------------------------------ item 9: damaged state


@pytest.mark.parametrize("field, value", [("trace", "x"), ("raw", None), ("filter", 3)])
def test_a_damaged_log_row_is_one_line_and_recomputed(tmp_path, capsys, field, value):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out")
    run_eval(cfg, llm=FakeHashLLM(["3"]))
    log = cfg.run_dir / "predictions" / "zero-shot.jsonl"
    lines = log.read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), field: value})
    log.write_text("\n".join(lines) + "\n")
    code, out, err = cli(capsys, "rescore", str(tmp_path / "out"))
    said = [line for line in err.splitlines() if "zero-shot.jsonl" in line]
    assert len(said) == 1 and "line 3" in said[0] and field in said[0] and "again" in said[0]
    again = FakeHashLLM(["3"])
    assert run_eval(cfg, llm=again)["zero-shot"]["n"] == N and again.calls == 1  # the damaged row, recomputed
    capsys.readouterr()
    code, out, err = cli(capsys, "rescore", str(tmp_path / "out"))
    assert code == 0 and "zero-shot.jsonl" not in err


def test_a_non_utf8_cache_value_is_recomputed_with_one_line(tmp_path, capsys):
    from personalign.backends._cached import CachedLLM

    inner = FakeHashLLM(["4"])
    path = tmp_path / "llm.sqlite"
    llm = CachedLLM(inner, path)
    assert llm.chat([{"role": "user", "content": "x"}]).text == "4"
    with sqlite3.connect(path) as db:
        db.execute("UPDATE llm_cache SET value = ?", (b"\xff\xfe\x00garbage",))
    assert llm.chat([{"role": "user", "content": "x"}]).text == "4"
    assert inner.calls == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "llm.sqlite" in err
    assert llm.chat([{"role": "user", "content": "x"}]).text == "4" and inner.calls == 2  # repaired


def test_a_garbage_manifest_is_one_line_under_report_diagnostics(tmp_path, capsys):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", methods=["user-mean"])
    run_eval(cfg)
    (cfg.run_dir / "manifest.json").write_bytes(b"\x00garbage{")
    code, out, err = cli(capsys, "report", "--runs", str(tmp_path / "out"), "--task", "LaMP_3", "--diagnostics")
    (line,) = error_lines(err)
    assert code == 2 and "manifest.json" in line and "--data" in line
    code, out, err = cli(capsys, "report", "--runs", str(tmp_path / "out"), "--task", "LaMP_3", "--diagnostics",
                         "--data", str(data))
    assert code == 0 and "Diagnostics" in out


# ------------------------------------------------------------------ item 10: smaller


def test_resume_refusals_show_the_part_that_differs(tmp_path):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", methods=["rag"])
    run_eval(cfg, llm=FakeHashLLM(["3"]))
    for change in ("k", "data"):
        if change == "k":
            cfg.method_config.k = 2
        else:
            cfg.method_config.k = 4
            rating_data(tmp_path / "data", shift=1)
        with pytest.raises(ConfigError) as error:
            run_eval(cfg, llm=FakeHashLLM(["3"]))
        shown = re.findall(r"\(([^()]*?) -> ([^()]*?)\)", str(error.value))
        assert shown and all(before != after for before, after in shown), str(error.value)
        if change == "k":
            assert any("4" in before and "2" in after for before, after in shown), str(error.value)


class FakeFileModel(FakeHashLLM):
    """A FAKE backend whose identity is a model file's content, as llama.cpp's is."""

    def __init__(self, path: Path):
        from personalign.backends import model_file_id

        super().__init__(["3"])
        self.name = f"fake:{model_file_id(path)}"


def test_the_same_model_content_under_another_file_name_resumes(tmp_path):
    data = rating_data(tmp_path / "data")
    first = tmp_path / "model.gguf"
    first.write_bytes(b"weights v1")
    cfg = config(data, tmp_path / "out", methods=["rag"])
    run_eval(cfg, llm=FakeFileModel(first))
    renamed = tmp_path / "copy-of-model.gguf"
    renamed.write_bytes(first.read_bytes())
    assert run_eval(cfg, llm=FakeFileModel(renamed))["rag"]["n"] == N
    renamed.write_bytes(b"weights v2")  # other content is still refused
    with pytest.raises(ConfigError, match="different models"):
        run_eval(cfg, llm=FakeFileModel(renamed))


KILL_MID_WRITE = textwrap.dedent("""
    import json, os, signal, sys
    import personalign.eval.rescore as rescore
    real_dump = json.dump
    def dump_then_die(value, handle, **kwargs):
        handle.write("{")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    rescore.json.dump = dump_then_die
    rescore.rescore(sys.argv[1])
""")


def test_a_kill_during_rescore_leaves_no_temp_file_after_the_next_run(tmp_path):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", methods=["user-mean"])
    run_eval(cfg)
    killed = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, str(tmp_path / "out")], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert (cfg.run_dir / "metrics.json").read_text().startswith("{\n")  # the old file is whole
    assert main(["rescore", str(tmp_path / "out")]) == 0
    leftovers = [p.name for p in cfg.run_dir.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


FULL_DISK = textwrap.dedent("""
    import resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it fail (EFBIG), as on a full disk
    from personalign.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def test_a_failed_write_names_the_file(tmp_path, limit=1000):
    data = rating_data(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["eval", "--data", str(data), "--task", "LaMP_3", "--methods", "user-mean", "--out", str(out),
            "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(limit), *argv], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-1500:]
    (line,) = error_lines(result.stderr)
    assert re.search(re.escape(str(out)) + r"\S*\.(json|jsonl|md|tmp)\b", line), line


FULL_LOG = textwrap.dedent("""
    import resource, sys
    from personalign.engine.predictions import PredictionLog
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
    try:
        with PredictionLog(sys.argv[1]) as log:
            for i in range(100):
                log.append({"id": str(i), "raw": "x" * 100})
    except OSError as exc:
        print(exc.filename)
        sys.exit(3)
""")


def test_a_failed_prediction_log_write_names_the_log(tmp_path):
    log = tmp_path / "predictions" / "rag.jsonl"
    result = subprocess.run([sys.executable, "-c", FULL_LOG, str(log)], capture_output=True, text=True)
    assert result.returncode == 3 and result.stdout.strip() == str(log), result.stdout + result.stderr[-1500:]


def test_when_every_log_is_refused_nothing_claims_success_and_no_empty_table_is_printed(tmp_path, capsys):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", methods=["zero-shot"])
    run_eval(cfg, llm=FakeHashLLM(["3"]))
    (cfg.run_dir / "predictions" / "zero-shot.jsonl").write_text("garbage\n")
    capsys.readouterr()
    code, out, err = cli(capsys, "rescore", str(tmp_path / "out"))
    (line,) = error_lines(err)
    assert code == 2 and "zero-shot.jsonl" in line
    assert "rescored" not in out and out.strip() == ""
    code, out, err = cli(capsys, "report", "--runs", str(tmp_path / "out"), "--task", "LaMP_3")
    (line,) = error_lines(err)
    assert code == 2 and "zero-shot.jsonl" in line
    assert "|" not in out and out.strip() == ""
