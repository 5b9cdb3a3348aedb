"""One committed scores file, scored: each row's values, 95% intervals and paired tests on the first metric.

Shared by the page's RealLaMP task sections (``results_page``) and its synthetic-users section
(``synthetic_page``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalign.eval.report import MIN_QUESTIONS_FOR_TESTS, is_ceiling
from personalign.eval.scores import RowScores, load_scores, row_stats
from personalign.eval.scoring import SCORE_MODES, official_rouge_of
from personalign.tasks import get_task
from personalign.tasks.spec import TaskSpec
from personalign.tasks.statistics import LOWER_IS_BETTER, PairedTest, bootstrap_interval, paired_test


@dataclass
class TaskScores:
    """One scores file, scored: each row's statistics and values per mode."""

    task: TaskSpec
    scores: dict[str, Any]
    path: Path
    stats: dict[str, dict[str, RowScores]]  # label -> mode -> statistics
    values: dict[str, dict[str, Any]]  # label -> {"n", mode: {metric, metric_ci}}

    @property
    def n(self) -> int:
        return len(self.scores["ids"])

    @property
    def testable(self) -> bool:
        return self.n >= MIN_QUESTIONS_FOR_TESTS

    def own(self, reference: bool) -> list[str]:
        """Own-profile rows: the references, or the LLM rows (a ceiling such as the oracle is neither)."""
        return [label for label, row in self.scores["rows"].items()
                if "#" not in label and row["reference"] == reference and not is_ceiling(label)]

    def ceilings(self) -> list[str]:
        return [label for label in self.scores["rows"] if "#" not in label and is_ceiling(label)]

    def better_first(self, labels: list[str], mode: str = "lenient") -> list[str]:
        metric = self.task.metrics[0]
        sign = 1 if metric in LOWER_IS_BETTER else -1
        return sorted(labels, key=lambda label: sign * self.values[label][mode][metric])

    def strongest_reference(self) -> str | None:
        """The own-profile reference with the best lenient value on the task's first metric."""
        references = self.better_first(self.own(reference=True))
        return references[0] if references else None

    def paired(self, a: str, b: str, mode: str = "lenient") -> PairedTest:
        """``a`` against ``b`` on the first metric, on the questions both rows have."""
        metric = self.task.metrics[0]
        row_a, row_b = self.stats[a][mode], self.stats[b][mode]
        shared = row_a.present & row_b.present
        keep_a, keep_b = shared[row_a.present], shared[row_b.present]
        return paired_test(metric, row_a.stats[metric][keep_a], row_b.stats[metric][keep_b])


def score_file(path: Path) -> TaskScores:
    """Load one scores file and compute every row's values and intervals."""
    scores = load_scores(path)
    task = get_task(scores["task"])
    stats: dict[str, dict[str, RowScores]] = {}
    values: dict[str, dict[str, Any]] = {}
    for label in scores["rows"]:
        stats[label] = {mode: row_stats(task, scores, label, mode) for mode in SCORE_MODES}
        values[label] = {"n": int(stats[label]["lenient"].present.sum())}
        for mode in SCORE_MODES:
            row = stats[label][mode]
            point = {}
            if mode == "official" and task.kind == "generation" and values[label]["n"]:
                point = official_rouge_of({m: [v for v in row.values[m] if v is not None] for m in task.metrics})
            values[label][mode] = {}
            for metric in task.metrics:
                interval = bootstrap_interval(metric, row.stats[metric], seed=0)
                values[label][mode][metric] = point.get(metric, interval.value)
                values[label][mode][f"{metric}_ci"] = [interval.low, interval.high]
    return TaskScores(task, scores, Path(path), stats, values)
