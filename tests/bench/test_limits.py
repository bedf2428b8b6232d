"""bench/limits.py: critic beside HTTP alone, the model alone and the ten-line server, briefly."""

from pathlib import Path

import pytest

from support.bench import load_bench_script


def test_the_limits_benchmark_measures_every_yardstick_and_judges_each_target(nbsvm_bundle, capsys):
    limits = load_bench_script("limits")
    (result,) = limits.main(
        [str(nbsvm_bundle), "--seconds", "1", "--clients", "1", "4", "--workers", "1",
         "--model-seconds", "0.3", "--sample", "1000"]
    )  # fmt: skip
    assert result["non_200"] == 0
    assert sorted(result["critic"]) == sorted(result["naive"]) == ["1", "4"]
    model, http = result["model_alone"], result["http_alone"]
    assert model["kind"] == "nbsvm" and model["lone_p50_us"] > 0
    assert model["capacity"] == pytest.approx(model["reviews_per_second_per_worker"])  # 1 worker
    assert http["lone_p50_us"] > 0 and http["requests_per_second"] > 0
    lone = result["critic"]["1"]["p50_ms"] * 1e3
    assert result["overhead_us"] == pytest.approx(lone - model["lone_p50_us"] - http["lone_p50_us"])
    assert result["limit"] == min(model["capacity"], http["requests_per_second"])
    top = result["critic"]["4"]["requests_per_second"]
    assert result["share_of_limit"] == pytest.approx(top / result["limit"])
    assert result["hold"] == pytest.approx(top / result["critic"]["1"]["requests_per_second"])
    # The model and HTTP served together: measured at the fewest and the most clients.
    assert sorted(result["served"]) == ["1", "4"]
    served_lone = result["served"]["1"]["p50_ms"] * 1e3
    assert result["served_lone_p50_us"] == pytest.approx(served_lone) and served_lone > 0
    assert result["served_overhead_us"] == pytest.approx(lone - served_lone)
    assert result["share_of_served"] == pytest.approx(
        top / result["served"]["4"]["requests_per_second"]
    )
    assert f"| {nbsvm_bundle.name} (nbsvm) |" in capsys.readouterr().out


def test_each_target_is_judged_against_its_own_threshold():
    limits = load_bench_script("limits")
    model = {"model": "nbsvm", "lone_p50_us": 200.0, "capacity": 10_000.0}
    http = {"lone_p50_us": 100.0, "requests_per_second": 40_000.0}

    def wrk(rate, p50_ms, p99_ms):
        return {"requests_per_second": rate, "p50_ms": p50_ms, "p99_ms": p99_ms,
                "statuses": {"2xx/3xx": 10, "other": 0}}  # fmt: skip

    critic = {1: wrk(2_000, 0.34, 1.0), 8: wrk(9_000, 1.0, 5.0), 64: wrk(8_500, 8.0, 49.0)}
    naive = {1: wrk(1_500, 0.5, 2.0), 8: wrk(2_000, 4.0, 20.0), 64: wrk(2_000, 30.0, 60.0)}
    served = {1: wrk(2_500, 0.30, 1.0), 64: wrk(6_000, 10.0, 40.0)}
    runs = {"critic": critic, "naive": naive, "served": served}
    judged = limits.judge(Path("nbsvm"), model, http, runs, 64)
    assert judged["overhead_us"] == pytest.approx(40.0) and judged["overhead_ok"]
    assert judged["served_overhead_us"] == pytest.approx(40.0) and judged["served_overhead_ok"]
    assert judged["share_of_served"] == pytest.approx(8_500 / 6_000)
    served[1] = wrk(2_500, 0.28, 1.0)
    assert not limits.judge(Path("nbsvm"), model, http, runs, 64)["served_overhead_ok"]  # 60 µs
    served[1] = wrk(2_500, 0.30, 1.0)
    assert judged["limit"] == 10_000 and judged["limit_ok"]  # 85% of the model's capacity
    assert judged["model_plus_http"] == pytest.approx(8_000)
    assert judged["hold"] == pytest.approx(8_500 / 9_000) and not judged["hold_ok"]  # 94%
    assert judged["p99_ok"]  # 49 ms: under both the naive server's 60 and 50 ms
    critic[64] = wrk(8_500, 8.0, 55.0)
    assert not limits.judge(Path("nbsvm"), model, http, runs, 64)[
        "p99_ok"
    ]  # under the naive server's, but not under 50 ms for nbsvm
