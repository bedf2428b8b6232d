"""Trustworthy scores: temperature scaling and the 1-10 rating, fitted on the validation split.

A model's raw probability is often over-confident (an n-gram model that fits its training
reviews perfectly says 0.999 where it is right 93% of the time). Temperature scaling (Guo et
al. 2017) divides the model's log-odds by one number ``T`` fitted on the validation split:
``score = sigmoid(logit / T)``. The sign of the log-odds, and so the label, never changes.

The rating is learned from real star ratings when the validation reviews have them (aclImdb):
an isotonic (monotone) regression of the stars on the calibrated log-odds, stored as the two
arrays of its breakpoints and applied with linear interpolation. Otherwise it is mapped from
the calibrated probability: ``floor(1.5 + 9 * score)``. Either way a positive answer rates 6
or more and a negative one 5 or less.

Applying a calibration needs numpy only; fitting one uses scipy and scikit-learn. Every
kind of model -- trained, fitted or assembled -- ends with :func:`calibrate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from critic.errors import BundleError

RATING_FROM_STARS = "stars"
RATING_FROM_PROBABILITY = "probability"


def sigmoid(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    # Written with exp of a non-positive number only: no overflow warnings for large |logit|.
    exp = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + exp), exp / (1.0 + exp))


def rating_from_probability(probability: float) -> int:
    """1 + 9p rounded half up: 0..1 spread evenly over 1..10, 0.5 and above rating 6+."""
    return min(10, max(1, math.floor(1.5 + 9.0 * probability)))


@dataclass(frozen=True)
class Calibration:
    """How a bundle turns its model's log-odds into a score and a rating."""

    temperature: float = 1.0
    rating_source: str = RATING_FROM_PROBABILITY
    """``stars`` (learned from star ratings) or ``probability`` (mapped from the score)."""
    rating_logits: list[float] = field(default_factory=list)
    """With stars: the isotonic regression's breakpoints, increasing calibrated log-odds..."""
    rating_values: list[float] = field(default_factory=list)
    """...and the (non-decreasing) rating at each."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise BundleError(f"calibration: temperature must be positive, got {self.temperature}")
        if self.rating_source not in (RATING_FROM_STARS, RATING_FROM_PROBABILITY):
            raise BundleError(f"calibration: unknown rating source {self.rating_source!r}")
        if self.rating_source == RATING_FROM_STARS and (
            not self.rating_logits or len(self.rating_logits) != len(self.rating_values)
        ):
            raise BundleError("calibration: a rating from stars needs breakpoints and values")

    def calibrated_logits(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(logits, dtype=np.float64) / self.temperature

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """The calibrated probability of positive."""
        return sigmoid(self.calibrated_logits(logits))

    def ratings(self, logits: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """A 1-10 rating per review, consistent with its label (the sign of the log-odds).
        ``scores``: :meth:`scores` of the same logits, when the caller has them already."""
        if self.rating_source == RATING_FROM_PROBABILITY:
            probabilities = self.scores(logits) if scores is None else scores
            return np.array([rating_from_probability(p) for p in probabilities], dtype=int)
        calibrated = self.calibrated_logits(logits)
        # np.interp holds the end values beyond the breakpoints: scikit-learn's
        # IsotonicRegression(out_of_bounds="clip") predicts exactly this.
        stars = np.interp(calibrated, self.rating_logits, self.rating_values)
        ratings = np.clip(np.floor(stars + 0.5), 1, 10).astype(int)
        positive = calibrated >= 0
        # Near the boundary the mean star rating is about 5.5 on both sides; the label wins.
        return np.where(positive, np.maximum(ratings, 6), np.minimum(ratings, 5))

    def to_dict(self) -> dict:
        rating: dict = {"source": self.rating_source}
        if self.rating_source == RATING_FROM_STARS:
            rating |= {"logits": self.rating_logits, "values": self.rating_values}
        return {"format": "critic-calibration", "temperature": self.temperature, "rating": rating}

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        try:
            rating = values.get("rating", {})
            return cls(
                temperature=float(values["temperature"]),
                rating_source=rating.get("source", RATING_FROM_PROBABILITY),
                rating_logits=[float(x) for x in rating.get("logits", [])],
                rating_values=[float(y) for y in rating.get("values", [])],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise BundleError(f"calibration is not valid ({error!r})") from None


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The ``T`` that minimises the log loss of ``sigmoid(logits / T)``."""
    from scipy.optimize import minimize_scalar

    from critic.models.losses import logit_log_loss  # critic.models brings torch: only here

    logits = np.asarray(logits, dtype=np.float64)

    def log_loss(log_temperature: float) -> float:
        return logit_log_loss(labels, logits / math.exp(log_temperature))

    # log T searched in [-4, 6]: T from 0.02 to 400, far beyond what any model here needs.
    found = minimize_scalar(log_loss, bounds=(-4.0, 6.0), method="bounded")
    return float(math.exp(found.x))


def fit_calibration(
    logits: np.ndarray, labels: np.ndarray, ratings: np.ndarray | None = None
) -> Calibration:
    """Fit the temperature, and the rating when every review has stars (1-10; 0 = unknown)."""
    temperature = fit_temperature(logits, labels)
    if ratings is None or len(ratings) == 0 or not (np.asarray(ratings) > 0).all():
        return Calibration(temperature)
    from sklearn.isotonic import IsotonicRegression

    calibrated = np.asarray(logits, dtype=np.float64) / temperature
    isotonic = IsotonicRegression(y_min=1, y_max=10, out_of_bounds="clip")
    isotonic.fit(calibrated, np.asarray(ratings, dtype=np.float64))
    return Calibration(
        temperature,
        RATING_FROM_STARS,
        [float(x) for x in isotonic.X_thresholds_],
        [float(y) for y in isotonic.y_thresholds_],
    )


def calibrate(
    val: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    test: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    log: Callable[[str], None] = print,
) -> tuple[Calibration, dict]:
    """Fit the calibration on the validation split's ``(labels, logits, ratings)``; measure it
    on both splits (ECE before and after, the rating's errors) and log what it did."""
    labels, logits, ratings = val
    calibration = fit_calibration(logits, labels, ratings)
    metrics = calibration_metrics(calibration, {"val": val, "test": test})
    rating = (
        f"; rating from stars, test MAE {metrics['test_rating_mae']:.2f}, "
        f"Spearman {metrics['test_rating_spearman']:.3f}"
        if "test_rating_mae" in metrics
        else f"; rating from the {calibration.rating_source}"
    )
    log(
        f"calibration: temperature {calibration.temperature:.3f}, test ECE "
        f"{metrics['test_ece_before']:.4f} -> {metrics['test_ece_after']:.4f}{rating}"
    )
    return calibration, metrics


# --- measuring a calibration ------------------------------------------------------------


def binary_log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    from sklearn import metrics as skm  # only when measuring: loading a bundle stays light

    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(skm.log_loss(labels, clipped, labels=[0, 1]))


ECE_BINS = 15


def reliability_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> dict[str, list]:
    """Per confidence bin: mean confidence, accuracy and review count (Guo et al. 2017).

    The confidence of an answer is the probability of the label it gives, max(p, 1 - p);
    ``bins`` equal-width bins cover [0, 1] (for two classes only the upper half is used).
    Empty bins are left out.
    """
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = (probabilities >= 0.5).astype(int)
    confidence = np.maximum(probabilities, 1.0 - probabilities)
    correct = (predicted == labels).astype(np.float64)
    # Bin b holds confidences in (b/bins, (b+1)/bins]; exactly 0 joins the first bin.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    used = counts > 0
    mean_confidence = np.bincount(which, confidence, bins)[used] / counts[used]
    accuracy = np.bincount(which, correct, bins)[used] / counts[used]
    edges = np.arange(bins) / bins
    return {
        "lower": edges[used].round(4).tolist(),
        "confidence": mean_confidence.round(6).tolist(),
        "accuracy": accuracy.round(6).tolist(),
        "count": counts[used].tolist(),
    }


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over the bins."""
    table = reliability_bins(labels, probabilities, bins)
    counts = np.asarray(table["count"], dtype=np.float64)
    if counts.sum() == 0:
        return 0.0
    gaps = np.abs(np.asarray(table["confidence"]) - np.asarray(table["accuracy"]))
    return float((gaps * counts).sum() / counts.sum())


def rating_metrics(true_ratings: np.ndarray, predicted: np.ndarray) -> dict:
    """Mean absolute error and Spearman's rank correlation of 1-10 ratings."""
    from scipy.stats import spearmanr

    true_ratings = np.asarray(true_ratings, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    # A constant side has no ranking to correlate (scipy would warn and answer nan).
    varies = len(true_ratings) > 1 and np.ptp(true_ratings) > 0 and np.ptp(predicted) > 0
    correlation = spearmanr(true_ratings, predicted).statistic if varies else None
    return {
        "rating_mae": float(np.abs(true_ratings - predicted).mean()),
        "rating_spearman": None
        if correlation is None or not np.isfinite(correlation)
        else float(correlation),
    }


def calibration_metrics(
    calibration: Calibration,
    splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    diagram_split: str = "test",
) -> dict:
    """ECE before and after calibration per split (``name: (labels, logits, ratings)``), the
    rating's MAE and Spearman correlation where the reviews have stars, and the reliability
    bins of ``diagram_split`` (for the bundle's reliability diagram)."""
    metrics: dict = {
        "temperature": round(calibration.temperature, 6),
        "rating_source": calibration.rating_source,
    }
    for name, (labels, logits, ratings) in splits.items():
        prefix = f"{name}_" if name else ""  # "" gives plain keys: ece_before, rating_mae
        raw, calibrated = sigmoid(logits), calibration.scores(logits)
        before = expected_calibration_error(labels, raw)
        after = expected_calibration_error(labels, calibrated)
        metrics[f"{prefix}ece_before"] = before
        metrics[f"{prefix}ece_after"] = after
        metrics[f"{prefix}loss_calibrated"] = binary_log_loss(labels, calibrated)
        if ratings is not None and len(ratings) and (np.asarray(ratings) > 0).all():
            for key, value in rating_metrics(ratings, calibration.ratings(logits)).items():
                metrics[f"{prefix}{key}"] = value
        if name == diagram_split:
            metrics["reliability"] = {
                "bins": ECE_BINS,
                "split": name,
                "before": {**reliability_bins(labels, raw), "ece": before},
                "after": {**reliability_bins(labels, calibrated), "ece": after},
            }
    return metrics
