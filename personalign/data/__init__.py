"""Data: read and write official LaMP files, build LaMP-format benchmarks, download LaMP."""
