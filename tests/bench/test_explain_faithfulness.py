"""bench/explain_faithfulness.py: the deletion test behind the word-weights benchmark."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from critic.config import ModelConfig
from critic.data.prepare import load_splits
from critic.data.text import tokenize_many
from critic.inference.bundle import load_bundle
from critic.inference.scoring import make_scorer, scale_to_unit
from critic.models import build_model
from support.bench import BENCH, load_bench_script
from support.data import random_batch

SCRIPT = BENCH / "explain_faithfulness.py"


@pytest.fixture(scope="module")
def faithfulness():
    return load_bench_script("explain_faithfulness")


def logit_at_zero_embeddings(model, token_ids, lengths) -> torch.Tensor:
    """The baseline integrated gradients starts from: the same review, every vector zero."""
    hook = model.embedding.register_forward_hook(lambda module, inputs, output: output * 0)
    try:
        with torch.no_grad():
            return model(token_ids, lengths)
    finally:
        hook.remove()


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(name="lstm"),
        ModelConfig(name="gru", bidirectional=True),
        ModelConfig(name="bilstm", pooling="max"),
        ModelConfig(name="cnn-lstm", pool_size=2),
    ],
    ids=lambda c: f"{c.name}-{c.pooling}",
)
def test_integrated_gradients_add_up_to_the_logit_less_the_baselines(faithfulness, config):
    torch.manual_seed(0)
    model = build_model(config.replace(vocab_size=50, embedding_dim=8, hidden_dim=6)).eval()
    with torch.no_grad():  # larger weights than at initialisation: a model far from linear
        for parameter in model.parameters():
            parameter.mul_(3.0)
    token_ids, lengths = random_batch()
    # 128 alphas over 6 reviews: several passes of ROWS_PER_PASS rows, summed.
    shares = faithfulness.integrated_gradients(model, token_ids, lengths, steps=128)
    with torch.no_grad():
        logits = model(token_ids, lengths)
    moved = logits - logit_at_zero_embeddings(model, token_ids, lengths)
    assert moved.abs().max() > 0.3, "the check needs reviews that moved the logit"
    # Max-pooling and ReLU bend the path from 0 to x where another step or filter takes over;
    # the midpoint rule converges slowly across such kinks, and fast elsewhere.
    kinked = config.pooling == "max" or config.name == "cnn-lstm"
    tolerance = 0.03 if kinked else 1e-3
    assert torch.allclose(shares.sum(1), moved, rtol=tolerance, atol=tolerance)
    assert (shares[token_ids == 0] == 0).all()
    assert all(p.grad is None for p in model.parameters()), "no gradients left behind"
    # One step at alpha = 1 is plain gradient x input, and it does not add up.
    plain = faithfulness.integrated_gradients(model, token_ids, lengths, alphas=[1.0])
    assert (plain.sum(1) - moved).abs().max() > 3 * tolerance


def test_gradient_x_input_here_is_the_served_word_weights(faithfulness, trained_bundle):
    bundle = load_bundle(trained_bundle)
    tokenized = tokenize_many(["A dull, lifeless film.", "I loved every minute of it!"])
    served = make_scorer(bundle).word_weights(tokenized)
    scorer = faithfulness.IntegratedGradientsScorer(bundle)
    encoded = scorer._encode(tokenized)
    for chosen, token_ids, lengths in scorer._batches(encoded):
        plain = faithfulness.integrated_gradients(scorer.model, token_ids, lengths, alphas=[1.0])
        for row, index in enumerate(chosen):
            expected = scale_to_unit(plain[row, : len(served[index])].double().numpy())
            assert np.allclose(served[index], expected, atol=1e-6)
    by_ig = scorer.word_weights(tokenized)
    assert [len(w) for w in by_ig] == [len(w) for w in served]
    assert not all(np.allclose(a, b) for a, b in zip(by_ig, served, strict=True))


def test_deleting_keeps_the_order_and_never_leaves_an_empty_review(faithfulness):
    assert faithfulness.delete(["a", "b", "c", "d"], np.array([1, 3])) == ["a", "c"]
    assert faithfulness.delete(["a"], np.array([0])) == ["."]


def test_the_strongest_words_move_the_answer_more_than_random_ones(faithfulness, nbsvm_bundle):
    bundle = load_bundle(nbsvm_bundle)
    tokenized = tokenize_many(load_splits(bundle.config.data)["test"].texts)
    (name, scorer), *_ = faithfulness.ways_to_explain(bundle).items()
    assert name == "n-gram coefficients"
    weights = scorer.word_weights(tokenized)
    strongest = faithfulness.deletion_test(scorer, tokenized, [1, 3], weights)
    random = faithfulness.deletion_test(scorer, tokenized, [1, 3])
    for k in (1, 3):
        fall, flipped = strongest[k]
        assert 0 <= flipped <= 1
        assert fall > random[k][0] + 0.05, (k, strongest, random)
    assert strongest[3][0] > strongest[1][0]  # deleting more of the evidence loses more


def test_a_neural_bundle_is_explained_both_ways_and_the_table_printed(
    faithfulness, trained_bundle, cache_dir
):
    assert list(faithfulness.ways_to_explain(load_bundle(trained_bundle))) == [
        "gradient x input",
        "integrated gradients",
    ]
    completed = subprocess.run(
        [sys.executable, SCRIPT, trained_bundle, "--reviews", "8", "--k", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "CRITIC_CACHE": str(cache_dir)},
        timeout=300,
        check=True,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| model | word weights | ms per review | fall, top 2 |")
    assert [line.split(" | ")[1] for line in lines[2:]] == [
        "gradient x input",
        "integrated gradients",
        "random words",
    ]
