"""Lead: the first ``lead_words`` words of the input's content (``MethodConfig.lead_words``)."""

from personalign.methods._reference import Reference


class Lead(Reference):
    kinds = ("generation",)

    def predict(self, example, profile, trace):
        return " ".join(self.task.query_text(example.input).split()[: self.config.lead_words])


PLUGIN = Lead
