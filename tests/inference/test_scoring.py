"""The scorers between tokens and log-odds, and how an ensemble weighs its members."""

import numpy as np
import pytest
import torch

from critic.data.text import tokenize
from critic.inference.attribution import gradients_in_eval_mode
from critic.inference.bundle import load_bundle
from critic.inference.scoring import (
    EnsembleScorer,
    NBSVMScorer,
    NeuralScorer,
    make_scorer,
    scale_to_unit,
    weighted_log_odds,
)

REVIEWS = ["A wonderful, moving film!", "Not good. Boring and far too long.", "meh", "?!"]


def test_weighted_log_odds_are_the_bias_plus_each_members_weighted_log_odds():
    members = np.array([[1.0, -2.0], [0.5, 4.0], [0.0, 0.0]])  # (reviews, members)
    got = weighted_log_odds(members, [2.0, 0.25], -0.5)
    assert got.tolist() == [-0.5 + 2.0 - 0.5, -0.5 + 1.0 + 1.0, -0.5]


def test_weighted_log_odds_of_a_review_do_not_depend_on_its_neighbours():
    rng = np.random.default_rng(0)
    members, weights = rng.normal(size=(257, 3)), rng.random(3)
    alone = [weighted_log_odds(members[i : i + 1], weights, 0.1)[0] for i in range(len(members))]
    # Exactly equal, not close: a review's answer must not change with the batch it came in.
    assert weighted_log_odds(members, weights, 0.1).tolist() == alone


def test_scale_to_unit_makes_the_strongest_weight_one_and_leaves_zeros_alone():
    assert scale_to_unit(np.array([0.5, -2.0, 1.0])).tolist() == [0.25, -1.0, 0.5]
    assert scale_to_unit(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    assert scale_to_unit(np.zeros(0)).tolist() == []


@pytest.mark.parametrize(
    "fixture, kind",
    [
        ("trained_bundle", NeuralScorer),
        ("nbsvm_bundle", NBSVMScorer),
        ("ensemble_bundle", EnsembleScorer),
    ],
)
def test_every_kind_of_bundle_gets_its_scorer_and_one_weight_per_token_read(request, fixture, kind):
    scorer = make_scorer(load_bundle(request.getfixturevalue(fixture)))
    assert isinstance(scorer, kind)
    tokenized = [tokenize(review) for review in REVIEWS]
    logits = scorer.logits(tokenized)
    assert logits.shape == (len(REVIEWS),) and logits.dtype == np.float64
    weights = scorer.word_weights(tokenized)
    for tokens, row in zip(tokenized, weights, strict=True):
        assert len(row) == min(len(tokens), scorer.max_length)
        assert np.abs(row).max(initial=0.0) <= 1.0 + 1e-12


def test_an_ensemble_scorer_weighs_its_members_calibrated_log_odds(ensemble_bundle):
    bundle = load_bundle(ensemble_bundle)
    scorer = make_scorer(bundle)
    tokenized = [tokenize(review) for review in REVIEWS]
    members = np.stack(
        [
            make_scorer(member).logits(tokenized) / member.calibration.temperature
            for member in bundle.model.members
        ],
        axis=1,
    )
    assert scorer.member_logits(tokenized) == pytest.approx(members)
    long = bundle.model.bias + members @ np.array(bundle.model.weights)
    short = bundle.model.short.bias + members @ np.array(bundle.model.short.weights)
    share = 1 / (1 + (np.array([len(tokens) for tokens in tokenized]) / 60) ** 3)
    assert scorer.logits(tokenized) == pytest.approx((1 - share) * long + share * short)


def test_gradients_flow_in_eval_mode_through_any_rnn_kernel():
    rnn = torch.nn.LSTM(3, 4, batch_first=True).eval()
    inputs = torch.randn(2, 5, 3, requires_grad=True)
    with gradients_in_eval_mode():
        rnn(inputs)[0].sum().backward()
    assert inputs.grad is not None and inputs.grad.abs().sum() > 0
