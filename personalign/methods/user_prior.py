"""User prior: the user's majority label, mean rating, or nearest history output, by task kind."""

from personalign.methods._reference import Reference, nearest_output
from personalign.tasks.user_answers import majority, user_labels, user_rating_stat


class UserPrior(Reference):
    def predict(self, example, profile, trace):
        trace.extra["prior"] = self.task.kind
        if self.task.kind == "classification":
            return majority(user_labels(self.task, profile))
        if self.task.kind == "rating":
            return user_rating_stat(profile, self.task, "mean")
        return nearest_output(self, example, profile, trace)


PLUGIN = UserPrior
