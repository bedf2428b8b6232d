"""bench/shadow_overhead.py: the live path with and without a shadow and capture, briefly."""

import pytest

from support.bench import load_bench_script


def test_the_shadow_benchmark_measures_every_set_up_and_the_hooks(
    trained_bundle, nbsvm_bundle, capsys
):
    bench = load_bench_script("shadow_overhead")
    rows = bench.main(
        [str(trained_bundle), "--shadow", str(nbsvm_bundle), "--seconds", "1", "--rounds", "1",
         "--clients", "1", "--sample", "1000"]
    )  # fmt: skip
    assert [row["setup"] for row in rows] == ["plain", "shadow", "capture", "shadow+capture"]
    for row in rows:
        assert row["non_200"] == 0 and row["requests_per_second"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["p50_ratio"] == pytest.approx(row["p50_ms"] / rows[0]["p50_ms"])
    out = capsys.readouterr().out
    assert "On the request path: Shadows.offer" in out
    assert "shadow: the shadow (nbsvm) got" in out and "capture wrote" in out
