"""The service's Prometheus metrics: one registry per app, and under ``personalign serve --workers N``
prometheus_client's multiprocess mode, so that a scrape of any process counts the requests of all."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from personalign.serve.store import Store

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by ``personalign serve --workers N`` before its processes start


class QueueCollector:
    """Gauges read from the store at scrape time: the derived-data queue and its oldest job's age. The store is
    shared, so any process answers them for all (prometheus_client's multiprocess mode has no callback gauges)."""

    def __init__(self, store: Store):
        self.store = store

    def describe(self) -> list[GaugeMetricFamily]:
        return self.families(None)

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families(self.store.queue())

    @staticmethod
    def families(queue: dict[str, Any] | None) -> list[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("personalign_derived_queue_jobs", "Derived-data jobs waiting or running")
        age = GaugeMetricFamily("personalign_derived_age_seconds",
                                "Age of the oldest waiting derived-data job (0: all built)")
        if queue is not None:
            jobs.add_metric([], queue["queued"] + queue["running"])
            age.add_metric([], queue["oldest_seconds"])
        return [jobs, age]


class Metrics:
    """The service's Prometheus metrics, in the app's own registry. Under ``personalign serve --workers N``
    (``MULTIPROC_ENV`` names the parent's fresh private folder) counters and histograms are also written there
    per process, and a scrape of any process sums every process's files (prometheus_client's multiprocess mode).
    Label values are route templates, statuses and fixed words: never a user id or stored text."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
        self.scrape_registry = self.registry
        if multiprocess_dir:  # the scrape sums the files of every process, live or exited
            self.scrape_registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.scrape_registry, path=multiprocess_dir)
        self.latency = Histogram("personalign_request_seconds", "Request latency by route and HTTP status",
                                 ["route", "status"], registry=self.registry)
        self.stage_requests = Counter("personalign_stage_requests_total", "LLM stages run, by stage", ["stage"],
                                      registry=self.registry)
        self.stage_seconds = Histogram("personalign_stage_seconds", "Seconds per stage of a completion: store_read, "
                                       "personalize (retrieval and LLM calls), store_write", ["stage"],
                                       registry=self.registry)
        self.fallbacks = Counter("personalign_fallbacks_total", "Base answers returned because personalization "
                                 "failed, by reason", ["reason"], registry=self.registry)
        self.upstream_errors = Counter("personalign_upstream_errors_total", "Base-model errors and timeouts",
                                       registry=self.registry)
        self.items = Counter("personalign_history_items_total", "History items added or deleted", ["op"],
                             registry=self.registry)
        self.user_deletes = Counter("personalign_user_deletes_total", "Users deleted (DELETE /v1/users/{user})",
                                    registry=self.registry)
        self.derived_lookups = Counter(
            "personalign_derived_lookups_total", "Derived data a request found built (hit) or not yet (miss): "
            "per item for embed, per request for summary", ["kind", "result"], registry=self.registry)

    def track_queue(self, store: Store) -> None:
        """The derived-data queue's gauges, read from the store at scrape time."""
        self.scrape_registry.register(QueueCollector(store))

    def scrape(self) -> bytes:
        """The text exposition of every metric (of every process, in multiprocess mode)."""
        return generate_latest(self.scrape_registry)

    def process_exited(self) -> None:
        """Multiprocess mode: drop this process's live-gauge files (its counters and histograms stay counted)."""
        if self.multiprocess_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)
