"""Benchmarks: scripts that print tables of ratios measured in one run, and the fake servers they time
against (``latency_server``, ``async_base``; tests import those as ``bench.latency_server``)."""
