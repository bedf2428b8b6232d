"""Metrics of the endpoint, per variant.

Two views of the same events: Prometheus series (prometheus-client, own registry) for a
monitoring system to scrape, and :class:`VariantWindow` -- counts since start-up and the
latencies of the most recent requests -- for the A/B page, which wants percentiles now, not
histogram buckets to be turned into them.
"""

from __future__ import annotations

import glob
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

NO_VARIANT = "none"  # requests refused before a variant was chosen
LATENCY_WINDOW = 2000  # recent requests per variant behind the p50 / p95
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Upper bounds of the request latency histogram (what a rollout's latency check reads)."""


@dataclass
class VariantWindow:
    """One variant's counts since start-up, and its recent latencies."""

    requests: int = 0
    errors: int = 0
    reviews: int = 0
    positive: int = 0
    unusual: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def snapshot(self) -> dict:
        # Only answered requests count towards latency: a refused one says nothing of the model.
        seconds = np.fromiter(self.latencies, dtype=np.float64)
        p50, p95 = np.percentile(seconds, [50, 95]) * 1000 if len(seconds) else (None, None)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "reviews": self.reviews,
            "positive_share": self.positive / self.reviews if self.reviews else None,
            "unusual_share": self.unusual / self.reviews if self.reviews else None,
            "latency_ms": {
                "p50": None if p50 is None else round(float(p50), 2),
                "p95": None if p95 is None else round(float(p95), 2),
                "window": len(seconds),
            },
        }


class EndpointMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiprocess: bool = False) -> None:
        """``multiprocess``: one of several worker processes (prometheus-client's multiprocess
        mode, PROMETHEUS_MULTIPROC_DIR set before it was imported); /metrics and the A/B view
        then count across every worker."""
        self.multiprocess = multiprocess
        # A registry per app, not the global one: several endpoints (tests) in one process.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "critic_requests",
            "Invocation requests by variant and HTTP status.",
            ["variant", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "critic_request_errors",
            "Invocation requests answered with an error, by kind.",
            ["variant", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "critic_request_latency_seconds",
            "Time to answer an invocation request.",
            ["variant"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS_S,
        )
        self.predictions = Counter(
            "critic_predictions",
            "Reviews answered, by variant and label.",
            ["variant", "label"],
            registry=self.registry,
        )
        self.unusual = Counter(
            "critic_unusual_reviews",
            "Reviews answered whose domain score calls them unlike the reviews the variant's "
            "model learned from (typical: false).",
            ["variant"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "critic_batch_reviews",
            "Reviews per forward pass (micro-batching).",
            ["variant"],
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.expected = Counter(
            "critic_expected_requests",
            "Sum of the probabilities with which each variant could have been drawn, over the "
            "requests routed: what critic_requests_total should match (the sample-ratio check).",
            ["variant"],
            registry=self.registry,
        )
        self.weight = Gauge(
            "critic_variant_weight",
            "Current traffic weight of each variant.",
            ["variant"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self._windows: dict[str, VariantWindow] = {}
        # prometheus-client's labels() look-up costs microseconds a call: on the request path
        # each series is looked up once and kept.
        self._request_series: dict[tuple[str, int], tuple] = {}
        self._label_series: dict[tuple[str, str], object] = {}
        self._expected_series: dict[str, object] = {}
        self._unusual_series: dict[str, object] = {}
        self._lock = threading.Lock()
        self._collectors: list = []

    def add_collector(self, collector) -> None:
        """A collector whose figures are read when scraped rather than counted in this
        process (the supervisor's worker restarts): exported beside the counters, once,
        however many workers there are."""
        self._collectors.append(collector)
        self.registry.register(collector)

    def observe(
        self, variant: str, status: int, seconds: float, predictions: list[dict] | None = None
    ) -> None:
        series = self._request_series.get((variant, status))
        if series is None:
            series = (
                self.requests.labels(variant, str(status)),
                self.errors.labels(variant, str(status)) if status >= 400 else None,
                self.latency.labels(variant),
            )
            self._request_series[(variant, status)] = series
        requests, errors, latency = series
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(seconds)
        positive = sum(prediction["label"] == "positive" for prediction in predictions or ())
        # One increment per label, not per review: a 1,000-review request stays cheap. A
        # label's series appears with its first answer, as it always has.
        if positive:
            self._labelled(variant, "positive").inc(positive)
        if predictions and len(predictions) > positive:
            self._labelled(variant, "negative").inc(len(predictions) - positive)
        unusual = sum(
            prediction.get("domain") is not None and not prediction["domain"]["typical"]
            for prediction in predictions or ()
        )
        if unusual:
            series = self._unusual_series.get(variant)
            if series is None:
                series = self._unusual_series[variant] = self.unusual.labels(variant)
            series.inc(unusual)
        with self._lock:
            window = self._windows.setdefault(variant, VariantWindow())
            window.requests += 1
            if status >= 400:
                window.errors += 1
            else:
                window.latencies.append(seconds)
                window.reviews += len(predictions or ())
                window.positive += positive
                window.unusual += unusual

    def routed(self, shares: dict[str, float]) -> None:
        """One request routed while the variants had these shares (see ``expected``)."""
        for variant, share in shares.items():
            if share:
                series = self._expected_series.get(variant)
                if series is None:
                    series = self._expected_series[variant] = self.expected.labels(variant)
                series.inc(share)

    def _labelled(self, variant: str, label: str):
        series = self._label_series.get((variant, label))
        if series is None:
            series = self._label_series[(variant, label)] = self.predictions.labels(variant, label)
        return series

    def snapshot(self, variant: str) -> dict:
        """Counts and latency percentiles of one variant (zeros before its first request)."""
        if self.multiprocess:
            return _snapshot_from_samples(self._collected(), variant)
        with self._lock:
            window = self._windows.get(variant) or VariantWindow()
            return window.snapshot()

    def _collected(self) -> CollectorRegistry:
        if not self.multiprocess:
            return self.registry
        registry = CollectorRegistry()
        StartedWorkersCollector(registry)
        for collector in self._collectors:
            registry.register(collector)
        return registry

    def render(self) -> bytes:
        return generate_latest(self._collected())


class StartedWorkersCollector(multiprocess.MultiProcessCollector):
    """prometheus-client's multiprocess collector, without the file of a worker that is still
    creating it. A worker's first count creates its file empty and then sizes it; a scrape
    in between read 0 bytes and failed (a 500 from /metrics while the supervisor replaced a
    dead worker, seen in the suite). Such a worker has counted nothing yet: its file is left
    out until it has its header. A file only grows, so one that has it stays readable."""

    def collect(self):
        # The base class's collect() with the one filter; _path is the folder it resolved.
        files = [f for f in glob.glob(os.path.join(self._path, "*.db")) if _has_header(f)]
        return self.merge(files, accumulate=True)


# The used-bytes count and padding at the start of every multiprocess file (prometheus-client's
# mmap_dict: 4 bytes of count, 4 of padding).
MMAP_HEADER_BYTES = 8


def _has_header(path: str) -> bool:
    try:
        return os.path.getsize(path) >= MMAP_HEADER_BYTES
    except FileNotFoundError:  # a live gauge's file, removed since the glob
        return False


class WorkersCollector:
    """The endpoint's worker processes as Prometheus series, read from ``describe`` (see
    critic.serving.workers.describe_workers) at each scrape. A Counter of the supervisor's
    own would not do: the supervisor is not a worker and writes no multiprocess files."""

    def __init__(self, describe: Callable[[], dict]):
        self._describe = describe

    def collect(self):
        workers = self._describe()
        restarts = CounterMetricFamily(
            "critic_worker_restarts",
            "Worker processes that died and were started again since the endpoint started.",
        )
        restarts.add_metric([], workers["restarts"])
        started = GaugeMetricFamily(
            "critic_worker_start_time_seconds",
            "When each serving worker process started (Unix time).",
            labels=["pid"],
        )
        for process in workers["processes"]:
            started.add_metric([str(process["pid"])], process["started_at"])
        looping = GaugeMetricFamily(
            "critic_worker_crash_loop",
            "1 while workers keep dying (several deaths within a minute), else 0.",
        )
        looping.add_metric([], 1.0 if workers["crash_loop"] else 0.0)
        return [restarts, started, looping]


def _snapshot_from_samples(registry: CollectorRegistry, variant: str) -> dict:
    """The A/B view's figures from every worker's counters: the same fields as
    :meth:`VariantWindow.snapshot`, latency percentiles read off the histogram's buckets
    (since start-up, not the last requests) -- what can be summed across processes."""
    requests = errors = reviews = positive = unusual = 0.0
    buckets: list[tuple[float, float]] = []
    for family in registry.collect():
        for sample in family.samples:
            if sample.labels.get("variant") != variant:
                continue
            if sample.name == "critic_requests_total":
                requests += sample.value
                errors += sample.value if int(sample.labels["status"]) >= 400 else 0
            elif sample.name == "critic_predictions_total":
                reviews += sample.value
                positive += sample.value if sample.labels["label"] == "positive" else 0
            elif sample.name == "critic_unusual_reviews_total":
                unusual += sample.value
            elif sample.name == "critic_request_latency_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    answered = buckets[-1][1] if buckets else 0.0
    p50, p95 = (_bucket_quantile(buckets, q) if answered else None for q in (0.5, 0.95))
    return {
        "requests": int(requests),
        "errors": int(errors),
        "reviews": int(reviews),
        "positive_share": positive / reviews if reviews else None,
        "unusual_share": unusual / reviews if reviews else None,
        "latency_ms": {
            "p50": None if p50 is None else round(p50 * 1000, 2),
            "p95": None if p95 is None else round(p95 * 1000, 2),
            "window": int(answered),
        },
    }


def _bucket_quantile(buckets: list[tuple[float, float]], quantile: float) -> float:
    """Prometheus's histogram_quantile: linear within the bucket the rank falls in."""
    rank = quantile * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound
