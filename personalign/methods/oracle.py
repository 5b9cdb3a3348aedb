"""Oracle: the true rule of a synthetic user applied to the rule-blind answer (``personalign data synth`` data only).

It reads ``<data>/<task>/rules.json`` and answers by the asking user's rule whatever profile it is shown, so
it is the ceiling of a synthetic task and is not in the ``references`` group (which holds rule-blind methods).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from personalign.data.synth import RULES_FILE, SHAPES, apply_rule, read_rules
from personalign.data.synth_rules import rule_case
from personalign.errors import ConfigError, DataError
from personalign.methods._reference import Reference


class Oracle(Reference):
    ceiling = True

    @classmethod
    def applies_to(cls, task) -> bool:
        """Only the LaMP tasks whose format a synthetic shape takes."""
        return task.name in SHAPES.values() and super().applies_to(task)

    def __init__(self, task, *args, **kwargs):
        if not self.applies_to(task):
            raise ConfigError(f"method oracle applies to the formats of synthetic data ({', '.join(SHAPES.values())}), "
                              f"not to {task.name}")
        super().__init__(task, *args, **kwargs)
        self.rules: dict[str, Any] | None = None
        self.rules_path = ""

    def use_data(self, data_dir: str | Path) -> None:
        self.rules = read_rules(data_dir, self.task.name)
        self.rules_path = str(Path(data_dir) / self.task.name / RULES_FILE)
        if self.rules.get("task") != self.task.name:
            raise DataError(self.rules_path, None, "task", f"is {self.rules.get('task')!r} but expected {self.task.name!r}")

    def identity(self) -> dict[str, Any]:
        """The rules decide the answers: a changed rules file is a new run."""
        if self.rules is None:
            return {}
        text = json.dumps(self.rules, sort_keys=True, ensure_ascii=False)
        return {"rules_sha256": hashlib.sha256(text.encode()).hexdigest()}

    def predict(self, example, profile, trace):
        if self.rules is None:
            raise ConfigError("method oracle needs the rules of synthetic data (personalign data synth); "
                              "it runs in `personalign eval` only")
        case = rule_case(self.rules, example.id, example.user_id, self.rules_path)
        trace.extra["rule"] = case.rule
        return apply_rule(case.rule, case.blind)


PLUGIN = Oracle
