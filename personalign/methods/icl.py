"""ICL: a fixed number k of the user's most recent history items in the prompt."""

from personalign.methods.base import Method
from personalign.retrievers.ranking import most_recent
from personalign.types import Answer, Trace


class ICL(Method):
    def plan(self, example, profile):
        trace = Trace()
        items = most_recent(profile, self.config.k)
        trace.retrieved_ids.extend(str(item.get("id", "")) for item in items)
        raw = yield from self.ask(self.with_items(example, items), trace)
        return Answer(raw, trace, self.output_filter)


PLUGIN = ICL
