"""bench/serve_latency.py: it starts a real server with the options given and measures it."""

import json
import os
import subprocess
import sys

from conftest import BENCH

SCRIPT = BENCH / "serve_latency.py"


def test_the_latency_benchmark_measures_a_real_server_without_errors(trained_bundle, cache_dir):
    completed = subprocess.run(
        [sys.executable, SCRIPT, trained_bundle, "--requests", "12", "--batch-requests", "2",
         "--seconds", "20", "--batch-wait-ms", "0"],
        capture_output=True, text=True, timeout=300, check=True,
        env={**os.environ, "CRITIC_CACHE": str(cache_dir)},
    )  # fmt: skip
    runs = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert [(run["run"], run["concurrency"]) for run in runs] == [
        ("single review", 1),
        ("single review", 8),
        ("single review", 64),
        ("100 reviews per request", 1),
    ]
    assert all(run["errors"] == 0 and run["p50_ms"] > 0 for run in runs)
    assert [run["requests"] for run in runs] == [12, 12, 12, 2]
    assert all(run["reviews_per_second"] == run["requests_per_second"] for run in runs[:3])
    # Both rates are rounded to 0.1 on their own, so they agree to within that rounding × 100.
    batched = runs[-1]
    assert abs(batched["reviews_per_second"] - batched["requests_per_second"] * 100) <= 5.1
