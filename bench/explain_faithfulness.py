"""Benchmark: do the word weights name the words that drove the answer?

    python bench/explain_faithfulness.py bench/out/models/{lstm,gru,bilstm,cnn-lstm} \
        bench/out/models/{attention,nbsvm,ensemble} --reviews 300
    python bench/explain_faithfulness.py runs/lstm --reviews 200 --k 1 --k 5

A deletion test (DeYoung et al. 2020's "comprehensiveness"): for each of the first N reviews
of the bundle's own test split, take the k words whose weights pushed hardest towards the
label the model gave, delete them from the review, and score it again. The more of its
answer the model loses, the better the weights named what drove it. Reported per bundle and
way of weighting, for each k: the mean fall of the log-odds towards the label first given,
and the share of answers that flip. The same deletions at random positions are the floor.

Every bundle is judged by the word weights critic serves (``Predictor.predict(...,
explain=True)``: gradient x input for most neural models, attention's own terms, nbsvm's
coefficients, an ensemble's weighted mix). Neural models without weights of their own are
also judged by integrated gradients (Sundararajan et al. 2017), defined here: the usual
candidate to replace gradient x input, measured to see whether it should.
Prints a Markdown table; the figures in docs/benchmarks.md came from the first command above.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from critic.data.prepare import load_splits
from critic.data.text import tokenize_many
from critic.data.vocab import PAD_ID
from critic.inference.bundle import load_bundle
from critic.inference.scoring import NeuralScorer, gradients_in_eval_mode, make_scorer

RANDOM = "random words"
GRADIENT_X_INPUT = "gradient x input"
INTEGRATED_GRADIENTS = "integrated gradients"
IG_STEPS = 16
ROWS_PER_PASS = 256  # rows (reviews x alphas) in one forward and backward pass


def integrated_gradients(model, token_ids, lengths, steps=IG_STEPS, alphas=None):
    """(batch, time) each token's share of its review's logit, by integrated gradients.

    From an all-zero embedding baseline: ``x_t . mean_k grad f(alpha_k x)`` at the midpoints
    ``alpha_k = (k + 1/2) / steps``; the shares add up to ``f(x) - f(0)`` as the steps grow.
    ``alphas=[1.0]`` is plain gradient x input. ``model`` is in eval mode and has an
    ``embedding``; padding gets 0.
    """
    alphas = [(k + 0.5) / steps for k in range(steps)] if alphas is None else alphas
    batch = token_ids.size(0)
    # Several alphas share a pass, each review repeated once per alpha: an RNN's cost lies in
    # its steps through time far more than in its batch.
    group = max(1, ROWS_PER_PASS // batch)
    captured: dict[str, torch.Tensor] = {}

    def scaled(module, inputs, output):
        captured["input"] = output[:batch].detach()
        output = output * captured["alpha"]
        output.retain_grad()
        captured["scaled"] = output
        return output

    hook = model.embedding.register_forward_hook(scaled)
    total = torch.zeros((), device=token_ids.device)
    try:
        with gradients_in_eval_mode():
            for start in range(0, len(alphas), group):
                chunk = torch.tensor(alphas[start : start + group], device=token_ids.device)
                captured["alpha"] = chunk.repeat_interleave(batch).view(-1, 1, 1)
                rows = model(token_ids.repeat(len(chunk), 1), lengths.repeat(len(chunk)))
                rows.sum().backward()  # each row's logit depends on that row only
                grad = captured["scaled"].grad  # (chunk * batch, time, embedding)
                total = total + grad.view(len(chunk), batch, *grad.shape[1:]).sum(0)
    finally:
        hook.remove()
        model.zero_grad(set_to_none=True)
    shares = (captured["input"] * total / len(alphas)).sum(-1)  # (batch, time)
    return shares.masked_fill(token_ids == PAD_ID, 0.0).detach()


class IntegratedGradientsScorer(NeuralScorer):
    """critic's neural scorer with its word weights by :func:`integrated_gradients`."""

    def token_scores(self, token_ids, lengths):
        return integrated_gradients(self.model, token_ids, lengths)


def ways_to_explain(bundle) -> dict[str, object]:
    """Name -> scorer: critic's own word weights first, then the alternative if any."""
    served = make_scorer(bundle)
    if bundle.kind == "neural" and not hasattr(bundle.model, "word_weights"):
        return {GRADIENT_X_INPUT: served, INTEGRATED_GRADIENTS: IntegratedGradientsScorer(bundle)}
    if bundle.kind == "neural":
        name = "attention" if "attention" in bundle.config.model.name else "its own weights"
    else:
        name = {"nbsvm": "n-gram coefficients", "ensemble": "members' weights"}[bundle.kind]
    return {name: served}


def delete(tokens: list[str], positions: np.ndarray) -> list[str]:
    gone = set(int(p) for p in positions)
    kept = [token for index, token in enumerate(tokens) if index not in gone]
    return kept or ["."]  # an empty review has no answer; one full stop reads as nothing


def deletion_test(scorer, tokenized, ks, weights=None, seed=0) -> dict[int, tuple[float, float]]:
    """k -> (mean fall of the log-odds towards the first label, share flipped)."""
    first = scorer.logits(tokenized)
    side = np.where(first >= 0, 1.0, -1.0)
    if weights is None:  # random positions among the words read
        generator = np.random.default_rng(seed)
        read = [min(len(t), scorer.max_length) for t in tokenized]
        orders = [generator.permutation(n) for n in read]
    else:
        # Strongest evidence for the label given first: weight times its side, largest first.
        orders = [np.argsort(-(w * s), kind="stable") for w, s in zip(weights, side, strict=True)]
    results = {}
    for k in ks:
        changed = [
            delete(tokens, order[:k]) for tokens, order in zip(tokenized, orders, strict=True)
        ]
        after = scorer.logits(changed)
        results[k] = (float(np.mean(side * (first - after))), float(np.mean(side * after < 0)))
    return results


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--reviews", type=int, default=500, help="test reviews per bundle")
    parser.add_argument("--k", type=int, action="append", help="words deleted (repeatable)")
    args = parser.parse_args(argv)
    ks = sorted(set(args.k or [1, 5, 10]))

    header = ["model", "word weights", "ms per review"]
    for k in ks:
        header += [f"fall, top {k}", f"flipped, top {k}"]
    rows = []
    for folder in args.bundles:
        bundle = load_bundle(folder)
        texts = load_splits(bundle.config.data)["test"].texts[: args.reviews]
        tokenized = tokenize_many(texts)
        ways = ways_to_explain(bundle)
        for name, scorer in ways.items():
            started = time.perf_counter()
            weights = scorer.word_weights(tokenized)
            per_review = 1000 * (time.perf_counter() - started) / len(tokenized)
            found = deletion_test(scorer, tokenized, ks, weights)
            rows.append([folder.name, name, f"{per_review:.1f}", *_cells(found, ks)])
        scorer = next(iter(ways.values()))
        rows.append([folder.name, RANDOM, "", *_cells(deletion_test(scorer, tokenized, ks), ks)])
        print(f"explain_faithfulness: {folder} done", flush=True)

    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join(["---", "---"] + ["---:"] * (len(header) - 2)) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return [dict(zip(header, row, strict=True)) for row in rows]


def _cells(found: dict[int, tuple[float, float]], ks: list[int]) -> list[str]:
    cells = []
    for k in ks:
        fall, flipped = found[k]
        cells += [f"{fall:.2f}", f"{100 * flipped:.1f}%"]
    return cells


if __name__ == "__main__":
    main()
