"""bench/explain_faithfulness.py: the deletion test behind the word-weights benchmark."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from critic.data.prepare import load_splits
from critic.data.text import tokenize_many
from critic.inference.bundle import load_bundle
from critic.inference.scoring import make_scorer, scale_to_unit
from support.bench import BENCH, load_bench_script
from support.bundles import small_bundle

SCRIPT = BENCH / "explain_faithfulness.py"
ONLY_GRADIENT = ["--way", "gradient x input"]


@pytest.fixture(scope="module")
def faithfulness():
    return load_bench_script("explain_faithfulness")


def test_a_neural_bundle_is_explained_by_what_it_serves_first_then_the_others(
    faithfulness, trained_bundle
):
    bundle = load_bundle(trained_bundle)
    ways = faithfulness.ways_to_explain(bundle)
    assert next(iter(ways)) == faithfulness.SERVED_NEURAL == "greedy deletion, 5 of 20, settled"
    assert set(ways) == {faithfulness.SERVED_NEURAL, *faithfulness.ALTERNATIVES}
    tokenized = tokenize_many(["A dull, lifeless film.", "I loved every minute of it!"])
    served = make_scorer(bundle).word_weights(tokenized)
    for name, scorer in ways.items():
        weights = scorer.word_weights(tokenized)
        assert [len(w) for w in weights] == [len(w) for w in served], name
        if name == faithfulness.SERVED_NEURAL:
            assert all(np.allclose(a, b) for a, b in zip(weights, served, strict=True))
    only = faithfulness.ways_to_explain(bundle, ["gradient x input"])
    assert list(only) == ["greedy deletion, 5 of 20, settled", "gradient x input"]


def test_a_model_with_terms_of_its_own_is_also_judged_by_them(faithfulness, tmp_path):
    bundle = load_bundle(small_bundle(tmp_path, "attention"))
    ways = faithfulness.ways_to_explain(bundle, [faithfulness.OWN_TERMS])
    assert list(ways) == [faithfulness.SERVED_NEURAL, faithfulness.OWN_TERMS]
    tokenized = tokenize_many(["A dull, lifeless film.", "I loved every minute of it!"])
    own = ways[faithfulness.OWN_TERMS]
    for tokens, weights in zip(tokenized, own.word_weights(tokenized), strict=True):
        ids = torch.from_numpy(own.vocab.encode(tokens).astype(np.int64)).unsqueeze(0)
        terms = bundle.model.word_weights(ids, torch.tensor([ids.size(1)]))[0].double().numpy()
        assert np.allclose(weights, scale_to_unit(terms))


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
    area, random_area = (
        faithfulness.aopc(scorer, tokenized, weights),
        faithfulness.aopc(scorer, tokenized),
    )
    assert 0 <= random_area < area <= 1


def test_aopc_is_the_mean_fall_in_probability_over_the_deletion_curve(faithfulness):
    class Counting:
        """A model whose log-odds are the number of words "good" in the review."""

        max_length = 100

        def logits(self, tokenized):
            return np.array([float(tokens.count("good")) for tokens in tokenized])

    tokens = ["good"] * 4 + ["x"] * 6  # 10 words: deleting 1, 1, 1, 2 and 5 of them
    weights = np.array([1.0, 0.9, 0.8, 0.7] + [0.0] * 6)
    sigmoid = faithfulness._sigmoid
    expected = np.mean([sigmoid(4.0) - sigmoid(4.0 - k) for k in (1, 1, 1, 2, 4)])
    assert faithfulness.aopc(Counting(), [tokens], [weights]) == pytest.approx(expected)


def test_a_neural_bundle_is_measured_and_the_tables_printed(
    faithfulness, trained_bundle, cache_dir
):
    completed = subprocess.run(
        [sys.executable, SCRIPT, trained_bundle, "--reviews", "8", "--k", "2", *ONLY_GRADIENT],
        capture_output=True,
        text=True,
        env={**os.environ, "CRITIC_CACHE": str(cache_dir)},
        timeout=300,
        check=True,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("|")]
    assert lines[0].startswith(
        "| model | word weights | ms per review | ms, 230 words | fall, top 2 |"
    )
    assert lines[0].endswith("| AOPC |")
    assert [line.split(" | ")[1] for line in lines[2:5]] == [
        "greedy deletion, 5 of 20, settled",
        "gradient x input",
        "random words",
    ]
    assert lines[5] == "| model | word weights | strongest words |"
    assert [line.split(" | ")[1] for line in lines[7:]] == [
        "greedy deletion, 5 of 20, settled",
        "gradient x input",
    ]
    assert "superb" in completed.stdout  # the example's words, with their weights
