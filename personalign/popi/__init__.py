"""POPI: preference summaries (prompts, budget, reward) and the summarizer's RL training; the method is personalign/methods/popi.py."""
