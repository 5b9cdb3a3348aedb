"""User majority: the label (or rating) this user gave most often in their history."""

from personalign.methods._reference import Reference
from personalign.tasks.user_answers import majority, user_labels


class UserMajority(Reference):
    kinds = ("classification", "rating")

    def predict(self, example, profile, trace):
        return majority(user_labels(self.task, profile))


PLUGIN = UserMajority
