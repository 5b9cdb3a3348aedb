"""Zero-shot: the task input alone, no user history."""

from personalign.methods.base import Method
from personalign.types import Answer, Trace


class ZeroShot(Method):
    def plan(self, example, profile):
        trace = Trace()
        raw = yield from self.ask(example.input, trace)
        return Answer(raw, trace, self.output_filter)


PLUGIN = ZeroShot
