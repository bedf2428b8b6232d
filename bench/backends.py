"""Benchmark: eager PyTorch, ONNX Runtime and dynamic int8 PyTorch on the same bundles.

    python bench/backends.py runs/lstm runs/gru runs/attention
    python bench/backends.py runs/lstm --reviews 256 --repeats 5 --threads 1 --json /tmp/b.json

For each neural bundle given and each backend:

* ``eager`` -- the bundle's model as ``critic serve`` runs it today (:class:`NeuralScorer`);
* ``onnx`` -- the same weights exported to ONNX and run by ONNX Runtime
  (:class:`~critic.inference.onnx.OnnxScorer`, ``--backend onnx``);
* ``int8`` -- ``torch.ao.quantization.quantize_dynamic`` of its ``nn.LSTM``, ``nn.GRU`` and
  ``nn.Linear`` modules (weights int8, activations quantized on the fly). critic's own
  fast LSTM (``models/fast_lstm.py``) is for training only; in eval mode every model calls
  ``nn.LSTM`` / ``nn.GRU``, which is what gets quantized.

it prints reviews/s of the model step (tokenised reviews in, log-odds out: tokenising costs
every backend the same) at batch 1 (one review per call, as a lone request) and batch 64 (the
scorer's length-sorted batches of 64), the fastest of ``--repeats`` passes (the machine is
shared: the fastest pass is the one least disturbed by anything else); and on the bundle's own
whole test split its accuracy, how many answers differ from eager PyTorch's, and the largest
logit difference. The table is Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from critic.data.prepare import load_splits
from critic.data.text import tokenize_many
from critic.inference.bundle import load_bundle
from critic.inference.onnx import OnnxScorer
from critic.inference.scoring import NeuralScorer

BACKENDS = ("eager", "onnx", "int8")


def quantized_bundle(bundle):
    """The bundle with its model's recurrent and linear layers dynamically quantized to int8."""
    with warnings.catch_warnings():
        # torch.ao.quantization and its quantized tensors are deprecated in favour of torchao
        # (not a critic dependency): worth a line in the report, not a page per run.
        warnings.simplefilter("ignore")
        model = torch.ao.quantization.quantize_dynamic(
            bundle.model, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8
        )
    return dataclasses.replace(bundle, model=model)


def make_scorer(backend: str, bundle, batch_size: int):
    if backend == "eager":
        return NeuralScorer(bundle, batch_size)
    if backend == "onnx":
        return OnnxScorer(bundle, batch_size)
    return NeuralScorer(quantized_bundle(bundle), batch_size)


def fastest(run, repeats: int) -> float:
    """The shortest wall-clock time of ``repeats`` calls of ``run``, after one warm-up call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def measure(bundle, tokenized, labels, reviews: int, repeats: int) -> list[dict]:
    """One row per backend: speeds at batch 1 and 64, test accuracy, agreement with eager."""
    timed = tokenized[:reviews]
    rows, eager_logits = [], None
    for backend in BACKENDS:
        one, many = make_scorer(backend, bundle, 1), make_scorer(backend, bundle, 64)
        single = fastest(lambda scorer=one: [scorer.logits([t]) for t in timed], repeats)
        batched = fastest(lambda scorer=many: scorer.logits(timed), repeats)
        logits = many.logits(tokenized)
        eager_logits = logits if eager_logits is None else eager_logits
        rows.append(
            {
                "model": bundle.config.model.name,
                "backend": backend,
                "batch_1_reviews_per_second": len(timed) / single,
                "batch_64_reviews_per_second": len(timed) / batched,
                "test_accuracy": float(np.mean((logits >= 0) == (labels == 1))),
                "test_reviews": len(labels),
                "labels_changed": int(np.sum((logits >= 0) != (eager_logits >= 0))),
                "max_logit_difference": float(np.abs(logits - eager_logits).max()),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | backend | batch 1 reviews/s | batch 64 reviews/s | test accuracy | "
        "labels changed vs eager | max logit difference |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['backend']} | {row['batch_1_reviews_per_second']:,.0f} | "
            f"{row['batch_64_reviews_per_second']:,.0f} | {row['test_accuracy']:.2%} | "
            f"{row['labels_changed']} of {row['test_reviews']:,} | "
            f"{row['max_logit_difference']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path, help="neural bundles to measure")
    parser.add_argument("--reviews", type=int, default=512, help="test reviews timed per pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the fastest counts")
    parser.add_argument("--json", type=Path, help="also write every figure, unrounded, here")
    parser.add_argument(
        "--threads", type=int, help="torch's (and so ONNX Runtime's) threads; default: torch's"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for path in args.bundles:
        bundle = load_bundle(path)
        test = load_splits(bundle.config.data)["test"]
        rows += measure(bundle, tokenize_many(test.texts), test.labels, args.reviews, args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
