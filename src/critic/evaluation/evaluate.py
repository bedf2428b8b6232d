"""Metrics and plots for a binary sentiment classifier (scikit-learn does the counting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from sklearn import metrics as skm

from critic.config import DataConfig
from critic.data.batches import BucketedBatches, EncodedSplit
from critic.errors import CriticError
from critic.evaluation.calibration import (
    ECE_BINS,
    Calibration,
    binary_log_loss,
    calibration_metrics,
    sigmoid,
)

SPLITS = ("train", "validation", "test", "all")


@torch.no_grad()
def predict_split_logits(
    model: torch.nn.Module,
    split: EncodedSplit,
    max_length: int,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """Log-odds of positive for every review of an encoded split, in the split's order."""
    model.eval()
    logits = np.zeros(len(split), dtype=np.float64)
    for batch in BucketedBatches(split, batch_size, max_length, shuffle=False):
        batch = batch.to(device)
        logits[batch.indices] = model(batch.token_ids, batch.lengths).double().cpu().numpy()
    return logits


def predict_split(
    model: torch.nn.Module,
    split: EncodedSplit,
    max_length: int,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """Probability of positive for every review of an encoded split, in the split's order."""
    return sigmoid(predict_split_logits(model, split, max_length, device, batch_size))


def split_metrics(split: str, labels: np.ndarray, logits: np.ndarray) -> dict:
    """``{split}_accuracy`` and ``{split}_loss`` (log loss) of log-odds against the labels."""
    return {
        f"{split}_accuracy": float(((logits >= 0) == labels).mean()),
        f"{split}_loss": binary_log_loss(labels, sigmoid(logits)),
    }


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
        labels,
        predicted,
        labels=[0, 1],
        display_labels=["negative", "positive"],
        ax=axes,
        colorbar=False,
        cmap="Blues",
    )
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


def plot_reliability(reliability: dict, path: Path, title: str = "") -> None:
    """A reliability diagram (accuracy against confidence per bin), before and after
    calibration, from the bins that :func:`reliability_bins` gives: ``{"before": ...,
    "after": ...}``, each with its ``ece``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes_row = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for axes, (name, label) in zip(
        axes_row, (("before", "raw probability"), ("after", "calibrated score")), strict=True
    ):
        table = reliability[name]
        width = 1.0 / reliability.get("bins", ECE_BINS)
        axes.bar(
            table["lower"],
            table["accuracy"],
            width=width,
            align="edge",
            alpha=0.75,
            edgecolor="black",
            label="accuracy",
        )
        axes.plot(
            table["confidence"],
            table["accuracy"],
            "o",
            color="darkred",
            markersize=3,
            label="(mean confidence, accuracy)",
        )
        axes.plot([0.5, 1], [0.5, 1], linestyle=":", color="grey", label="perfect calibration")
        axes.set(
            xlim=(0.5, 1.0),
            ylim=(0.0, 1.0),
            xlabel="confidence",
            title=f"{label}: ECE {table['ece']:.3f}",
        )
        axes.grid(alpha=0.3)
    axes_row[0].set_ylabel("accuracy")
    axes_row[0].legend(loc="upper left", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)


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


class Judged(Protocol):
    """What :func:`evaluate_predictor` needs of a trained model: ``critic.inference.predictor.Predictor``
    (which sits above this module, so it is described here rather than imported)."""

    name: str
    kind: str
    calibration: Calibration
    bundle: Any  # .config: the RunConfig it was trained with

    def predict_logits(self, texts: list[str]) -> np.ndarray: ...

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...

    def assess(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Log-odds and domain scores (at most 1: typical; None without a domain model)."""
        ...


def domain_metrics(labels: np.ndarray, logits: np.ndarray, domain_scores: np.ndarray) -> dict:
    """How many answers the out-of-domain signal calls typical, and the accuracy on those
    beside the accuracy on the rest: what the signal is worth on this data."""
    typical = np.asarray(domain_scores) <= 1.0
    right = (np.asarray(logits) >= 0) == (np.asarray(labels) == 1)
    return {
        "typical_share": float(typical.mean()),
        "accuracy_typical": float(right[typical].mean()) if typical.any() else None,
        "accuracy_unusual": float(right[~typical].mean()) if (~typical).any() else None,
        "median_score": float(np.median(domain_scores)),
    }


def evaluation_data(
    trained_on: DataConfig,
    split: str = "test",
    data: str | None = None,
    source: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> tuple[DataConfig, str]:
    """The reviews to judge a model on, and the split: by default the model's own data and
    split; ``data``: a split of another source; ``source``: every review of one (``all``).
    The columns default to those it was trained with."""
    if split not in SPLITS:
        raise CriticError(f"--split must be train, validation, test or all, not {split!r}")
    if source is not None and data is not None:
        raise CriticError("give --source (every review of it) or --data (a split of it), not both")
    columns = {"text_column": text_column, "label_column": label_column}
    config = trained_on.replace(
        **{key: value for key, value in columns.items() if value is not None}
    )
    if source is not None:
        return config.replace(source=source, max_reviews=None), "all"
    if data is not None:
        config = config.replace(source=data, max_reviews=None)
    return config, split


def evaluate_predictor(
    predictor: Judged,
    data: DataConfig,
    split: str = "test",
    max_reviews: int | None = None,
    plots: Path | None = None,
) -> dict:
    """Classification and calibration metrics of ``predictor`` on a split of ``data`` (``all``:
    every review of its source), on a stratified sample of ``max_reviews`` if given; with
    ``plots``, the confusion matrix, ROC curve and reliability diagram are written there."""
    from critic.data.prepare import load_splits
    from critic.data.sources import describe_source, load_all_reviews
    from critic.data.split import stratified_sample

    if split == "all":
        reviews = load_all_reviews(
            data.source, data.text_column, data.label_column, data.rating_column
        )
    else:
        reviews = load_splits(data)[split]
    if max_reviews is not None:
        reviews = stratified_sample(reviews, max_reviews, data.split_seed)
    logits, domain_scores = predictor.assess(reviews.texts)
    probabilities = sigmoid(logits)
    calibration = calibration_metrics(
        predictor.calibration, {"": (reviews.labels, logits, reviews.ratings)}, diagram_split=""
    )
    reliability = calibration.pop("reliability")
    result = {
        "model": predictor.name,
        "kind": predictor.kind,
        "data": describe_source(data.source),
        "split": split,
        **classification_metrics(reviews.labels, probabilities),
        **calibration,
    }
    if domain_scores is not None:
        result["domain"] = domain_metrics(reviews.labels, logits, domain_scores)
    if plots is not None:
        title = f"{predictor.name} on {result['data']}, {split}"
        written = plot_evaluation(reviews.labels, probabilities, plots, title)
        plot_reliability(reliability, plots / "reliability.png", title)
        result["plots"] = [str(path) for path in [*written, plots / "reliability.png"]]
    return result
