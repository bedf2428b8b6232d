"""bench/ngram_scoring.py: the integer table and the string path, timed on a real bundle."""

import pytest

from support.bench import load_bench_script


def test_the_ngram_benchmark_times_both_paths_and_finds_them_equal(nbsvm_bundle, capsys):
    figures = load_bench_script("ngram_scoring").main(
        [str(nbsvm_bundle), "--reviews", "30", "--repeats", "1", "--sample", "400"]
    )
    assert figures["reviews"] == 30
    assert figures["max_logit_difference"] < 1e-9
    for name in ("string_lone_us", "table_lone_us", "table_batch_100_us", "predictor_lone_us"):
        assert figures[name] > 0
    assert '"lone_speed_up"' in capsys.readouterr().out


def test_the_ngram_benchmark_refuses_a_neural_bundle(trained_bundle):
    with pytest.raises(SystemExit, match="not an n-gram"):
        load_bench_script("ngram_scoring").main([str(trained_bundle), "--reviews", "5"])
