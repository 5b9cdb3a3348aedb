"""What a new user meets: the cache in the user's cache folder, defaults in --help, references named as such,
and the HYDRA scorer's path printed by eval. Orchestration only (FAKE LLM and encoder where a model would run)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import platformdirs
from test_hydra import TAGS, FakeTagEncoder, FakeTagLLM, user

import personalign.retrievers.dense as dense
from personalign.cli import build_parser, main
from personalign.data.lamp_io import write_outputs, write_questions
from personalign.eval.runner import EvalConfig, run_eval
from personalign.methods import REFERENCES, build_method
from personalign.retrievers import get_retriever
from personalign.store import CACHE_DIR_ENV, default_cache_dir
from personalign.tasks import get_task
from personalign.types import Example


def test_the_cache_defaults_to_the_users_cache_folder_and_the_variable_overrides_it(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_DIR_ENV)
    assert default_cache_dir() == platformdirs.user_cache_dir("personalign")  # not .cache/ in the current folder
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == str(tmp_path / "mine")
    assert EvalConfig(data="d", task="LaMP_3", methods=["rag"]).cache_dir == str(tmp_path / "mine")
    args = build_parser().parse_args(["personalize", "--history", "h.json", "q"])
    assert args.cache_dir == str(tmp_path / "mine")
    assert build_parser().parse_args(["eval", "--data", "d", "--task", "LaMP_3", "--cache-dir", "x"]).cache_dir == "x"


def test_the_test_session_never_uses_the_real_user_cache():
    real = Path(platformdirs.user_cache_dir("personalign")).resolve()
    ours = Path(os.environ[CACHE_DIR_ENV]).resolve()
    assert ours != real and real not in ours.parents


def subcommand_help(*names: str) -> str:
    parser = build_parser()
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return " ".join(parser.format_help().split())


def test_help_shows_defaults_and_every_option_has_help():
    text = subcommand_help("eval")
    assert "--split {user,time} user (LaMP's user-based split" in text and "(default: user)" in text
    assert "(default: runs)" in text and f"(default: {default_cache_dir()})" in text
    text = subcommand_help("personalize")
    assert "--method METHOD the method that answers" in text and "(default: rag)" in text
    assert "(default: None)" not in text and "(default: False)" not in text  # no empty defaults
    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif action.dest != "help" and not action.help:
                missing.append(f"{name} {action.option_strings or action.dest}")

    walk(build_parser(), "personalign")
    assert missing == []


def test_list_names_the_references_apart_from_the_llm_methods(capsys):
    assert main(["list"]) == 0
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in capsys.readouterr().out.splitlines()}
    references = {name.strip() for name in lines["references"].split("(")[0].split(",")}
    methods = {name.strip() for name in lines["methods"].split("(")[0].split(",")}
    assert references == set(REFERENCES) and "no LLM" in lines["references"]
    assert {"rag", "hydra", "rpo"} <= methods and not methods & references


def tag_split(root: Path) -> Path:
    task = get_task("LaMP_2")
    folder = root / "LaMP_2" / "user"
    folder.mkdir(parents=True)
    for part, count in (("train", 24), ("dev", 4)):
        questions = [Example(f"{part}{i}", task.format_input(f"a film about space {i}"), user(i, TAGS[i % 4], 8),
                             user_id=f"{part}-u{i}") for i in range(count)]
        write_questions(folder / f"{part}_questions.json", questions)
        write_outputs(folder / f"{part}_outputs.json", "LaMP_2", [(q.id, TAGS[i % 4]) for i, q in enumerate(questions)])
    return root


def test_eval_prints_where_the_trained_hydra_scorer_went_and_personalize_takes_that_path(tmp_path, capsys,
                                                                                       monkeypatch):
    monkeypatch.setattr(dense, "DenseRetriever", lambda *args, **kwargs: FakeTagEncoder())
    config = EvalConfig(data=str(tag_split(tmp_path / "data")), task="LaMP_2", methods=["hydra"],
                        out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"),
                        method_options={"hydra": {"samples": 2, "epochs": 3}})
    run_eval(config, llm=FakeTagLLM())
    err = capsys.readouterr().err
    assert "training the reranker and the adapter on 24 train questions" in err
    saved = [line for line in err.splitlines() if "saved to" in line]
    assert len(saved) == 1, err
    path = saved[0].split("--method-options scorer=")[1].strip()
    assert Path(path).is_file() and Path(path).parent == tmp_path / "cache" / "hydra"
    method = build_method("hydra", get_task("LaMP_2"), llm=FakeTagLLM(), retriever=get_retriever("bm25"),
                          scorer=path, samples=2)
    assert method.scorer_path == Path(path) and method.reranker is not None and method.adapter is not None


EXAMPLES = Path(__file__).resolve().parents[1] / "personalign" / "data" / "examples"


def test_a_tiny_split_prints_values_without_intervals_or_verdicts_and_one_skip_line(tmp_path, capsys):
    assert main(["eval", "--data", str(EXAMPLES), "--task", "LaMP_2,LaMP_3,LaMP_7", "--methods", "references",
                 "--profile-control", "own,other-user", "--out", str(tmp_path / "runs"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    captured = capsys.readouterr()
    assert "too few for intervals or significance tests" in captured.out
    table = captured.out.split("too few")[1]
    assert "| user-mean | " in table and "| user-mean#other-user | " in table
    assert "[" not in table and "verdict" not in captured.out and "permutation" not in captured.out
    skipped = [line for line in captured.err.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "LaMP_2, LaMP_3" in skipped[0] and "population-majority" in skipped[0]
    assert (tmp_path / "runs" / "LaMP_3" / "user-dev" / "results.md").is_file()  # the full tables are still written


def test_brief_shows_the_history_items_the_answer_came_from(capsys):
    history = EXAMPLES / "histories" / "harsh_hank.json"
    assert main(["personalize", "--history", str(history), "--method", "nearest-output", "--brief",
                 "The tuner is accurate and easy to read, but the clip already cracked."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == 'retrieved: 3 is the score for "The tuner works, display is dim and the clip feels cheap."'
    assert lines[-1] == "answer:    3"
