"""TF-IDF linear model plus the user: the text model of ``tfidf-linear`` combined with this user's history.

Labels: the text model's log-probabilities plus ``user_weight`` times the log of the user's label
frequencies (add-``smoothing``), so a text that fits several tags goes to the one this user uses.
Ratings: this user's mean past rating plus the text model's offset from the train mean (the user's
leniency and the review's sentiment). Without a history it answers as ``tfidf-linear``.
"""

from __future__ import annotations

import statistics

import numpy as np

from personalign.methods.tfidf_linear import TfidfLinear
from personalign.tasks.parsing import rating_values
from personalign.tasks.user_answers import user_labels


class TfidfUser(TfidfLinear):
    def predict(self, example, profile, trace):
        scores = self.text_scores(example)
        if self.task.kind == "rating":
            past = rating_values([self.task.item_output(item) or "" for item in profile])
            base = statistics.fmean(past) if past else self.offset
            return self.rating_text(base + scores[0])
        labels, s = user_labels(self.task, profile), self.settings
        counts = np.array([labels.count(label) for label in self.model.classes_], float)
        prior = (counts + s.smoothing) / (counts.sum() + s.smoothing * len(counts))
        return str(self.model.classes_[int(np.argmax(scores + s.user_weight * np.log(prior)))])


PLUGIN = TfidfUser
