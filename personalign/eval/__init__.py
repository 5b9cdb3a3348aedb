"""Evaluation: run methods over a LaMP split, resumably, and score them with the official metrics."""
