"""bench/request_cost.py: critic's own CPU per request, in process, briefly."""

from support.bench import load_bench_script


def test_the_request_cost_benchmark_times_the_app_and_the_model_alone(nbsvm_bundle, capsys):
    result = load_bench_script("request_cost").main(
        [str(nbsvm_bundle), "--requests", "50", "--sample", "1000"]
    )
    assert result["requests"] == 50
    assert 0 < result["model_median_us"] < result["request_median_us"]
    assert result["critic_median_us"] > 0  # the app does more than the model
    # With the model's answer precomputed the app still reads, routes, counts and encodes.
    assert 0 < result["critic_alone_median_us"] < result["request_median_us"]
    assert not result["multiprocess"]
    assert f"{nbsvm_bundle.name}: a request" in capsys.readouterr().out
