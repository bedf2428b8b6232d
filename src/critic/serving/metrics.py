"""Prometheus metrics of the endpoint, per variant (prometheus-client, own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

NO_VARIANT = "none"  # requests refused before a variant was chosen


class EndpointMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # A registry per app, not the global one: several endpoints (tests) in one process.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "critic_requests", "Invocation requests by variant and HTTP status.",
            ["variant", "status"], registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "critic_request_errors", "Invocation requests answered with an error, by kind.",
            ["variant", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "critic_request_latency_seconds", "Time to answer an invocation request.",
            ["variant"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        self.predictions = Counter(
            "critic_predictions", "Reviews answered, by variant and label.",
            ["variant", "label"], registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "critic_batch_reviews", "Reviews per forward pass (micro-batching).",
            ["variant"], registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )  # fmt: skip
        self.weight = Gauge(
            "critic_variant_weight", "Current traffic weight of each variant.",
            ["variant"], registry=self.registry,
        )  # fmt: skip

    def observe(
        self, variant: str, status: int, seconds: float, predictions: list[dict] | None = None
    ) -> None:
        self.requests.labels(variant, str(status)).inc()
        if status >= 400:
            self.errors.labels(variant, str(status)).inc()
        self.latency.labels(variant).observe(seconds)
        for prediction in predictions or ():
            self.predictions.labels(variant, prediction["label"]).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
