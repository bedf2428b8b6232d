"""bench/serve_load.py: critic and the naive server, side by side under wrk, briefly."""

import pytest

from support.bench import load_bench_script


def test_the_load_benchmark_drives_both_servers_and_reports_ratios(nbsvm_bundle, capsys):
    serve_load = load_bench_script("serve_load")
    rows = serve_load.main(
        [str(nbsvm_bundle), "--seconds", "1", "--rounds", "1", "--clients", "1", "4",
         "--hundred-clients", "1", "--sample", "1000"]
    )  # fmt: skip
    assert [(row["request"], row["clients"]) for row in rows] == [
        ("single", 1), ("single", 4), ("hundred", 1)
    ]  # fmt: skip
    for row in rows:
        assert row["critic_non_200"] == 0 and row["naive_non_200"] == 0
        assert row["critic_requests_per_second"] > 0 and row["naive_requests_per_second"] > 0
        assert row["throughput_ratio"] == pytest.approx(
            row["critic_requests_per_second"] / row["naive_requests_per_second"]
        )
        assert 0 < row["critic_p50_ms"] <= row["critic_p99_ms"]
    hundred = rows[-1]
    assert hundred["critic_reviews_per_second"] == pytest.approx(
        100 * hundred["critic_requests_per_second"]
    )
    assert f"| {nbsvm_bundle.name} | single | 1 |" in capsys.readouterr().out


def test_wrks_report_is_read_in_every_unit():
    serve_load = load_bench_script("serve_load")
    report = """  Latency Distribution
     50%  850.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.05s
  12000 requests in 10.00s, 3.00MB read
  Socket errors: connect 0, read 0, write 0, timeout 3
  Non-2xx or 3xx responses: 10
Requests/sec:   1200.50
"""
    parsed = serve_load.parse_wrk(report)
    assert parsed["requests_per_second"] == 1200.5
    assert parsed["p50_ms"] == pytest.approx(0.85) and parsed["p99_ms"] == pytest.approx(1050)
    assert parsed["statuses"] == {"2xx/3xx": 11990, "other": 10}
    assert "timeout 3" in parsed["socket_errors"]
