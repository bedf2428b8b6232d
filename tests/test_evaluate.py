import numpy as np
import pytest

from critic.evaluate import classification_metrics, plot_curves, plot_evaluation


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
