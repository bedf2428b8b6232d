import json
import shutil

import numpy as np
import pytest

from critic.data.text import tokenize_many
from critic.errors import BundleError, CriticError
from critic.evaluation.calibration import sigmoid
from critic.inference.bundle import ShortReviews, load_bundle
from critic.inference.ensemble import build_ensemble, fit_short_weights, fit_weights, member_logits
from critic.inference.predictor import Predictor
from critic.inference.scoring import ensemble_log_odds, token_counts
from support.bundles import edit_signed_json


def test_stacking_weights_are_never_negative_and_favour_the_informative_member():
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 3, 4000)
    labels = (rng.random(4000) < sigmoid(truth)).astype(int)
    informative = truth + rng.normal(0, 0.5, 4000)
    noise = rng.normal(0, 3, 4000)
    contrary = -truth  # would get a negative weight in plain logistic regression
    weights, bias = fit_weights(np.stack([informative, noise, contrary], axis=1), labels)
    assert (weights >= 0).all()
    assert weights[0] > 0.5 and weights[1] < 0.05 and weights[2] == pytest.approx(0, abs=1e-6)
    assert abs(bias) < 0.2


def test_the_ensemble_is_calibrated_and_reports_its_members(ensemble_bundle):
    metrics = json.loads((ensemble_bundle / "metrics.json").read_text())
    assert [m["name"] for m in metrics["members"]] == ["0-nbsvm", "1-lstm"]
    assert all(m["weight"] >= 0 for m in metrics["members"])
    # Accuracies are shares of reviews answered right; calibration errors are gaps between
    # probabilities and frequencies, so within 0-1; a temperature divides logits.
    right = metrics["test_accuracy"] * metrics["test_reviews"]
    assert 0 <= right <= metrics["test_reviews"] and right == pytest.approx(round(right))
    assert 0 <= metrics["val_accuracy"] <= 1
    assert 0 <= metrics["test_ece_after"] <= 1 and 0 <= metrics["test_ece_before"] <= 1
    assert 0 < metrics["temperature"] < 100
    assert (ensemble_bundle / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    description = json.loads((ensemble_bundle / "ensemble.json").read_text())
    assert [m["weight"] for m in description["members"]] == pytest.approx(
        [m["weight"] for m in metrics["members"]], abs=1e-6
    )


def test_members_trained_on_different_splits_are_refused(trained_bundle, nbsvm_bundle, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(nbsvm_bundle, other)
    edit_signed_json(other, "config.json", lambda config: config["data"].update(split_seed=99))
    with pytest.raises(CriticError, match=r"different data: split_seed is 1234 .* but 99"):
        build_ensemble([trained_bundle, other], tmp_path / "ensemble", log=lambda _: None)
    assert not (tmp_path / "ensemble").exists()


def test_an_ensemble_needs_two_members_and_never_overwrites_one(trained_bundle, tmp_path):
    with pytest.raises(CriticError, match="at least two"):
        build_ensemble([trained_bundle], tmp_path / "e", log=lambda _: None)
    copy = tmp_path / "copy"
    shutil.copytree(trained_bundle, copy)
    with pytest.raises(CriticError, match="would overwrite the member"):
        build_ensemble([trained_bundle, copy], copy, log=lambda _: None)
    assert (copy / "bundle.json").is_file()


def test_the_members_training_cost_counts_the_word_vectors_and_pretraining_before_it(
    trained_bundle, nbsvm_bundle, tmp_path
):
    # A recipe with --embeddings word2vec trains word2vec before its epochs, and one with
    # --pretrain-epochs a language model: both are part of its cost.
    member = tmp_path / "member"
    shutil.copytree(trained_bundle, member)
    edit_signed_json(
        member,
        "metrics.json",
        lambda m: m.update(train_seconds=100.0, embeddings_seconds=60.0, pretrain_seconds=40.0),
    )
    nbsvm_seconds = json.loads((nbsvm_bundle / "metrics.json").read_text())["train_seconds"]
    metrics = build_ensemble(
        [nbsvm_bundle, member], tmp_path / "ensemble", short_reviews=False, log=lambda _: None
    )
    assert metrics["member_train_seconds"] == pytest.approx(nbsvm_seconds + 200.0, abs=0.01)
    # Without short-review weights: one set, as ensembles were before them.
    assert "short" not in json.loads((tmp_path / "ensemble" / "ensemble.json").read_text())
    assert "test_short_accuracy" not in metrics
    assert Predictor.load(tmp_path / "ensemble").bundle.model.short is None


def test_short_review_weights_trust_the_member_that_is_right_on_short_reviews():
    # Member 0 knows long reviews and guesses on short ones; member 1 the other way round.
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(120, 400, 3000), rng.integers(8, 30, 3000)])
    truth = rng.normal(0, 3, 6000)
    labels = (rng.random(6000) < sigmoid(truth)).astype(int)
    long = lengths > 60
    knows_long = np.where(long, truth, 0) + rng.normal(0, 3, 6000) * ~long
    knows_short = np.where(long, 0, truth) + rng.normal(0, 3, 6000) * long
    members = np.stack([knows_long, knows_short], axis=1)
    weights, bias, short = fit_short_weights(members, lengths, labels)
    assert weights[0] > 0.7 and weights[1] < 0.15
    assert short.weights[1] > 0.7 and short.weights[0] < 0.15
    assert min(weights) >= 0 and min(short.weights) >= 0
    # The gate: one half at the midpoint, nearly all short at a snippet's length.
    assert short.share(np.array([60.0]))[0] == pytest.approx(0.5)
    assert short.share(np.array([20.0]))[0] > 0.95 > 0.05 > short.share(np.array([180.0]))[0]
    mixed = ensemble_log_odds(members, weights, bias, short, lengths)
    plain = members @ fit_weights(members, labels)[0]
    assert ((mixed >= 0) == labels).mean() > ((plain >= 0) == labels).mean() + 0.05


def test_the_served_ensemble_mixes_its_two_sets_by_length_as_fitted(ensemble_bundle):
    metrics = json.loads((ensemble_bundle / "metrics.json").read_text())
    description = json.loads((ensemble_bundle / "ensemble.json").read_text())
    assert len(description["short"]["weights"]) == 2 and description["short"]["midpoint"] == 60
    assert metrics["test_short_reviews"] > 0
    assert 0 <= metrics["test_short_accuracy"] <= 1
    assert [m["short_weight"] for m in metrics["members"]] == pytest.approx(
        description["short"]["weights"], abs=1e-6
    )
    predictor = Predictor.load(ensemble_bundle)
    ensemble = predictor.bundle.model
    reviews = ["Superb.", "A dull film with a clumsy plot. " * 30]
    tokenized = tokenize_many(reviews)
    members = np.stack(
        [member_logits(Predictor.load(m.path), tokenized) for m in ensemble.members], axis=1
    )
    expected = ensemble_log_odds(
        members, ensemble.weights, ensemble.bias, ensemble.short, token_counts(tokenized)
    )
    assert np.allclose(predictor.scorer.logits(tokenized), expected, atol=1e-9)
    for review, tokens in zip(reviews, tokenized, strict=True):
        answer = predictor.predict(review, explain=True)
        assert [w["word"] for w in answer["words"]] == tokens[: predictor.scorer.max_length]


def test_short_review_weights_that_do_not_fit_the_members_are_refused(ensemble_bundle, tmp_path):
    copy = tmp_path / "ensemble"
    shutil.copytree(ensemble_bundle, copy)
    edit_signed_json(copy, "ensemble.json", lambda e: e["short"].update(weights=[0.5]))
    with pytest.raises(BundleError, match="short-review weights must be one per member"):
        load_bundle(copy)
    assert ShortReviews([1.0], 0.0).to_dict()["midpoint"] == 60.0


def test_reviews_with_nothing_to_crop_give_one_set_of_weights(
    trained_bundle, nbsvm_bundle, tmp_path, monkeypatch
):
    import critic.inference.ensemble as ensemble_module
    from critic.data.sources import Reviews

    monkeypatch.setattr(ensemble_module, "short_crops", lambda reviews, seed: Reviews([], []))
    lines = []
    metrics = build_ensemble([nbsvm_bundle, trained_bundle], tmp_path / "e", log=lines.append)
    assert any("no review has a sentence of 4 words" in line for line in lines)
    assert "test_short_accuracy" not in metrics
    assert "short" not in json.loads((tmp_path / "e" / "ensemble.json").read_text())
