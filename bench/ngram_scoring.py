"""Benchmark: the n-gram model's two scoring paths, side by side in one run.

    python bench/ngram_scoring.py runs/nbsvm [--reviews 1000] [--repeats 5]

critic.models.nbsvm scores a review through an integer hash table of its n-grams (word ids,
keys in base V+1, probed by numpy); the string path it replaced, which joins every n-gram and
looks it up in a dictionary, stays as the fallback for vocabularies whose keys would not fit
in an int64. Both are timed here on the same test reviews, alone (one review a call, as a
lone request) and in batches of 100, as CPU time per review (the least disturbed figure on a
shared machine; best of ``--repeats``), together with the Predictor's whole answer (tokens,
scores, calibration) and the largest difference between the two paths' logits.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from critic.data.text import tokenize
from critic.inference.predictor import Predictor
from critic.inference.scoring import NBSVMScorer


def cpu_microseconds(work, count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def measure(predictor: Predictor, texts: list[str], repeats: int) -> dict:
    model = predictor.model
    tokenized = [tokenize(text) for text in texts]
    batches = [tokenized[first : first + 100] for first in range(0, len(tokenized), 100)]
    table = model.table
    figures: dict[str, float] = {}
    logits = {}
    for path, chosen in (("string", None), ("table", table)):
        model.table = chosen
        logits[path] = model.decision_function(tokenized)
        figures[f"{path}_lone_us"] = cpu_microseconds(
            lambda: [model.decision_function([tokens]) for tokens in tokenized],
            len(texts),
            repeats,
        )
        figures[f"{path}_batch_100_us"] = cpu_microseconds(
            lambda: [model.decision_function(batch) for batch in batches], len(texts), repeats
        )
    model.table = table
    figures["tokenize_us"] = cpu_microseconds(
        lambda: [tokenize(text) for text in texts], len(texts), repeats
    )
    figures["predictor_lone_us"] = cpu_microseconds(
        lambda: [predictor.predict([text]) for text in texts], len(texts), repeats
    )
    figures["predictor_batch_100_us"] = cpu_microseconds(
        lambda: [predictor.predict(texts[i : i + 100]) for i in range(0, len(texts), 100)],
        len(texts),
        repeats,
    )
    figures = {name: round(value, 1) for name, value in figures.items()}
    figures["lone_speed_up"] = round(figures["string_lone_us"] / figures["table_lone_us"], 2)
    figures["batch_speed_up"] = round(
        figures["string_batch_100_us"] / figures["table_batch_100_us"], 2
    )
    figures["max_logit_difference"] = float(np.abs(logits["string"] - logits["table"]).max())
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--reviews", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample", type=int, help="Pick the reviews from N embedded ones.")
    args = parser.parse_args(argv)
    predictor = Predictor.load(args.bundle)
    if not isinstance(predictor.scorer, NBSVMScorer) or predictor.model.table is None:
        raise SystemExit(f"{args.bundle} is not an n-gram (nbsvm) bundle with an integer table")
    from serve_load import pick_reviews

    _, texts = pick_reviews(args.reviews, args.sample)
    figures = {"bundle": str(args.bundle), "reviews": len(texts), "n_grams": len(predictor.model)}
    figures.update(measure(predictor, texts, args.repeats))
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
