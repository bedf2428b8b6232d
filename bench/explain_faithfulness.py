"""Benchmark: do the word weights name the words that drove the answer?

    python bench/explain_faithfulness.py bench/out/models/{lstm,gru,bilstm,cnn-lstm} \
        bench/out/models/{attention,nbsvm,ensemble} --reviews 300
    python bench/explain_faithfulness.py runs/lstm --reviews 200 --k 1 --k 5 --way "gradient x input"

A deletion test (DeYoung et al. 2020's "comprehensiveness"): for each of the first N reviews
of the bundle's own test split, take the k words whose weights pushed hardest towards the
label the model gave, delete them from the review, and score it again. The more of its
answer the model loses, the better the weights named what drove it. Reported per bundle and
way of weighting, for each k: the mean fall of the log-odds towards the label first given,
and the share of answers that flip; and the area over the deletion curve (AOPC: the mean fall
of the probability of that label, deleting the strongest 1, 5, 10, 20 and 50% of the words).
The same deletions at random positions are the floor. Each way is timed over the N reviews
(batches of 64, every thread) and on one review of 230 tokens on one thread.

Every bundle is judged by the word weights critic serves (``Predictor.predict(...,
explain=True)``: greedy deletion for neural models, nbsvm's coefficients, an
ensemble's weighted mix). Neural models are also judged by the other
ways of :mod:`critic.inference.attribution` (``--way`` picks some): gradient x input (what
critic served before), leave-one-out deletion, windows of 1-3 words deleted, integrated
gradients from an all-zero or an ``<unk>`` baseline, greedy deletion unsettled, and two wider
searches than the served one (40 candidates; a beam of 3), which say how much better a set of
deleted words could be found. Prints a Markdown table, then each way's strongest words of one
mixed review (EXAMPLE); the figures in docs/benchmarks.md came from such runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from critic.data.prepare import load_splits
from critic.data.text import tokenize_many
from critic.data.vocab import UNK_ID
from critic.inference.attribution import (
    gradient_x_input,
    greedy_deletion,
    integrated_gradients,
    leave_one_out,
)
from critic.inference.bundle import load_bundle
from critic.inference.scoring import NeuralScorer, make_scorer

RANDOM = "random words"
GRADIENT_X_INPUT = "gradient x input"
LEAVE_ONE_OUT = "leave-one-out"
SPANS = "deleted 1-3 words"
INTEGRATED_GRADIENTS = "integrated gradients"
IG_FROM_UNK = "integrated gradients, from <unk>"
GREEDY = "greedy deletion, 5 of 20, settled"
GREEDY_UNSETTLED = "greedy deletion, 5 of 20, unsettled"  # served 2026-12-04 until settled
# Wider searches than the served rounds, to see how far those are from what deletion can find.
GREEDY_WIDER = "greedy deletion, 5 of 40, settled"
BEAM = "beam search of 3, 5 of 20, settled"
OWN_TERMS = "its own terms"  # attention's a_t (w . h_t), the n-gram bag's shares
# The example of issue 26: a mixed review, where a reader can tell which words should weigh.
EXAMPLE = (
    "The first hour drags and the dialogue is clumsy, but the last act is wonderful and the "
    "lead actress is superb. Not a masterpiece, yet I would watch it again."
)
TIMED_TOKENS = 230  # about a median IMDB review
AOPC_FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5)
SERVED_NEURAL = GREEDY  # what NeuralScorer.token_scores computes


class AttributionScorer(NeuralScorer):
    """critic's neural scorer with its word weights by one of the ways measured here."""

    def __init__(self, bundle, how):
        super().__init__(bundle)
        self.how = how

    def token_scores(self, token_ids, lengths):
        return self.how(self, token_ids, lengths)


ALTERNATIVES = {
    GRADIENT_X_INPUT: lambda s, ids, lengths: gradient_x_input(s.model, ids, lengths),
    LEAVE_ONE_OUT: lambda s, ids, lengths: leave_one_out(s.batch_logits, ids, lengths),
    SPANS: lambda s, ids, lengths: leave_one_out(s.batch_logits, ids, lengths, widths=(1, 2, 3)),
    INTEGRATED_GRADIENTS: lambda s, ids, lengths: integrated_gradients(s.model, ids, lengths),
    IG_FROM_UNK: lambda s, ids, lengths: integrated_gradients(
        s.model, ids, lengths, steps=32, baseline_id=UNK_ID
    ),
    GREEDY: lambda s, ids, lengths: greedy_deletion(s.batch_logits, ids, lengths),
    GREEDY_UNSETTLED: lambda s, ids, lengths: greedy_deletion(
        s.batch_logits, ids, lengths, settle=False
    ),
    GREEDY_WIDER: lambda s, ids, lengths: greedy_deletion(s.batch_logits, ids, lengths, pool=40),
    BEAM: lambda s, ids, lengths: greedy_deletion(s.batch_logits, ids, lengths, beam=3),
}


def served_name(bundle) -> str:
    if bundle.kind == "neural":
        return SERVED_NEURAL
    return {"nbsvm": "n-gram coefficients", "ensemble": "members' weights"}[bundle.kind]


def ways_to_explain(bundle, only: list[str] | None = None) -> dict[str, object]:
    """Name -> scorer: critic's own word weights first, then, for a neural model, the other
    ways measured here (those named in ``only``, if given): its own terms where it has them
    (attention's, the n-gram bag's: served until 2026-12-04), and those of ALTERNATIVES
    where it has word vectors to take gradients at."""
    served = served_name(bundle)
    ways = {served: make_scorer(bundle)}
    if bundle.kind != "neural":
        return ways
    others = dict(ALTERNATIVES) if hasattr(bundle.model, "embedding") else {}
    if hasattr(bundle.model, "word_weights"):
        others[OWN_TERMS] = lambda s, ids, lengths: s.model.word_weights(ids, lengths)
    for name, how in others.items():
        if name != served and (only is None or name in only):
            ways[name] = AttributionScorer(bundle, how)
    return ways


def delete(tokens: list[str], positions: np.ndarray) -> list[str]:
    gone = set(int(p) for p in positions)
    kept = [token for index, token in enumerate(tokens) if index not in gone]
    return kept or ["."]  # an empty review has no answer; one full stop reads as nothing


def strongest_first(weights, side) -> list[np.ndarray]:
    """Per review, its positions by how hard they pushed towards the label first given."""
    return [np.argsort(-(w * s), kind="stable") for w, s in zip(weights, side, strict=True)]


def deletion_test(scorer, tokenized, ks, weights=None, seed=0) -> dict[int, tuple[float, float]]:
    """k -> (mean fall of the log-odds towards the first label, share flipped)."""
    first = scorer.logits(tokenized)
    side = np.where(first >= 0, 1.0, -1.0)
    orders = _orders(scorer, tokenized, side, weights, seed)
    results = {}
    for k in ks:
        changed = [
            delete(tokens, order[:k]) for tokens, order in zip(tokenized, orders, strict=True)
        ]
        after = scorer.logits(changed)
        results[k] = (float(np.mean(side * (first - after))), float(np.mean(side * after < 0)))
    return results


def aopc(scorer, tokenized, weights=None, fractions=AOPC_FRACTIONS, seed=0) -> float:
    """DeYoung et al. 2020's comprehensiveness, averaged over the deletion curve (AOPC): the
    mean, over deleting the strongest 1, 5, 10, 20 and 50% of a review's words (at least one),
    of the fall in the probability of the label first given. 0 to 1; higher is better."""
    first = scorer.logits(tokenized)
    side = np.where(first >= 0, 1.0, -1.0)
    orders = _orders(scorer, tokenized, side, weights, seed)
    before = _sigmoid(side * first)
    falls = []
    for fraction in fractions:
        changed = [
            delete(tokens, order[: max(1, round(fraction * len(order)))])
            for tokens, order in zip(tokenized, orders, strict=True)
        ]
        falls.append(before - _sigmoid(side * scorer.logits(changed)))
    return float(np.mean(falls))


def _orders(scorer, tokenized, side, weights, seed) -> list[np.ndarray]:
    if weights is not None:
        return strongest_first(weights, side)
    generator = np.random.default_rng(seed)  # random positions among the words read
    return [generator.permutation(min(len(t), scorer.max_length)) for t in tokenized]


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def time_one_review(scorer, tokenized, repeats=5) -> float | None:
    """Milliseconds for the word weights of one review of TIMED_TOKENS tokens, one thread."""
    long_enough = [t for t in tokenized if len(t) >= TIMED_TOKENS]
    if not long_enough:
        return None
    review = [long_enough[0][:TIMED_TOKENS]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        scorer.word_weights(review)  # warm up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            scorer.word_weights(review)
            times.append(1000 * (time.perf_counter() - started))
    finally:
        torch.set_num_threads(threads)
    return float(np.median(times))


def strongest_words(scorer, text=EXAMPLE, shown=6) -> str:
    """The ``shown`` heaviest words of ``text`` by ``scorer``, with their weights."""
    tokens = tokenize_many([text])[0]
    (weights,) = scorer.word_weights([tokens])
    order = np.argsort(-np.abs(weights), kind="stable")[:shown]
    return ", ".join(f"{tokens[i]} {weights[i]:+.2f}" for i in order)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--reviews", type=int, default=500, help="test reviews per bundle")
    parser.add_argument("--k", type=int, action="append", help="words deleted (repeatable)")
    parser.add_argument(
        "--way",
        action="append",
        choices=[*ALTERNATIVES, OWN_TERMS],
        help="measure only these ways beside the served one (repeatable; default all)",
    )
    args = parser.parse_args(argv)
    ks = sorted(set(args.k or [1, 5, 10]))

    header = ["model", "word weights", "ms per review", "ms, 230 words"]
    for k in ks:
        header += [f"fall, top {k}", f"flipped, top {k}"]
    header.append("AOPC")
    rows, examples = [], []
    for folder in args.bundles:
        bundle = load_bundle(folder)
        texts = load_splits(bundle.config.data)["test"].texts[: args.reviews]
        tokenized = tokenize_many(texts)
        ways = ways_to_explain(bundle, args.way)
        for name, scorer in ways.items():
            started = time.perf_counter()
            weights = scorer.word_weights(tokenized)
            per_review = 1000 * (time.perf_counter() - started) / len(tokenized)
            one = time_one_review(scorer, tokenized)
            found = deletion_test(scorer, tokenized, ks, weights)
            area = aopc(scorer, tokenized, weights)
            timed = "" if one is None else f"{one:.0f}"
            rows.append([folder.name, name, f"{per_review:.1f}", timed, *_cells(found, ks, area)])
            examples.append(f"| {folder.name} | {name} | {strongest_words(scorer)} |")
        scorer = next(iter(ways.values()))
        found, area = deletion_test(scorer, tokenized, ks), aopc(scorer, tokenized)
        rows.append([folder.name, RANDOM, "", "", *_cells(found, ks, area)])
        print(f"explain_faithfulness: {folder} done", flush=True)

    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join(["---", "---"] + ["---:"] * (len(header) - 2)) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nThe strongest words of: {EXAMPLE}\n")
    print("| model | word weights | strongest words |\n| --- | --- | --- |")
    print("\n".join(examples))
    return [dict(zip(header, row, strict=True)) for row in rows]


def _cells(found: dict[int, tuple[float, float]], ks: list[int], area: float) -> list[str]:
    cells = []
    for k in ks:
        fall, flipped = found[k]
        cells += [f"{fall:.2f}", f"{100 * flipped:.1f}%"]
    return [*cells, f"{area:.3f}"]


if __name__ == "__main__":
    main()
