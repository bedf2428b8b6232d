import numpy as np
import pytest

from critic.evaluation.calibration import expected_calibration_error
from critic.evaluation.evaluate import classification_metrics, plot_curves, plot_evaluation


def test_metrics_on_a_known_example():
    labels = np.array([1, 1, 1, 0, 0, 0])
    probabilities = np.array([0.9, 0.8, 0.3, 0.2, 0.6, 0.1])
    metrics = classification_metrics(labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["confusion_matrix"] == [[2, 1], [1, 2]]
    assert metrics["roc_auc"] == pytest.approx(8 / 9)
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.3, 0.8, 0.4, 0.9]))
    assert metrics["log_loss"] == pytest.approx(expected_loss)


def test_one_class_only_has_no_roc_auc_but_still_counts():
    metrics = classification_metrics(np.array([1, 1]), np.array([0.7, 0.2]))
    assert metrics["roc_auc"] is None
    assert metrics["accuracy"] == 0.5


def test_plots_are_written_as_png(tmp_path):
    labels = np.array([1, 0, 1, 0])
    written = plot_evaluation(labels, np.array([0.8, 0.3, 0.4, 0.1]), tmp_path, "test")
    assert [p.name for p in written] == ["confusion_matrix.png", "roc_curve.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = [
        {"epoch": 1, "train_loss": 0.6, "val_loss": 0.5, "train_accuracy": 0.6, "val_accuracy": 0.7}
    ]
    plot_curves(history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_calibration_error_on_a_hand_computed_example():
    # Confidences 0.9, 0.9 (one right: gap 0.4 on half the reviews), 0.78 (right: gap 0.22 on a
    # quarter) and 0.62 (right: gap 0.38 on a quarter), each group in a bin of its own.
    labels = np.array([1, 0, 0, 1])
    probabilities = np.array([0.9, 0.9, 0.22, 0.62])
    expected = 0.5 * 0.4 + 0.25 * 0.22 + 0.25 * 0.38
    assert expected_calibration_error(labels, probabilities) == pytest.approx(expected)


def test_a_calibrated_model_has_no_calibration_error_and_bins_matter():
    # Ten answers at 70% confidence, seven of them right: calibrated.
    labels = np.array([1] * 7 + [0] * 3)
    assert expected_calibration_error(labels, np.full(10, 0.7)) == pytest.approx(0.0)
    # 0.95 right and 0.55 wrong: one bin over [0.5, 1] averages the gaps away, 15 bins do not.
    labels, probabilities = np.array([1, 0]), np.array([0.95, 0.55])
    assert expected_calibration_error(labels, probabilities, bins=1) == pytest.approx(0.25)
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.3)


def test_a_calibrated_model_has_an_ece_near_zero_and_an_overconfident_one_does_not():
    from critic.evaluation.calibration import expected_calibration_error

    rng = np.random.default_rng(0)
    probabilities = rng.random(50000)
    labels = (rng.random(50000) < probabilities).astype(int)
    assert expected_calibration_error(labels, probabilities) < 0.01
    # Always 99% sure, right 70% of the time: the gap is 0.29.
    sure = np.where(rng.random(10000) < 0.5, 0.99, 0.01)
    right = rng.random(10000) < 0.7
    labels = np.where(right, sure > 0.5, sure < 0.5).astype(int)
    assert expected_calibration_error(labels, sure) == pytest.approx(0.29, abs=0.02)


def test_reliability_bins_count_every_review_once():
    from critic.evaluation.calibration import ECE_BINS, reliability_bins

    probabilities = np.array([0.0, 0.2, 0.5, 0.51, 0.8, 0.97, 1.0])
    labels = np.array([0, 1, 1, 1, 0, 1, 1])
    table = reliability_bins(labels, probabilities)
    assert sum(table["count"]) == len(labels)
    assert len(table["count"]) <= ECE_BINS
    assert all(0.5 <= c <= 1 for c in table["confidence"])
    assert table["lower"] == sorted(table["lower"])


def test_rating_metrics_on_a_known_example():
    from critic.evaluation.calibration import rating_metrics

    metrics = rating_metrics(np.array([1, 2, 9, 10]), np.array([1, 3, 8, 10]))
    assert metrics["rating_mae"] == pytest.approx(0.5)
    assert metrics["rating_spearman"] == pytest.approx(1.0)


def test_the_reliability_diagram_is_a_png(tmp_path):
    from critic.evaluation.calibration import Calibration, calibration_metrics
    from critic.evaluation.evaluate import plot_reliability

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, 500)
    labels = (rng.random(500) < 1 / (1 + np.exp(-logits / 2))).astype(int)
    metrics = calibration_metrics(Calibration(2.0), {"test": (labels, logits, None)})
    assert metrics["test_ece_after"] < metrics["test_ece_before"]
    plot_reliability(metrics["reliability"], tmp_path / "reliability.png", "a title")
    assert (tmp_path / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_by_default_a_model_is_judged_on_its_own_data_and_split():
    from critic.config import DataConfig
    from critic.evaluation.evaluate import evaluation_data

    trained_on = DataConfig(source="mine.csv", text_column="review", max_reviews=500)
    assert evaluation_data(trained_on) == (trained_on, "test")
    other, split = evaluation_data(trained_on, "validation", data="rotten_tomatoes")
    assert split == "validation" and other == trained_on.replace(
        source="rotten_tomatoes", max_reviews=None
    )
    every, split = evaluation_data(trained_on, "test", source="x.jsonl", label_column="stars")
    assert split == "all"  # every review of a source, whatever split was asked for
    assert (every.source, every.text_column, every.label_column) == ("x.jsonl", "review", "stars")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"split": "everything"},
            "--split must be train, validation, test or all, not 'everything'",
        ),
        (
            {"data": "embedded", "source": "rotten_tomatoes"},
            "give --source (every review of it) or --data (a split of it), not both",
        ),
    ],
)
def test_a_wrong_choice_of_reviews_is_refused_with_its_reason(arguments, message):
    from critic.config import DataConfig
    from critic.errors import CriticError
    from critic.evaluation.evaluate import evaluation_data

    with pytest.raises(CriticError) as raised:
        evaluation_data(DataConfig(), **arguments)
    assert str(raised.value) == message


def test_evaluating_a_bundle_matches_the_metrics_it_was_saved_with(trained_bundle, tmp_path):
    import json

    from critic.evaluation.evaluate import evaluate_predictor
    from critic.inference.predictor import Predictor

    predictor = Predictor.load(trained_bundle)
    result = evaluate_predictor(
        predictor, predictor.bundle.config.data, "test", plots=tmp_path / "plots"
    )
    saved = json.loads((trained_bundle / "metrics.json").read_text())
    assert result["model"] == "lstm" and result["kind"] == "neural" and result["split"] == "test"
    assert result["accuracy"] == pytest.approx(saved["test_accuracy"])
    assert result["ece_after"] == pytest.approx(saved["test_ece_after"])
    assert "reliability" not in result  # drawn, not printed
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "confusion_matrix.png",
        "reliability.png",
        "roc_curve.png",
    ]
    sample = evaluate_predictor(predictor, predictor.bundle.config.data, "all", max_reviews=40)
    assert sample["reviews"] == 40 and sample["split"] == "all"
