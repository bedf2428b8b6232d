"""Offline A/B: the statistics against independent computations, and real bundles end to end."""

import json
import math
import shutil

import numpy as np
import pytest

from critic.data.prepare import load_splits
from critic.data.split import SPLIT_SETTINGS, split_identity
from critic.errors import BundleError, CriticError
from critic.evaluation.compare import (
    CompareError,
    compare_bundles,
    compare_predictions,
    display_names,
    mcnemar_exact_p,
    paired_bootstrap_accuracies,
    score_reviews,
    write_report,
)
from critic.inference.bundle import load_bundle, save_bundle
from critic.inference.ensemble import build_ensemble
from critic.inference.predictor import Predictor
from support.bundles import edit_signed_json
from support.data import csv_text, small_run_config


def binomial_two_sided_p(only_a: int, only_b: int) -> float:
    """McNemar's exact p by hand: twice the smaller tail of Binomial(n, 1/2), at most 1."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("only_a, only_b", [(0, 0), (5, 5), (0, 6), (3, 11), (40, 21), (1, 0)])
def test_mcnemar_p_is_the_exact_binomial_tail(only_a, only_b):
    assert mcnemar_exact_p(only_a, only_b) == pytest.approx(binomial_two_sided_p(only_a, only_b))


def test_the_bootstrap_interval_matches_the_binomial_spread():
    rng = np.random.default_rng(7)
    correct = rng.random((1, 2000)) < 0.8
    accuracies = paired_bootstrap_accuracies(correct, resamples=4000, seed=0)
    assert accuracies.shape == (4000, 1)
    p = correct.mean()
    # The bootstrap's spread of a mean is the binomial standard error, sqrt(p(1-p)/n).
    assert accuracies.std() == pytest.approx(math.sqrt(p * (1 - p) / 2000), rel=0.1)
    assert accuracies.mean() == pytest.approx(p, abs=0.002)


def test_resamples_are_shared_by_the_models():
    # Model b is right exactly where a is, so every paired resample gives them equal accuracy.
    correct = np.random.default_rng(1).random((1, 500)) < 0.6
    accuracies = paired_bootstrap_accuracies(np.vstack([correct, correct]), 500, seed=3)
    assert np.array_equal(accuracies[:, 0], accuracies[:, 1])
    # Small chunks draw the same resamples as one big one.
    chunked = paired_bootstrap_accuracies(correct, 500, seed=3, chunk_cells=700)
    assert np.array_equal(chunked[:, 0], accuracies[:, 0])


def synthetic(reviews=1000, seed=0):
    """Labels, and two models that share most of their answers."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, reviews)
    first = np.where(rng.random(reviews) < 0.85, labels, 1 - labels)
    second = np.where(rng.random(reviews) < 0.03, 1 - first, first)
    # Probabilities on either side of 0.5, never exactly at it.
    as_probability = lambda predicted: np.where(predicted == 1, 0.8, 0.3)  # noqa: E731
    return labels, as_probability(first), as_probability(second)


def test_the_paired_statistics_agree_with_counting_by_hand():
    labels, first, second = synthetic()
    models, (pair,) = compare_predictions(labels, {"a": first, "b": second}, resamples=2000)
    right_a = (first >= 0.5) == labels
    right_b = (second >= 0.5) == labels
    assert [m["accuracy"] for m in models] == [right_a.mean(), right_b.mean()]
    assert [m["correct"] for m in models] == [right_a.sum(), right_b.sum()]
    for model in models:
        assert model["accuracy_low"] < model["accuracy"] < model["accuracy_high"]
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    assert (pair.only_a_correct, pair.only_b_correct) == (only_a, only_b)
    assert pair.agreement == pytest.approx(((first >= 0.5) == (second >= 0.5)).mean())
    assert pair.agreement == pytest.approx(1 - (only_a + only_b) / len(labels))
    assert pair.mcnemar_p == pytest.approx(binomial_two_sided_p(only_a, only_b))
    assert pair.accuracy_difference == pytest.approx(right_a.mean() - right_b.mean())
    assert pair.difference_low <= pair.accuracy_difference <= pair.difference_high
    # Paired: the models share 97% of their answers, so the difference's interval is far
    # narrower than either accuracy's (an unpaired one would be wider than both).
    width = pair.difference_high - pair.difference_low
    assert width < 0.6 * (models[0]["accuracy_high"] - models[0]["accuracy_low"])
    # Its spread is that of the discordant share: sd = sqrt((b + c)/n - (b - c)^2/n^2) / sqrt(n).
    n = len(labels)
    sd = math.sqrt((only_a + only_b) / n - ((only_a - only_b) / n) ** 2) / math.sqrt(n)
    assert width == pytest.approx(2 * 1.96 * sd, rel=0.2)


def test_identical_models_are_indistinguishable():
    labels, first, _ = synthetic(seed=2)
    _, (pair,) = compare_predictions(labels, {"a": first, "b": first.copy()}, resamples=500)
    assert pair.mcnemar_p == 1.0
    assert pair.agreement == 1.0
    assert (pair.accuracy_difference, pair.difference_low, pair.difference_high) == (0, 0, 0)


def test_a_real_difference_is_significant():
    labels = np.array([1, 0] * 100)
    perfect = np.where(labels == 1, 0.9, 0.1)
    coin = np.where(np.arange(200) % 4 < 2, 0.9, 0.1)  # right on half of them
    _, (pair,) = compare_predictions(labels, {"good": perfect, "coin": coin}, resamples=1000)
    assert (pair.only_a_correct, pair.only_b_correct) == (100, 0)
    assert pair.mcnemar_p == pytest.approx(2 / 2**100)
    assert pair.difference_low > 0.4


def test_bad_settings_are_clear_errors():
    labels, first, second = synthetic(reviews=50)
    with pytest.raises(CompareError, match="resamples must be at least 100"):
        compare_predictions(labels, {"a": first, "b": second}, resamples=10)
    with pytest.raises(CompareError, match="confidence"):
        compare_predictions(labels, {"a": first, "b": second}, confidence=1.0)


def test_names_are_the_folders_unless_they_repeat(tmp_path):
    assert display_names([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]
    repeated = display_names([tmp_path / "x" / "lstm", tmp_path / "y" / "lstm"])
    assert repeated == [str(tmp_path / "x" / "lstm"), str(tmp_path / "y" / "lstm")]
    assert display_names([tmp_path / "a", tmp_path / "a"]) == [
        str(tmp_path / "a"),
        f"{tmp_path / 'a'} (2)",
    ]


# --- real bundles --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comparison(trained_bundle, second_bundle):
    return compare_bundles(
        [trained_bundle, second_bundle], resamples=1000, load=Predictor.load, log=lambda _: None
    )


def test_bundles_are_compared_on_their_common_test_split(comparison, trained_bundle, second_bundle):
    test = load_splits(load_bundle(trained_bundle).config.data)["test"]
    assert comparison.reviews["split"] == "test"
    assert comparison.reviews["count"] == len(test)
    # Independently: each bundle's own predictor on the test split, counted here.
    right = [
        (Predictor.load(bundle).predict_proba(test.texts) >= 0.5) == test.labels
        for bundle in (trained_bundle, second_bundle)
    ]
    first, second = comparison.models
    assert first.accuracy == pytest.approx(right[0].mean())
    assert second.accuracy == pytest.approx(right[1].mean())
    # The first bundle's own training run measured the same test accuracy.
    assert first.accuracy == pytest.approx(load_bundle(trained_bundle).metrics["test_accuracy"])
    (pair,) = comparison.pairs
    only_a, only_b = int((right[0] & ~right[1]).sum()), int((right[1] & ~right[0]).sum())
    assert (pair.only_a_correct, pair.only_b_correct) == (only_a, only_b)
    assert pair.mcnemar_p == pytest.approx(binomial_two_sided_p(only_a, only_b))
    assert pair.agreement == pytest.approx(1 - (only_a + only_b) / len(test))
    for model in comparison.models:
        assert model.accuracy_low <= model.accuracy <= model.accuracy_high
        assert model.ms_per_review > 0
        assert model.ms_per_review * model.reviews_per_second == pytest.approx(1000)
    assert pair.difference_low <= pair.accuracy_difference <= pair.difference_high


def test_the_report_is_markdown_json_and_a_plot(comparison, tmp_path):
    written = write_report(comparison, tmp_path / "report")
    assert [path.name for path in written] == ["report.md", "report.json", "accuracy.png"]
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved == json.loads(json.dumps(comparison.to_dict()))
    assert [model["name"] for model in saved["models"]] == [m.name for m in comparison.models]
    markdown = (tmp_path / "report" / "report.md").read_text()
    first = comparison.models[0]
    assert f"| {first.name} |" in markdown
    assert f"{first.accuracy:.2%}" in markdown and "McNemar p" in markdown
    assert (tmp_path / "report" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_the_same_bundle_twice_agrees_with_itself(trained_bundle):
    result = compare_bundles(
        [trained_bundle, trained_bundle],
        resamples=200,
        max_reviews=20,
        load=Predictor.load,
        log=lambda _: None,
    )
    (pair,) = result.pairs
    assert result.reviews["count"] == 20
    assert (pair.mcnemar_p, pair.agreement, pair.accuracy_difference) == (1.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def other_split_bundle(trained_bundle, tmp_path_factory):
    """The trained bundle, saved again as if trained with another split seed."""
    bundle = load_bundle(trained_bundle)
    config = bundle.config.replace(data=bundle.config.data.replace(split_seed=7))
    out = tmp_path_factory.mktemp("other-split") / "lstm"
    return save_bundle(out, config, bundle.vocab, bundle.model, bundle.metrics)


def test_bundles_with_different_splits_are_refused(trained_bundle, other_split_bundle):
    with pytest.raises(CompareError, match="different data or splits") as raised:
        compare_bundles(
            [trained_bundle, other_split_bundle], load=Predictor.load, log=lambda _: None
        )
    assert "split_seed 1234" in str(raised.value) and "split_seed 7" in str(raised.value)
    assert "--source" in str(raised.value)


# One value other than the trained bundle's for each setting that decides the split.
OTHER_SPLIT = {
    "source": "rotten_tomatoes",
    "text_column": "review",
    "label_column": "sentiment",
    "max_reviews": 400,
    "validation_fraction": 0.2,
    "test_fraction": 0.2,
    "split_seed": 99,
}


def test_every_split_setting_is_tried_here():
    assert set(OTHER_SPLIT) == set(SPLIT_SETTINGS)


@pytest.mark.parametrize("setting", sorted(OTHER_SPLIT))
def test_bundles_differing_in_one_split_setting_are_refused_by_compare_and_ensemble(
    trained_bundle, nbsvm_bundle, tmp_path, setting
):
    other = tmp_path / "other"
    shutil.copytree(nbsvm_bundle, other)
    edit_signed_json(
        other, "config.json", lambda c: c["data"].update({setting: OTHER_SPLIT[setting]})
    )
    with pytest.raises(CompareError, match=f"different data or splits.*{setting}"):
        compare_bundles([trained_bundle, other], load=Predictor.load, log=lambda _: None)
    with pytest.raises(CriticError, match=f"different data: {setting} is "):
        build_ensemble([trained_bundle, other], tmp_path / "ensemble", log=lambda _: None)
    assert not (tmp_path / "ensemble").exists()


def test_settings_that_do_not_move_a_review_between_splits_leave_the_split_alone():
    data = small_run_config().data
    assert split_identity(data) == split_identity(
        data.replace(vocab_size=300, max_length=20, rating_column="stars")
    )
    # The embedded reviews under either of their names are the same reviews.
    assert split_identity(data.replace(source="embedded")) == split_identity(
        data.replace(source="imdb")
    )


def test_a_common_source_compares_any_bundles(trained_bundle, other_split_bundle, tmp_path):
    rows = [["review", "sentiment"]] + [
        [f"{text} (copy {i})", label]
        for i in range(10)
        for text, label in (
            ("A wonderful, moving film.", "positive"),
            ("Dull and bad.", "negative"),
        )
    ]
    (tmp_path / "mine.csv").write_text(csv_text(rows))
    result = compare_bundles(
        [trained_bundle, other_split_bundle], str(tmp_path / "mine.csv"),
        text_column="review", label_column="sentiment", resamples=200, load=Predictor.load, log=lambda _: None,
    )  # fmt: skip
    assert result.reviews["split"] == "all" and result.reviews["count"] == 20
    # The same weights: the same answers, whatever split they were said to come from.
    (pair,) = result.pairs
    assert pair.agreement == 1.0


def test_fewer_than_two_bundles_or_a_missing_one_is_a_clear_error(trained_bundle, tmp_path):
    with pytest.raises(CompareError, match="at least two bundles"):
        compare_bundles([trained_bundle], load=Predictor.load, log=lambda _: None)
    with pytest.raises(BundleError, match="no model bundle"):
        compare_bundles(
            [trained_bundle, tmp_path / "missing"], load=Predictor.load, log=lambda _: None
        )
    with pytest.raises(CompareError, match="max_reviews"):
        compare_bundles(
            [trained_bundle, trained_bundle], max_reviews=3, load=Predictor.load, log=lambda _: None
        )


def test_scores_are_the_predictors_probabilities_timed(trained_bundle):
    predictor = Predictor.load(trained_bundle)
    texts = ["A wonderful film.", "Dull and bad.", "Not good at all."] * 10
    scores = score_reviews(predictor, texts, repeats=2)
    assert np.array_equal(scores.probabilities, predictor.predict_proba(texts))
    assert scores.seconds > 0 and scores.reviews_per_second == pytest.approx(30 / scores.seconds)
    with pytest.raises(CompareError, match="repeats"):
        score_reviews(predictor, texts, repeats=0)
