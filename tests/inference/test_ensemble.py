import json
import shutil

import numpy as np
import pytest

from critic.errors import CriticError
from critic.evaluation.calibration import sigmoid
from critic.inference.ensemble import build_ensemble, fit_weights
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
    metrics = build_ensemble([nbsvm_bundle, member], tmp_path / "ensemble", log=lambda _: None)
    assert metrics["member_train_seconds"] == pytest.approx(nbsvm_seconds + 200.0, abs=0.01)
