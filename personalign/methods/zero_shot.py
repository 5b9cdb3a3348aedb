"""Zero-shot: the task input alone, no user history."""

from personalign.methods.base import Method
from personalign.types import Answer, Trace


class ZeroShot(Method):
    def answer(self, example, profile):
        trace = Trace()
        raw = self.ask(example.input, trace)
        return Answer(self.parse(raw), trace)


PLUGIN = ZeroShot
