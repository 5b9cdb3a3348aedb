"""Personalign: personalize the answers of any black-box LLM for each of its users."""

__version__ = "0.1.0"
