"""The training layer shared by the methods: a generic REINFORCE++-baseline RL trainer (``rl``) used by RPO's
reflection model and POPI's summarizer, with its estimator (``advantages``) and checkpoints (``checkpoint``)."""
