"""bench/backends.py: every backend answers the trained bundle, ONNX as eager PyTorch does."""

import pytest

from support.bench import load_bench_script

pytest.importorskip("onnxruntime")


def test_the_backend_benchmark_measures_eager_onnx_and_int8_on_a_real_bundle(
    trained_bundle, capsys
):
    rows = load_bench_script("backends").main(
        [str(trained_bundle), "--reviews", "8", "--repeats", "1"]
    )
    assert [(row["model"], row["backend"]) for row in rows] == [
        ("lstm", "eager"),
        ("lstm", "onnx"),
        ("lstm", "int8"),
    ]
    eager, onnx, int8 = rows
    assert onnx["labels_changed"] == 0 and onnx["max_logit_difference"] < 1e-5
    assert onnx["test_accuracy"] == eager["test_accuracy"]
    # int8 weights move the logits a little: measured, not assumed equal.
    assert 0 < int8["max_logit_difference"] < 1
    assert all(row["batch_1_reviews_per_second"] > 0 for row in rows)
    assert "| lstm | onnx |" in capsys.readouterr().out
