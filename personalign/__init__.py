"""Personalign: personalize the answers of any black-box LLM for each of its users."""

import os

# llama.cpp and torch share one OpenMP runtime, which reads this once when it loads. Spinning
# waiters (the default) starve other processes on small machines and made llama.cpp up to 80x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
