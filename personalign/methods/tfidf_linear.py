"""TF-IDF linear model: a supervised text model of the train users, the practitioner's first trained reference.

Fitted on every (text, answer) pair the train split holds: each question's query text with its gold and
each profile item's input field with its output (a review and its score, a movie description and its
tag). Ratings: ridge regression, rounded to the scale; labels: logistic regression. It reads the query's
text and never the user's history, so it shows how much of a task is text skill rather than the user.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from personalign.config import Settings
from personalign.errors import ConfigError
from personalign.methods._reference import Reference
from personalign.tasks.parsing import parse_label, rating_values
from personalign.tasks.user_answers import number_text


class TfidfLinearOptions(Settings):
    """Fixed, textbook settings (not tuned on any split)."""

    ngram_max: int = Field(2, ge=1)
    min_df: int = Field(1, ge=1)
    max_features: int = Field(200_000, ge=1)
    ridge_alpha: float = Field(1.0, ge=0)   # ratings
    logistic_c: float = Field(1.0, gt=0)    # labels
    max_iter: int = Field(1000, ge=1)
    user_weight: float = 1.0        # tfidf-user, labels: weight of the log of the user's label frequencies
    smoothing: float = Field(0.5, ge=0)     # tfidf-user, labels: added to each label's count in the user's history


class TfidfLinear(Reference):
    needs_train = True
    kinds = ("classification", "rating")

    Options = TfidfLinearOptions

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.settings = self.options

    def pairs(self, examples, golds) -> tuple[list[str], list[str]]:
        """(text, answer) pairs from the train questions and their users' history items, answers checked."""
        texts, answers = [], []
        for example in examples:
            texts.append(self.task.query_text(example.input))
            answers.append(golds.get(example.id, ""))
            for item in example.profile:
                texts.append(str(item.get(self.task.input_field or "", "")))
                answers.append(self.task.item_output(item) or "")
        if self.task.kind == "rating":
            keep = [i for i, a in enumerate(answers) if rating_values([a]) and texts[i].strip()]
        else:
            answers = [parse_label(a, self.task.labels) for a in answers]
            keep = [i for i, a in enumerate(answers) if a in self.task.labels and texts[i].strip()]
        return [texts[i] for i in keep], [answers[i] for i in keep]

    def fit(self, examples, golds):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression, Ridge

        texts, answers = self.pairs(examples, golds)
        if len(set(answers)) < 2:
            raise ConfigError(f"{type(self).__name__} needs train answers of at least two kinds, got {sorted(set(answers))}")
        s = self.settings
        self.vectorizer = TfidfVectorizer(ngram_range=(1, s.ngram_max), min_df=s.min_df, max_features=s.max_features,
                                          sublinear_tf=True)
        features = self.vectorizer.fit_transform(texts)
        if self.task.kind == "rating":
            values = np.array([rating_values([a])[0] for a in answers])
            self.offset = float(values.mean())
            self.model = Ridge(alpha=s.ridge_alpha).fit(features, values - self.offset)
        else:
            self.model = LogisticRegression(C=s.logistic_c, max_iter=s.max_iter).fit(features, answers)

    def text_scores(self, example) -> np.ndarray:
        """Ratings: the text model's predicted offset from the train mean; labels: log-probabilities per class."""
        if not hasattr(self, "model"):
            raise RuntimeError(f"{type(self).__name__} must be fitted on the train split first")
        features = self.vectorizer.transform([self.task.query_text(example.input)])
        if self.task.kind == "rating":
            return self.model.predict(features)
        return self.model.predict_log_proba(features)[0]

    def rating_text(self, value: float) -> str:
        low, high = self.task.rating_range
        return number_text(float(np.clip(np.round(value), low, high)))

    def predict(self, example, profile, trace):
        scores = self.text_scores(example)
        if self.task.kind == "rating":
            return self.rating_text(self.offset + scores[0])
        return str(self.model.classes_[int(np.argmax(scores))])


PLUGIN = TfidfLinear
