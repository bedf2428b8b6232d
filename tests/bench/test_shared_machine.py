"""bench/shared_machine.py: an epoch timed alone, beside a busy process and two side by side."""

from support.bench import load_bench_script


def test_the_shared_machine_benchmark_times_every_situation_of_every_setting(
    capsys, cache_dir, monkeypatch
):
    monkeypatch.setenv("CRITIC_CACHE", str(cache_dir))  # the trainings it starts share the cache
    results = load_bench_script("shared_machine").main(
        ["--models", "lstm", "--reviews", "300", "--env", "one=CRITIC_THREADS=1"]
    )
    assert set(results["figures"]) == {"lstm/one"}
    for figures in results["figures"].values():
        assert figures["alone"] > 0 and figures["beside_busy"] > 0
        assert len(figures["side_by_side"]) == 2 and all(t > 0 for t in figures["side_by_side"])
    printed = capsys.readouterr().out
    assert "two side by side" in printed and "1 thread(s), as CRITIC_THREADS says" in printed
