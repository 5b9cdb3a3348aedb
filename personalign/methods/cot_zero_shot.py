"""Chain-of-thought zero-shot: think briefly, then answer after 'Answer:'."""

from personalign.methods.zero_shot import ZeroShot


class CoTZeroShot(ZeroShot):
    cot = True


PLUGIN = CoTZeroShot
