"""critic.serving.metrics on its own: the Prometheus series and the A/B page's window agree on
every event, per variant, and refused requests never count towards latency."""

import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from critic.serving.metrics import LATENCY_WINDOW, NO_VARIANT, EndpointMetrics, VariantWindow
from support.data import predictions


def samples(metrics: EndpointMetrics) -> dict[tuple[str, frozenset], float]:
    """Every sample render() shows, as (sample name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def value(table: dict, sample: str, **labels: str) -> float:
    return table[(sample, frozenset(labels.items()))]


def test_a_variant_before_its_first_request_shows_zeros_and_no_percentiles():
    assert EndpointMetrics().snapshot("champion") == {
        "requests": 0,
        "errors": 0,
        "reviews": 0,
        "positive_share": None,
        "unusual_share": None,
        "latency_ms": {"p50": None, "p95": None, "window": 0},
    }


def test_answered_and_refused_requests_are_counted_per_variant():
    metrics = EndpointMetrics()
    metrics.observe("champion", 200, 0.010, predictions("positive", "negative", "positive"))
    metrics.observe("champion", 200, 0.030, predictions("negative"))
    metrics.observe("champion", 503, 0.500)
    metrics.observe("challenger", 200, 0.020, predictions("positive"))
    metrics.observe(NO_VARIANT, 415, 0.001)

    champion = metrics.snapshot("champion")
    assert champion["requests"] == 3 and champion["errors"] == 1
    assert champion["reviews"] == 4
    assert champion["positive_share"] == 0.5
    # The refused request (0.5 s) is not among the latencies: it says nothing of the model.
    assert champion["latency_ms"] == {"p50": 20.0, "p95": 29.0, "window": 2}
    assert metrics.snapshot("challenger")["positive_share"] == 1.0
    assert metrics.snapshot(NO_VARIANT) == {
        "requests": 1,
        "errors": 1,
        "reviews": 0,
        "positive_share": None,
        "unusual_share": None,
        "latency_ms": {"p50": None, "p95": None, "window": 0},
    }

    table = samples(metrics)
    assert value(table, "critic_requests_total", variant="champion", status="200") == 2
    assert value(table, "critic_requests_total", variant="champion", status="503") == 1
    assert value(table, "critic_request_errors_total", variant="champion", status="503") == 1
    assert value(table, "critic_request_errors_total", variant="none", status="415") == 1
    assert (
        "critic_request_errors_total",
        frozenset({("variant", "champion"), ("status", "200")}),
    ) not in table
    assert value(table, "critic_predictions_total", variant="champion", label="positive") == 2
    assert value(table, "critic_predictions_total", variant="champion", label="negative") == 2
    assert value(table, "critic_predictions_total", variant="challenger", label="positive") == 1
    # Prometheus keeps every request's latency, refused ones included, in the histogram.
    assert value(table, "critic_request_latency_seconds_count", variant="champion") == 3
    assert value(table, "critic_request_latency_seconds_sum", variant="champion") == pytest.approx(
        0.54
    )
    assert value(table, "critic_request_latency_seconds_bucket", variant="champion", le="0.01") == 1
    assert value(table, "critic_request_latency_seconds_bucket", variant="champion", le="0.05") == 2
    assert value(table, "critic_request_latency_seconds_bucket", variant="champion", le="+Inf") == 3


def test_answers_whose_review_is_unlike_the_models_are_counted_per_variant():
    metrics = EndpointMetrics()
    typical, unusual = predictions("positive", "negative"), predictions("positive")
    typical[0]["domain"] = {"score": 0.4, "typical": True}
    typical[1]["domain"] = None  # a bundle without a domain model
    unusual[0]["domain"] = {"score": 3.1, "typical": False}
    metrics.observe("champion", 200, 0.01, typical)
    metrics.observe("champion", 200, 0.01, unusual)
    assert metrics.snapshot("champion")["unusual_share"] == pytest.approx(1 / 3)
    assert value(samples(metrics), "critic_unusual_reviews_total", variant="champion") == 1


def test_batch_sizes_and_weights_are_series_of_their_own():
    metrics = EndpointMetrics()
    metrics.batch_size.labels("champion").observe(3)
    metrics.batch_size.labels("champion").observe(40)
    metrics.weight.labels("champion").set(0.9)
    table = samples(metrics)
    assert value(table, "critic_batch_reviews_count", variant="champion") == 2
    assert value(table, "critic_batch_reviews_sum", variant="champion") == 43
    assert value(table, "critic_batch_reviews_bucket", variant="champion", le="4.0") == 1
    assert value(table, "critic_variant_weight", variant="champion") == 0.9
    assert metrics.content_type.startswith("text/plain; version=")


def test_each_endpoint_has_its_own_registry():
    first, second = EndpointMetrics(), EndpointMetrics()
    first.observe("champion", 200, 0.01, predictions("positive"))
    assert first.snapshot("champion")["requests"] == 1
    assert second.snapshot("champion")["requests"] == 0
    assert b'critic_requests_total{status="200",variant="champion"}' not in second.render()


def test_the_latency_window_keeps_only_the_most_recent_requests():
    window = VariantWindow()
    for millisecond in range(LATENCY_WINDOW + 500):
        window.latencies.append(millisecond / 1000)
    latency = window.snapshot()["latency_ms"]
    assert latency["window"] == LATENCY_WINDOW
    # The oldest 500 fell out: the median is that of 500 ms .. 2499 ms.
    assert latency["p50"] == pytest.approx((500 + LATENCY_WINDOW + 499) / 2)


def test_requests_observed_from_many_threads_are_all_counted():
    metrics = EndpointMetrics()

    def send(count: int) -> None:
        for _ in range(count):
            metrics.observe("champion", 200, 0.001, predictions("positive"))

    threads = [threading.Thread(target=send, args=(250,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = metrics.snapshot("champion")
    assert (snapshot["requests"], snapshot["reviews"]) == (2000, 2000)
    table = samples(metrics)
    assert value(table, "critic_requests_total", variant="champion", status="200") == 2000


def test_a_worker_still_creating_its_file_is_left_out_of_a_scrape_rather_than_failing_it(tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    from critic.serving.metrics import StartedWorkersCollector

    # One worker has counted 3 requests; another has just created its file, still empty.
    counted = MmapedDict(str(tmp_path / "counter_101.db"))
    key = mmap_key("critic_requests", "critic_requests_total", ["variant"], ["AllTraffic"], "")
    counted.write_value(key, 3.0, 0.0)
    counted.close()
    (tmp_path / "counter_102.db").touch()

    stock = CollectorRegistry()
    multiprocess.MultiProcessCollector(stock, path=str(tmp_path))
    # What /metrics answered with a 500. Should prometheus-client mend its reader, this fails
    # and StartedWorkersCollector can go.
    with pytest.raises(Exception, match="unpack"):
        generate_latest(stock)
    registry = CollectorRegistry()
    StartedWorkersCollector(registry, path=str(tmp_path))
    assert 'critic_requests_total{variant="AllTraffic"} 3.0' in generate_latest(registry).decode()
