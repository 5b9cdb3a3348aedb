"""Echo: copy the input's content (the text after the task's instruction) as the answer."""

from personalign.methods._reference import Reference


class Echo(Reference):
    kinds = ("generation",)

    def predict(self, example, profile, trace):
        return self.task.query_text(example.input)


PLUGIN = Echo
