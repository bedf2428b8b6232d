"""Benchmark: does the "domain" score tell movie reviews from reviews of other things?

    python bench/domain_signal.py runs/nbsvm runs/lstm runs/attention runs/ensemble
    python bench/domain_signal.py runs/lstm --max-reviews 1000 --json /tmp/domain.json

Each bundle is judged through the Predictor a server would use, on three sets of reviews:
its own held-out test split (IMDB, the domain it learned), every Rotten Tomatoes snippet
(movies, but one sentence each) and the Amazon product-review snippets (``--source amazon``:
not films at all), none of them trained on. Per bundle and set: accuracy on all, the share of
answers the signal calls typical and the accuracy on those, the ROC AUC of the score itself
(positive above negative), and the ECE of the calibrated score. Per other domain: the ROC
AUC of the domain score at telling its reviews from the IMDB test reviews (1.0: every
review of the other domain scores above every IMDB one), and the same AUC from the
signal without its length feature, which a snippet's shortness alone would give away.

With --cost, what the score adds to an answer: ``Predictor.predict`` timed with and without
the bundle's domain model (this thread's CPU time, so other processes do not count; the
median of 300 lone reviews of about 230 words and of 20 batches of 64, on one thread).

Prints a Markdown table; with --json, every figure unrounded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from critic.data.prepare import load_splits
from critic.data.sources import load_all_reviews
from critic.data.split import stratified_sample
from critic.data.text import tokenize_many
from critic.evaluation.calibration import expected_calibration_error, sigmoid
from critic.inference.predictor import Predictor

OTHER_DOMAINS = ("rotten_tomatoes", "amazon")


def judge(predictor: Predictor, texts: list[str], labels: np.ndarray) -> dict:
    """Figures of one bundle on one set of reviews, and its domain scores (with and without
    the length feature)."""
    tokenized = tokenize_many(texts)
    logits, raw = predictor.scorer.domain_features(tokenized)
    domain = predictor.bundle.domain
    scores = domain.scores(raw)
    unlengthed = raw.copy()
    if "length" in domain.features:
        unlengthed[:, domain.features.index("length")] = domain.center[
            domain.features.index("length")
        ]
    elif domain.features[0].startswith("member"):
        unlengthed = None  # an ensemble's features are its members' scores, length inside
    right = (logits >= 0) == (labels == 1)
    typical = scores <= 1.0
    calibrated = predictor.calibration.scores(logits)
    return {
        "reviews": len(texts),
        "accuracy": float(right.mean()),
        "typical": float(typical.mean()),
        "accuracy_typical": float(right[typical].mean()) if typical.any() else None,
        "auc": float(roc_auc_score(labels, logits)),
        "ece": float(expected_calibration_error(labels, calibrated)),
        "mean_score_of_positives": float(
            sigmoid(logits / predictor.calibration.temperature)[labels == 1].mean()
        ),
        "_scores": scores,
        "_unlengthed": None if unlengthed is None else domain.scores(unlengthed),
    }


def separation(inside: dict, outside: dict, key: str) -> float | None:
    """ROC AUC of the domain score at telling ``outside``'s reviews from ``inside``'s."""
    if inside[key] is None or outside[key] is None:
        return None
    values = np.concatenate([inside[key], outside[key]])
    truth = np.concatenate([np.zeros(len(inside[key])), np.ones(len(outside[key]))])
    return float(roc_auc_score(truth, values))


def judge_bundle(path: Path, max_reviews: int | None, seed: int) -> dict:
    predictor = Predictor.load(path)
    if predictor.bundle.domain is None:
        raise SystemExit(f"{path} has no domain model: run critic domain {path}")
    test = load_splits(predictor.bundle.config.data)["test"]
    sets = {"imdb": test}
    for name in OTHER_DOMAINS:
        reviews = load_all_reviews(name)
        if max_reviews is not None and len(reviews) > max_reviews:
            reviews = stratified_sample(reviews, max_reviews, seed)
        sets[name] = reviews
    started = time.perf_counter()
    judged = {name: judge(predictor, r.texts, r.labels) for name, r in sets.items()}
    row = {"bundle": str(path), "model": predictor.name, "seconds": time.perf_counter() - started}
    for name, figures in judged.items():
        row[name] = {k: v for k, v in figures.items() if not k.startswith("_")}
    for name in OTHER_DOMAINS:
        row[name]["signal_auc"] = separation(judged["imdb"], judged[name], "_scores")
        row[name]["signal_auc_without_length"] = separation(
            judged["imdb"], judged[name], "_unlengthed"
        )
    return row


def _cpu_seconds(call, times: int) -> float:
    spent = []
    for _ in range(times):
        started = time.thread_time()
        call()
        spent.append(time.thread_time() - started)
    return statistics.median(spent)


def domain_cost(path: Path) -> dict:
    """Microseconds ``Predictor.predict`` takes with and without the domain model."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predictor = Predictor.load(path, backend="torch")
        test = load_splits(predictor.bundle.config.data)["test"].texts
        review = min(test, key=lambda text: abs(len(text.split()) - 230))
        batch = test[:64]
        figures = {}
        for label in ("with", "without"):
            if label == "without":
                _drop_domain(predictor.scorer)
            predictor.predict(batch)  # warm
            figures[f"lone_us_{label}"] = 1e6 * _cpu_seconds(lambda: predictor.predict(review), 300)
            figures[f"batch_us_per_review_{label}"] = (
                1e6 * _cpu_seconds(lambda: predictor.predict(batch), 20) / len(batch)
            )
        return figures
    finally:
        torch.set_num_threads(threads)


def _drop_domain(scorer) -> None:
    scorer.domain = None
    for member in getattr(scorer, "members", ()):
        _drop_domain(member)


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def number(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    lines = [
        "| model | set | accuracy | typical | accuracy when typical | score AUC | ECE "
        "| signal AUC vs IMDB | without length |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        for name in ("imdb", *OTHER_DOMAINS):
            figures = row[name]
            lines.append(
                f"| {row['model']} | {name} ({figures['reviews']:,}) | "
                f"{percent(figures['accuracy'])} | {percent(figures['typical'])} | "
                f"{percent(figures['accuracy_typical'])} | {number(figures['auc'])} | "
                f"{number(figures['ece'], 4)} | {number(figures.get('signal_auc'))} | "
                f"{number(figures.get('signal_auc_without_length'))} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument(
        "--max-reviews",
        type=int,
        default=None,
        help="At most this many reviews of each other domain (a stratified sample).",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cost", action="store_true", help="Also time predict with and without the score."
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = [judge_bundle(path, args.max_reviews, args.seed) for path in args.bundles]
    print(table(rows))
    if args.cost:
        print("\n| model | lone review, µs (without) | in batches of 64, µs a review (without) |")
        print("| --- | ---: | ---: |")
        for row, path in zip(rows, args.bundles, strict=True):
            row["cost"] = cost = domain_cost(path)
            print(
                f"| {row['model']} | {cost['lone_us_with']:.0f} ({cost['lone_us_without']:.0f})"
                f" | {cost['batch_us_per_review_with']:.0f} "
                f"({cost['batch_us_per_review_without']:.0f}) |"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
