"""Online counts that outlive the process: an A/B test survives a redeploy.

Per variant -- requests, errors, reviews answered, positive answers, the latency histogram's
buckets and sum -- kept in the feedback's SQLite file, one row per (run, variant, counter).
A run is one start of the endpoint (all the worker processes of one ``critic serve``). Each
process adds what it counted since its last flush, every second from a thread of its own and
once more when it stops: the request path never writes to SQLite, and SQLite's upsert does the
sum across workers. The A/B view adds the runs before this one (from the file) to this run's
live figures (from the metrics), so nothing is counted twice and nothing waits for a flush.
A process killed without warning loses at most its last second.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from prometheus_client import CollectorRegistry

from critic.serving.ab.feedback import FeedbackError, connect
from critic.serving.metrics import EndpointMetrics, _bucket_quantile

FLUSH_SECONDS = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_counts (
    run      TEXT NOT NULL,   -- one start of the endpoint
    variant  TEXT NOT NULL,
    counter  TEXT NOT NULL,   -- requests, errors, server_errors (5xx but 503), unavailable
                              -- (503), positive, negative, latency_sum, le=<seconds>,
                              -- expected (the requests its routing probabilities imply)
    value    REAL NOT NULL,
    PRIMARY KEY (run, variant, counter)
);
"""

Totals = dict[str, dict[str, float]]
"""variant -> counter -> value."""


def totals(registry: CollectorRegistry) -> Totals:
    """The counters of a metrics registry (critic.serving.metrics), per variant."""
    found: Totals = {}
    for family in registry.collect():
        for sample in family.samples:
            variant = sample.labels.get("variant")
            if variant is None:
                continue
            counter = _counter(sample.name, sample.labels)
            if counter is None:
                continue
            counts = found.setdefault(variant, {})
            counts[counter] = counts.get(counter, 0.0) + sample.value
            if counter == "requests":
                status = int(sample.labels["status"])
                for kind in _kinds(status):
                    counts[kind] = counts.get(kind, 0.0) + sample.value
    return found


def _kinds(status: int) -> tuple[str, ...]:
    """The error counters a request's status adds to: every error; the server's own (5xx but
    503, 504 included), and 503 (a full queue), which a rollout's guardrails tell apart."""
    if status < 400:
        return ()
    if status == 503:
        return ("errors", "unavailable")
    return ("errors", "server_errors") if status >= 500 else ("errors",)


def _counter(name: str, labels: dict[str, str]) -> str | None:
    if name == "critic_requests_total":
        return "requests"
    if name == "critic_predictions_total":
        return "positive" if labels["label"] == "positive" else "negative"
    if name == "critic_request_latency_seconds_bucket":
        return f"le={labels['le']}"
    if name == "critic_request_latency_seconds_sum":
        return "latency_sum"
    if name == "critic_expected_requests_total":
        return "expected"
    return None


def live_totals(metrics: EndpointMetrics) -> Totals:
    """This run's counts so far: every worker's, with several (prometheus-client's files)."""
    return totals(metrics._collected())


def added(*parts: Totals) -> Totals:
    """The sum of several totals, counter by counter."""
    result: Totals = {}
    for part in parts:
        for variant, counts in part.items():
            into = result.setdefault(variant, {})
            for counter, value in counts.items():
                into[counter] = into.get(counter, 0.0) + value
    return result


def latency_buckets(counts: Mapping[str, float]) -> list[tuple[float, float]]:
    """One variant's latency histogram from its counters: (upper bound, cumulative count),
    in order, as _bucket_quantile takes it."""
    return sorted(
        (float(counter[3:]), value)
        for counter, value in counts.items()
        if counter.startswith("le=")
    )


def summary(counts: dict[str, float]) -> dict:
    """What the A/B view shows of one variant's totals: counts, positive share, latency."""
    positive = counts.get("positive", 0.0)
    reviews = counts.get("negative", 0.0) + positive
    buckets = latency_buckets(counts)
    answered = buckets[-1][1] if buckets else 0.0
    p50, p95 = (_bucket_quantile(buckets, q) if answered else None for q in (0.5, 0.95))
    mean = counts.get("latency_sum", 0.0) / answered if answered else None
    return {
        "requests": int(counts.get("requests", 0)),
        "errors": int(counts.get("errors", 0)),
        "reviews": int(reviews),
        "positive_share": positive / reviews if reviews else None,
        "expected_requests": counts.get("expected", 0.0),
        "latency_ms": {
            key: None if value is None else round(value * 1000, 2)
            for key, value in (("mean", mean), ("p50", p50), ("p95", p95))
        },
    }


class CountStore:
    """The online_counts table of the feedback file."""

    def __init__(self, path: Path, run: str):
        self.path = Path(path)
        self.run = run
        try:
            with self._connect() as connection:
                connection.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise FeedbackError(f"counts in {self.path}: {error}") from None

    def _connect(self):
        # NORMAL, not the feedback's FULL: what a power cut could cost is the last second of
        # counts, not a verdict. (Closing the connection still checkpoints the WAL: a flush
        # that wrote takes about 25 ms of disk here, in its own thread.)
        return connect(self.path, synchronous="NORMAL")

    def add(self, deltas: Totals) -> None:
        """Add one process's new counts to this run's rows (one transaction)."""
        rows = [
            (self.run, variant, counter, value)
            for variant, counts in deltas.items()
            for counter, value in counts.items()
            if value
        ]
        if not rows:
            return
        with self._connect() as connection:
            connection.executemany(
                "INSERT INTO online_counts (run, variant, counter, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (run, variant, counter) DO UPDATE SET value = value + excluded.value",
                rows,
            )

    def earlier(self) -> Totals:
        """The counts of every run before this one, per variant."""
        with self._connect() as connection:
            cursor = connection.execute(
                "SELECT variant, counter, SUM(value) FROM online_counts WHERE run != ?"
                " GROUP BY variant, counter",
                (self.run,),
            )
            found: Totals = {}
            for variant, counter, value in cursor:
                found.setdefault(variant, {})[counter] = float(value)
            return found


class CountFlusher:
    """Adds this process's new counts to the store every ``seconds``, off the request path."""

    def __init__(
        self, store: CountStore, registry: CollectorRegistry, seconds: float = FLUSH_SECONDS
    ):
        self.store = store
        self.registry = registry
        self.seconds = seconds
        self._flushed: Totals = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the thread's flush and the last one at shutdown
        self._thread = threading.Thread(target=self._run, name="critic-counts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush(self) -> None:
        """Store what was counted since the last flush (nothing at all when nothing was)."""
        with self._lock:
            now = totals(self.registry)
            deltas = {
                variant: {
                    counter: value - self._flushed.get(variant, {}).get(counter, 0.0)
                    for counter, value in counts.items()
                }
                for variant, counts in now.items()
            }
            self.store.add(deltas)
            self._flushed = now

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            # A locked file or a full disk now: the deltas stay pending for the next try.
            with suppress(sqlite3.Error, OSError, FeedbackError):
                self.flush()

    def stop(self) -> None:
        """Stop the thread and flush what is left."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        # Nothing to be done about a failure while stopping: at most the last second is lost.
        with suppress(sqlite3.Error, OSError, FeedbackError):
            self.flush()
