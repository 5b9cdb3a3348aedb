"""Population majority: the most common gold label or rating of the train split, for every question."""

from personalign.methods._reference import Reference
from personalign.tasks.parsing import parse_label, rating_values
from personalign.tasks.user_answers import majority, number_text


class PopulationMajority(Reference):
    needs_train = True
    kinds = ("classification", "rating")

    def fit(self, examples, golds):
        if self.task.kind == "rating":
            values = [number_text(v) for v in rating_values(list(golds.values()))]
        else:
            values = [label for label in (parse_label(g, self.task.labels) for g in golds.values())
                      if label in self.task.labels]
        self.answer_text = majority(sorted(values))

    def predict(self, example, profile, trace):
        if not hasattr(self, "answer_text"):
            raise RuntimeError("population-majority must be fitted on the train split first")
        return self.answer_text


PLUGIN = PopulationMajority
