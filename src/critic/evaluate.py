"""Metrics and plots for a binary sentiment classifier (scikit-learn does the counting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn import metrics as skm

from critic.data.batches import BucketedBatches, EncodedSplit


@torch.no_grad()
def predict_split(
    model: torch.nn.Module,
    split: EncodedSplit,
    max_length: int,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """Probability of positive for every review of an encoded split, in the split's order."""
    model.eval()
    logits = np.zeros(len(split), dtype=np.float64)
    for batch in BucketedBatches(split, batch_size, max_length, shuffle=False):
        batch = batch.to(device)
        logits[batch.indices] = model(batch.token_ids, batch.lengths).double().cpu().numpy()
    return 1.0 / (1.0 + np.exp(-logits))


def binary_log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(skm.log_loss(labels, clipped, labels=[0, 1]))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1, ROC-AUC, log loss and the confusion matrix."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = (probabilities >= 0.5).astype(int)
    both_classes = len(np.unique(labels)) == 2
    matrix = skm.confusion_matrix(labels, predicted, labels=[0, 1])
    return {
        "reviews": len(labels),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probabilities)) if both_classes else None,
        "log_loss": binary_log_loss(labels, probabilities),
        # Rows are the true label, columns the prediction: [[TN, FP], [FN, TP]].
        "confusion_matrix": matrix.tolist(),
    }


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 15
) -> float:
    """Expected calibration error of the predicted label's confidence (Guo et al. 2017).

    Each review's confidence is the probability given to the label predicted, max(p, 1 - p);
    the reviews are grouped into ``bins`` equal-width bins of confidence over [0, 1], and the
    ECE is the review-weighted mean gap between a bin's accuracy and its mean confidence.
    0 is perfectly calibrated: of the reviews answered with 80% confidence, 80% are right.
    """
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(labels) == 0:
        raise ValueError("no reviews to measure the calibration on")
    predicted = (probabilities >= 0.5).astype(int)
    confidence = np.where(predicted == 1, probabilities, 1.0 - probabilities)
    correct = (predicted == labels).astype(np.float64)
    # Bins are closed on the right, (k/bins, (k+1)/bins], as in Guo et al.'s code.
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    gaps = np.abs(
        np.bincount(which, weights=correct, minlength=bins)
        - np.bincount(which, weights=confidence, minlength=bins)
    )
    # Per bin, |sum(correct) - sum(confidence)| / n equals the bin's share times its gap.
    return float(gaps[counts > 0].sum() / len(labels))


def plot_evaluation(
    labels: np.ndarray, probabilities: np.ndarray, folder: Path, title: str
) -> list[Path]:
    """Write confusion_matrix.png and roc_curve.png into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(probabilities) >= 0.5).astype(int)
    written = []

    figure, axes = plt.subplots(figsize=(4.5, 4))
    skm.ConfusionMatrixDisplay.from_predictions(
        labels, predicted, labels=[0, 1], display_labels=["negative", "positive"], ax=axes,
        colorbar=False, cmap="Blues",
    )  # fmt: skip
    axes.set_title(f"Confusion matrix\n{title}", fontsize=10)
    figure.tight_layout()
    figure.savefig(folder / "confusion_matrix.png", dpi=120)
    plt.close(figure)
    written.append(folder / "confusion_matrix.png")

    if len(np.unique(labels)) == 2:
        figure, axes = plt.subplots(figsize=(4.5, 4))
        skm.RocCurveDisplay.from_predictions(labels, probabilities, ax=axes, name="critic")
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.set_title(f"ROC curve\n{title}", fontsize=10)
        figure.tight_layout()
        figure.savefig(folder / "roc_curve.png", dpi=120)
        plt.close(figure)
        written.append(folder / "roc_curve.png")
    return written


def plot_curves(history: list[dict], path: Path) -> None:
    """Learning curves (loss and accuracy per epoch) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axes.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    loss_axes.plot(epochs, [row["val_loss"] for row in history], marker="o", label="validation")
    loss_axes.set(xlabel="epoch", ylabel="loss (BCE)", title="Loss")
    loss_axes.legend()
    accuracy_axes.plot(
        epochs, [row["train_accuracy"] for row in history], marker="o", label="train"
    )
    accuracy_axes.plot(
        epochs, [row["val_accuracy"] for row in history], marker="o", label="validation"
    )
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    accuracy_axes.legend()
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)
