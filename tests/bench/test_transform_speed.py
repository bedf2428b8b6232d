"""bench/transform_speed.py: the transform's speed beside the Predictor's, and a big file's RSS."""

from support.bench import load_bench_script


def test_the_transform_benchmark_compares_both_speeds_and_measures_memory(nbsvm_bundle, capsys):
    rows = load_bench_script("transform_speed").main(
        [str(nbsvm_bundle), "--reviews", "64", "--batch-size", "16", "--repeats", "1",
         "--rss-lines", "500"]
    )  # fmt: skip
    speed, memory = rows
    assert speed["model"] == "nbsvm" and speed["reviews"] == 64
    assert speed["offline_reviews_per_second"] > 0 and speed["transform_reviews_per_second"] > 0
    measured = speed["transform_reviews_per_second"] / speed["offline_reviews_per_second"]
    assert abs(speed["ratio"] - measured) < 0.01
    assert memory["lines"] == memory["records"] == 500
    assert 0 < memory["peak_rss_mb"] < 1024
    assert "| nbsvm |" in capsys.readouterr().out
