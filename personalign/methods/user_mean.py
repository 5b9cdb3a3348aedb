"""User mean: the mean of this user's past ratings."""

from personalign.methods._reference import Reference
from personalign.tasks.user_answers import user_rating_stat


class UserMean(Reference):
    kinds = ("rating",)

    def predict(self, example, profile, trace):
        return user_rating_stat(profile, self.task, "mean")


PLUGIN = UserMean
