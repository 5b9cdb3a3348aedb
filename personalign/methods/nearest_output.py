"""Nearest output: the user's answer in the history item the retriever ranks first for the query."""

from personalign.methods._reference import Reference


class NearestOutput(Reference):
    def predict(self, example, profile, trace):
        items = self.retrieve(example, profile, trace, k=1) if profile else []
        return self.task.item_output(items[0]) or "" if items else ""


PLUGIN = NearestOutput
