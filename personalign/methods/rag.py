"""RAG: the top-k retrieved history items (k=4 by default) in the prompt."""

from personalign.methods.base import Method
from personalign.types import Answer, Trace


class RAG(Method):
    def plan(self, example, profile):
        trace = Trace()
        items = self.retrieve(example, profile, trace)
        raw = yield from self.ask(self.with_items(example, items), trace)
        return Answer(raw, trace, self.output_filter)


PLUGIN = RAG
