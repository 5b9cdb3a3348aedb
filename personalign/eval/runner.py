"""``personalign eval``: run methods over a LaMP split through the request engine, resumably.

Each method's rows (raw completions and traces, never parsed outputs) go to a prediction log tied
to a run key; scoring happens afterwards from the logs (``personalign.eval.rescore``).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from personalign import registry
from personalign.backends import get_llm
from personalign.backends.base import LLM
from personalign.data.lamp_io import files_sha256, find_split_files, load_split, training_part
from personalign.engine import Engine
from personalign.engine.progress import RequestProgress
from personalign.errors import ConfigError, DataError
from personalign.engine.predictions import PredictionLog
from personalign.eval.rescore import score_run
from personalign.eval.settings import EvalConfig
from personalign.manifest import write_manifest
from personalign.methods import base_name, build_method, expand_methods
from personalign.retrievers import get_retriever
from personalign.tasks import get_task
from personalign.types import Example, ProfileItem

def sample_examples(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """A seeded sample of ``limit`` examples, kept in file order."""
    if limit is None or limit >= len(examples):
        return examples
    chosen = set(random.Random(seed).sample(range(len(examples)), limit))
    return [ex for i, ex in enumerate(examples) if i in chosen]


def control_profile(example: Example, pool: Sequence[Example], control: str, seed: int) -> list[ProfileItem]:
    """The profile a method sees: the user's own, another user's (seeded per example), or none."""
    if control == "own":
        return list(example.profile)
    if control == "none":
        return []
    others = [e for e in pool if (e.user_id or e.id) != (example.user_id or example.id) and e.profile]
    if not others:
        raise ConfigError("--profile-control other-user needs at least two users with histories in the split")
    return list(random.Random(f"{seed}:{example.id}").choice(others).profile)


def row_label(method: str, control: str) -> str:
    """The row name of a method under a profile control (``rag#other-user``)."""
    return method if control == "own" else f"{method}#{control}"


def _needs_llm(name: str) -> bool:
    return registry.load("methods", base_name(name)).needs_llm


def _train_split(config: EvalConfig):
    task = get_task(config.task)
    part = training_part(config.part)  # scoring val: learn from the other train users only
    examples, golds = load_split(config.data, task, config.split, part)
    if golds is None:
        raise ConfigError(f"{config.task} {config.split}/train has no outputs file; population references need it")
    paths = [p for p in find_split_files(config.data, task.name, config.split, part) if p]
    return examples, golds, files_sha256(paths)


class EvalRunner:
    """Runs one task's methods for an ``EvalConfig``: loads data once, then one log per method and control."""

    def __init__(self, config: EvalConfig, llm: LLM | None = None):
        self.config = config
        self.task = get_task(config.task)
        examples, self.golds = load_split(config.data, self.task, config.split, config.part)
        paths = [p for p in find_split_files(config.data, self.task.name, config.split, config.part) if p]
        if not examples:
            raise ConfigError(f"{paths[0]}: has no questions")
        self.pool = examples
        self.examples = sample_examples(examples, config.limit, config.seed)
        self.data_sha256 = files_sha256(paths)
        self.llm = llm
        self._train: tuple | None = None

    def backend(self) -> LLM:
        if self.llm is None:
            c = self.config
            self.llm = get_llm(c.llm, cache_path=Path(c.cache_dir) / "llm.sqlite", workers=c.workers,
                               concurrency=c.concurrency, **c.llm_options)
        return self.llm

    def build(self, name: str):
        c = self.config
        cache = Path(c.cache_dir)
        llm = self.backend() if _needs_llm(name) else None
        method = build_method(name, self.task, llm=llm, retriever=get_retriever(c.retriever, seed=c.seed, cache_dir=cache),
                              config=c.method_config, cache_dir=cache, **c.method_options.get(name, {}))
        method.use_data(c.data)
        train_sha = None
        if method.needs_train:
            self._train = self._train or _train_split(c)
            method.fit(self._train[0], self._train[1])
            train_sha = self._train[2]
        return method, train_sha

    def run_key(self, name: str, control: str, method, train_sha: str | None) -> dict[str, Any]:
        c = self.config
        return {"task": self.task.name, "split": c.split, "part": c.part, "data_sha256": self.data_sha256,
                "train_sha256": train_sha, "limit": c.limit, "seed": c.seed, "method": name,
                "method_config": method.config.model_dump(),  # as the method runs it (rpo: as its model was trained)
                "method_options": c.method_options.get(name, {}),
                "retriever": c.retriever, "models": method.identity(), "profile_control": control}

    def run_method(self, name: str, control: str) -> str:
        """Run (or resume) one method under one profile control; return its row label."""
        label = row_label(name, control)
        method, train_sha = self.build(name)
        log_path = self.config.run_dir / "predictions" / f"{label}.jsonl"
        with PredictionLog(log_path, key=self.run_key(name, control, method, train_sha)) as log:
            retry = _needs_llm(name)  # an empty completion (a failed server) is asked again; a reference's is final
            todo = [ex for ex in self.examples if ex.id not in log or (retry and log.empty(ex.id))]
            again = sum(ex.id in log for ex in todo)
            if again:
                print(f"personalign: {self.task.name} {label}: asking again for {again} empty completions "
                      "of an earlier run", file=sys.stderr)
            engine = Engine(method.backends())
            plans = (method.plan(ex, control_profile(ex, self.pool, control, self.config.seed)) for ex in todo)
            progress = RequestProgress(len(self.examples), f"{self.task.name} {label}",
                                       done_before=len(self.examples) - len(todo), requests=bool(method.backends()))
            with progress:
                for index, answer, seconds in engine.run(plans, progress):
                    example = todo[index]
                    log.append({"id": example.id, "gold": self.golds.get(example.id) if self.golds else None,
                                "raw": answer.raw, "filter": answer.output_filter, "seconds": round(seconds, 5),
                                "trace": answer.trace.to_dict()})
            empty = sum(log.empty(ex.id) for ex in self.examples) if retry else 0
        if empty:
            print(f"personalign: {self.task.name} {label}: {empty} of {len(self.examples)} completions are empty "
                  "(a failed or overloaded server?); run the same command again to ask for them again",
                  file=sys.stderr)
        return label


def run_eval(config: EvalConfig, llm: LLM | None = None,
             on_skip: Callable[[str, list[str], str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Evaluate every method of ``config``; write predictions, metrics.json, results.md and a manifest.

    References of the ``references`` group that need a train split the data lacks are skipped: ``on_skip(task,
    names, reason)`` hears of them (by default one line on stderr; ``personalign eval`` prints one for all tasks).
    """
    runner = EvalRunner(config, llm)
    try:
        return _run(config, runner, on_skip or print_skipped)
    finally:
        if llm is None and runner.llm is not None:  # built here: stop its workers and connections
            runner.llm.close()


def print_skipped(task: str, names: list[str], reason: str) -> None:
    print(f"personalign: {task}: skipped {', '.join(names)}: they learn from the train split ({reason})", file=sys.stderr)


def _run(config: EvalConfig, runner: EvalRunner,
         on_skip: Callable[[str, list[str], str], None]) -> dict[str, dict[str, Any]]:
    manifest = config.run_dir / "manifest.json"
    write_manifest(manifest, config, runner.data_sha256, {"examples": len(runner.examples), "status": "running",
                                                          "data_dir": str(Path(config.data).resolve())})
    methods = expand_methods(config.methods, runner.task)
    labels: list[str] = []
    skipped: dict[str, DataError] = {}  # references of the group that need a train split the data lacks
    for control in config.profile_controls:
        for name in methods:
            if name in skipped:
                continue
            try:
                labels.append(runner.run_method(name, control))
            except DataError as exc:
                if name in config.methods or "train" not in exc.problem:
                    raise
                skipped[name] = exc
    if skipped:
        reason = next(iter(skipped.values()))
        on_skip(config.task, list(skipped), f"{reason.problem.split('; tried')[0]} in {reason.path}")
    results = score_run(config.run_dir, runner.task, only=labels, data=config.data) if runner.golds else {}
    describe = runner.llm.describe() if runner.llm else None
    write_manifest(manifest, config, runner.data_sha256, {"examples": len(runner.examples), "status": "done",
                                                          "data_dir": str(Path(config.data).resolve()),
                                                          "llm": describe, "methods": labels})
    return results
