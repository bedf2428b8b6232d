"""Online counts across restarts: each process adds its own new counts to the feedback's SQLite
file, the file sums them, and a restarted endpoint -- two worker processes, stopped with
SIGTERM -- still shows every request it answered before."""

import json
import sqlite3
import urllib.request

import pytest

from critic.serving.ab.counts import CountFlusher, CountStore, added, summary, totals
from critic.serving.metrics import EndpointMetrics
from support.data import predictions
from support.servers import start_server


def rows(path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM online_counts").fetchone()[0]


def test_two_processes_flush_their_own_deltas_and_the_file_sums_them(tmp_path):
    path = tmp_path / "feedback.sqlite"
    workers = [EndpointMetrics(), EndpointMetrics()]  # what each worker process counts
    flushers = [CountFlusher(CountStore(path, "run-1"), m.registry) for m in workers]
    workers[0].observe("champion", 200, 0.010, predictions("positive", "negative"))
    workers[1].observe("champion", 200, 0.030, predictions("positive"))
    workers[1].observe("champion", 503, 0.5)
    for flusher in flushers:
        flusher.flush()
    workers[0].observe("champion", 200, 0.020, predictions("negative"))
    for flusher in flushers:
        flusher.flush()  # only the new request is added: the first two are not counted twice
        flusher.flush()

    later = CountStore(path, "run-2")
    champion = summary(later.earlier()["champion"])
    assert (champion["requests"], champion["errors"], champion["reviews"]) == (4, 1, 4)
    assert champion["positive_share"] == 0.5
    # The Prometheus histogram's mean: every request timed, the refused one too (10, 30, 500, 20).
    assert champion["latency_ms"]["mean"] == pytest.approx(140.0)
    # The run itself is live in its metrics: its own rows are never added to them again.
    assert CountStore(path, "run-1").earlier() == {}


def test_nothing_new_writes_nothing_and_totals_add_up(tmp_path):
    path = tmp_path / "feedback.sqlite"
    metrics = EndpointMetrics()
    flusher = CountFlusher(CountStore(path, "run"), metrics.registry)
    flusher.flush()
    assert rows(path) == 0
    metrics.observe("challenger", 200, 0.004, predictions("positive"))
    assert totals(metrics.registry)["challenger"]["requests"] == 1
    assert added({"a": {"requests": 1}}, {"a": {"requests": 2}, "b": {"errors": 1}}) == {
        "a": {"requests": 3},
        "b": {"errors": 1},
    }


def test_the_flusher_thread_stores_counts_within_a_second_and_at_stop(tmp_path):
    path = tmp_path / "feedback.sqlite"
    metrics = EndpointMetrics()
    flusher = CountFlusher(CountStore(path, "run"), metrics.registry, seconds=0.05)
    flusher.start()
    metrics.observe("champion", 200, 0.004, predictions("positive"))
    flusher.stop()
    assert summary(CountStore(path, "next").earlier()["champion"])["requests"] == 1


def ab_figures(url) -> dict:
    with urllib.request.urlopen(f"{url}/api/ab", timeout=30) as response:
        return {variant["name"]: variant for variant in json.load(response)["variants"]}


def ask(url, variant, times):
    for _ in range(times):
        request = urllib.request.Request(
            f"{url}/invocations",
            data=b"A fine film.",
            headers={"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": variant},
        )
        urllib.request.urlopen(request, timeout=30).close()


def test_a_restarted_endpoint_with_two_workers_still_has_its_counts(
    trained_bundle, second_bundle, tmp_path
):
    feedback_db = tmp_path / "feedback.sqlite"
    for run, asked in enumerate((12, 5)):
        server = start_server(
            ["serve", "--variant", f"champion={trained_bundle}:1",
             "--variant", f"challenger={second_bundle}:1", "--feedback-db", feedback_db],
            env={"CRITIC_WORKERS": "2"}, seconds=120,
        )  # fmt: skip
        try:
            ask(server.url, "challenger", asked)
            ask(server.url, "champion", 2)
            figures = ab_figures(server.url)
        finally:
            code = server.stop(timeout=60)  # SIGTERM
        assert code == 0, server.log()
        # Earlier runs from the file, this one live: no wait for a flush, nothing twice.
        assert figures["challenger"]["requests"] == [12, 17][run]
        assert figures["champion"]["requests"] == [2, 4][run]
    assert figures["challenger"]["reviews"] == 17
    assert figures["challenger"]["all_runs_latency_ms"]["p95"] > 0
    # Both runs are in the file, each worker's share summed into its run's rows.
    with sqlite3.connect(feedback_db) as connection:
        by_run = connection.execute(
            "SELECT run, SUM(value) FROM online_counts"
            " WHERE variant = 'challenger' AND counter = 'requests' GROUP BY run ORDER BY 2 DESC"
        ).fetchall()
    assert [requests for _, requests in by_run] == [12, 5]
