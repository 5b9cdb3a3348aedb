"""ICL: a fixed number k of the user's most recent history items in the prompt."""

from personalign.methods.base import Method
from personalign.retrievers.ranking import recency_order
from personalign.types import Answer, Trace


def most_recent(profile, k):
    """The ``k`` newest items, newest first (by ``date`` when present, else by profile position)."""
    return [profile[i] for i in recency_order(profile)[:k]]


class ICL(Method):
    def plan(self, example, profile):
        trace = Trace()
        items = most_recent(profile, self.config.k)
        trace.retrieved_ids.extend(str(item.get("id", "")) for item in items)
        raw = yield from self.ask(self.with_items(example, items), trace)
        return Answer(raw, trace, self.output_filter)


PLUGIN = ICL
