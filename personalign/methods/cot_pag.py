"""Chain-of-thought PAG: profile summary and retrieved items, think briefly, then answer after 'Answer:'."""

from personalign.methods.pag import PAG


class CoTPAG(PAG):
    cot = True


PLUGIN = CoTPAG
