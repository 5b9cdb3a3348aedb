"""Nearest output: the user's answer in the history item the retriever ranks first for the query."""

from personalign.methods._reference import Reference, nearest_output


class NearestOutput(Reference):
    def predict(self, example, profile, trace):
        return nearest_output(self, example, profile, trace)


PLUGIN = NearestOutput
