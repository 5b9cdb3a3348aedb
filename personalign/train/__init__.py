"""The training layer shared by the methods: the SFT stage (``sft``) that fine-tunes RPO's reflection model and
POPI's generator, a generic REINFORCE++-baseline RL trainer (``rl``) used by RPO's reflection model and POPI's
summarizer, with its estimator (``advantages``) and checkpoints (``checkpoint``), plus model I/O and export."""
