"""How unlike the reviews its model learned from a review is: the out-of-domain signal.

Every answer carries ``"domain": {"score": s, "typical": s <= 1}``. A model is calibrated on
movie reviews; a review unlike them -- a product review, a one-line snippet, text in another
language -- gets an answer that looks just as sure and is far less often right. The score
says so from what the model computes anyway, per review:

* ``unknown`` -- the share of the tokens read that the model has no word for (a neural
  model's vocabulary; the n-gram model's words);
* ``length`` -- the log of the number of tokens: far shorter or far longer than its reviews;
* ``density`` (neural models) -- how far the representation the output layer reads lies from
  the training reviews: the Mahalanobis distance to the nearer of the two class-conditional
  Gaussians with one shared covariance (Lee et al. 2018), fitted on the training reviews;
* ``uncovered`` (the n-gram model, whose features are its n-grams) -- the share of the
  review's n-grams it has no coefficient for;
* an ensemble's features are its members' scores.

Each feature is put on the scale of the held-out validation reviews -- ``z = (x - median) /
spread``, the spread from the interquartile range, robust to the odd long review -- counted
only upwards for the shares and distances (fewer unknown words than usual is not unusual),
both ways for the length. A review's distance is ``sqrt(sum z^2)``, divided by the 95th
percentile of the validation reviews' distances: a score of at most 1 is typical, as about
95% of held-out movie reviews are.

This module holds the fitted model and its files (``domain.json``, and for a neural model
``domain.safetensors`` with the Gaussians); :mod:`critic.inference.domain_fit` fits one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_arrays
from safetensors.numpy import save_file as save_arrays

from critic.errors import BundleError
from critic.fileio import write_atomic, write_text_atomic

DOMAIN_JSON = "domain.json"
DOMAIN_ARRAYS = "domain.safetensors"
DOMAIN_FORMAT = "critic-domain"
DOMAIN_VERSION = 1
TYPICAL_SHARE = 0.95
"""The share of held-out (validation) reviews of the training domain that score typical."""

UP, BOTH = "up", "both"
"""How a feature departs from typical: only by being larger, or either way."""
NEURAL_FEATURES = (("unknown", UP), ("length", BOTH), ("density", UP))
NBSVM_FEATURES = (("unknown", UP), ("uncovered", UP), ("length", BOTH))


def review_lengths(tokenized) -> np.ndarray:
    """(reviews,) the length feature: log(1 + tokens), every token, read or not."""
    return np.log1p(np.fromiter(map(len, tokenized), np.float64, len(tokenized)))


@dataclass(frozen=True, eq=False)
class DomainModel:
    """A fitted out-of-domain signal: how each raw feature is scaled, and the threshold."""

    features: tuple[str, ...]
    sides: tuple[str, ...]
    center: np.ndarray
    """(features,) the validation reviews' median of each feature."""
    spread: np.ndarray
    """(features,) their spread (interquartile range / 1.349, a standard deviation's worth)."""
    threshold: float
    """The 95th percentile of the validation reviews' distances: the score's unit."""
    means: np.ndarray | None = None
    """(classes, hidden) a neural model's class means of its pooled representation..."""
    precision: np.ndarray | None = None
    """...and (hidden, hidden) the inverse of their shared covariance."""
    fitted: dict = field(default_factory=dict)
    """How it was fitted: reviews used, the share of validation reviews scored typical."""

    def __post_init__(self) -> None:
        k = len(self.features)
        if not (len(self.sides) == k and self.center.shape == (k,) and self.spread.shape == (k,)):
            raise BundleError("domain: features, sides, centres and spreads differ in number")
        if any(side not in (UP, BOTH) for side in self.sides):
            raise BundleError(f"domain: unknown side in {self.sides}")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise BundleError(f"domain: the threshold must be positive, got {self.threshold}")
        if not (np.isfinite(self.spread).all() and (self.spread > 0).all()):
            raise BundleError("domain: every spread must be positive")
        if (self.means is None) != (self.precision is None):
            raise BundleError("domain: class means and precision come together")
        if self.means is not None:
            hidden = self.means.shape[1]
            if self.precision.shape != (hidden, hidden):
                raise BundleError("domain: the precision does not fit the class means")
            # d^2 = |(h - mu) L|^2 with precision = L L^T: one (n, hidden) x (hidden, hidden)
            # product per batch instead of one per class.
            try:
                factor = np.linalg.cholesky(self.precision)
            except np.linalg.LinAlgError:
                raise BundleError("domain: the precision is not positive definite") from None
            object.__setattr__(self, "_factor", factor)
            object.__setattr__(self, "_projected_means", self.means @ factor)
        object.__setattr__(self, "_up", np.array([side == UP for side in self.sides]))

    @classmethod
    def unscaled(
        cls,
        features: tuple[tuple[str, str], ...] | list[tuple[str, str]],
        means: np.ndarray | None = None,
        precision: np.ndarray | None = None,
        center: np.ndarray | None = None,
        spread: np.ndarray | None = None,
    ) -> DomainModel:
        """A model of unit threshold (and, unless given, unit scale) over ``features``: what
        fitting measures distances and densities with before the threshold is known."""
        k = len(features)
        return cls(
            tuple(name for name, _ in features),
            tuple(side for _, side in features),
            np.zeros(k) if center is None else center,
            np.ones(k) if spread is None else spread,
            1.0,
            means,
            precision,
        )

    @property
    def hidden(self) -> int | None:
        """The size of the pooled representation the density reads, if any."""
        return None if self.means is None else int(self.means.shape[1])

    def density(self, pooled: np.ndarray) -> np.ndarray:
        """(reviews,) the Mahalanobis distance of each (reviews, hidden) representation to the
        nearer class mean."""
        if self.means is None:
            raise BundleError("domain: this model has no density (no class means)")
        projected = np.asarray(pooled, dtype=np.float64) @ self._factor  # (reviews, hidden)
        # (reviews, classes) squared distances, by |a - b|^2 = |a|^2 - 2 a.b + |b|^2.
        squared = (
            (projected**2).sum(1, keepdims=True)
            - 2.0 * projected @ self._projected_means.T
            + (self._projected_means**2).sum(1)
        )
        return np.sqrt(np.maximum(squared.min(1), 0.0))

    def distances(self, raw: np.ndarray) -> np.ndarray:
        """(reviews,) the unscaled distance of each row of (reviews, features) raw features."""
        z = (np.asarray(raw, dtype=np.float64) - self.center) / self.spread
        z = np.where(self._up, np.maximum(z, 0.0), np.abs(z))
        return np.sqrt((z**2).sum(1))

    def scores(self, raw: np.ndarray) -> np.ndarray:
        """(reviews,) the domain score: at most 1 is typical."""
        return self.distances(raw) / self.threshold

    # --- files --------------------------------------------------------------------------

    def write(self, folder: Path) -> list[str]:
        """Write the model's files into ``folder``; returns their names."""
        folder = Path(folder)
        description = {
            "format": DOMAIN_FORMAT,
            "version": DOMAIN_VERSION,
            "features": list(self.features),
            "sides": list(self.sides),
            "center": [float(x) for x in self.center],
            "spread": [float(x) for x in self.spread],
            "threshold": float(self.threshold),
            "fitted": self.fitted,
        }
        names = [DOMAIN_JSON]
        if self.means is not None:
            arrays = {
                "means": np.ascontiguousarray(self.means, dtype=np.float64),
                "precision": np.ascontiguousarray(self.precision, dtype=np.float64),
            }
            write_atomic(folder / DOMAIN_ARRAYS, lambda path: save_arrays(arrays, path))
            names.append(DOMAIN_ARRAYS)
        write_text_atomic(folder / DOMAIN_JSON, json.dumps(description, indent=2))
        return names

    @classmethod
    def read(cls, folder: Path, files: dict) -> DomainModel | None:
        """The model written into ``folder``, if the manifest's ``files`` list it."""
        folder = Path(folder)
        if DOMAIN_JSON not in files:
            return None
        try:
            description = json.loads((folder / DOMAIN_JSON).read_text(encoding="utf-8"))
            if description.get("format") != DOMAIN_FORMAT:
                raise BundleError(f"{folder / DOMAIN_JSON} is not a critic domain model")
            if description.get("version") != DOMAIN_VERSION:
                raise BundleError(
                    f"{folder / DOMAIN_JSON} is version {description.get('version')}; "
                    f"this critic reads version {DOMAIN_VERSION}"
                )
            means = precision = None
            if DOMAIN_ARRAYS in files:
                arrays = load_arrays(folder / DOMAIN_ARRAYS)
                means, precision = arrays["means"], arrays["precision"]
            return cls(
                features=tuple(str(name) for name in description["features"]),
                sides=tuple(str(side) for side in description["sides"]),
                center=np.asarray(description["center"], dtype=np.float64),
                spread=np.asarray(description["spread"], dtype=np.float64),
                threshold=float(description["threshold"]),
                means=means,
                precision=precision,
                fitted=dict(description.get("fitted") or {}),
            )
        except (ValueError, KeyError, TypeError, SafetensorError, OSError) as error:
            raise BundleError(f"{folder}: the domain model is invalid ({error})") from None


def robust_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features,) medians and spreads of (reviews, features) values: the interquartile range
    / 1.349 (a normal distribution's standard deviation); where that is 0 (a share that is 0
    for most reviews), the standard deviation; where that is 0 too, 1."""
    values = np.asarray(values, dtype=np.float64)
    center = np.median(values, axis=0)
    low, high = np.percentile(values, [25, 75], axis=0)
    spread = (high - low) / 1.349
    fallback = values.std(axis=0)
    spread = np.where(spread > 1e-9, spread, np.where(fallback > 1e-9, fallback, 1.0))
    return center, spread


def fit_gaussians(pooled: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means (classes, hidden) and the precision (hidden, hidden) of their shared
    covariance, from (reviews, hidden) representations of labelled training reviews. The
    covariance is shrunk (Ledoit-Wolf): a representation of a few hundred dimensions from a few
    thousand reviews gives a singular or ill-conditioned sample covariance."""
    from sklearn.covariance import LedoitWolf

    pooled = np.asarray(pooled, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise BundleError("domain: fitting the class Gaussians needs reviews of both labels")
    means = np.stack([pooled[labels == c].mean(0) for c in classes])
    centered = pooled - means[np.searchsorted(classes, labels)]
    covariance = LedoitWolf(assume_centered=True).fit(centered).covariance_
    precision = np.linalg.inv(covariance)
    return means, (precision + precision.T) / 2.0  # symmetric to the last bit


def fit_domain(
    features: tuple[tuple[str, str], ...] | list[tuple[str, str]],
    validation: np.ndarray,
    means: np.ndarray | None = None,
    precision: np.ndarray | None = None,
    fitted: dict | None = None,
) -> DomainModel:
    """The domain model whose unit is the 95th percentile of the validation reviews'
    distances, from their (reviews, features) raw features."""
    validation = np.asarray(validation, dtype=np.float64)
    if validation.ndim != 2 or len(validation) < 2:
        raise BundleError("domain: fitting needs the raw features of at least 2 reviews")
    center, spread = robust_scale(validation)
    unscaled = DomainModel.unscaled(features, means, precision, center, spread)
    distances = unscaled.distances(validation)
    threshold = float(np.quantile(distances, TYPICAL_SHARE))
    if threshold <= 1e-9:  # nearly every validation review at the median of every feature
        threshold = max(float(distances.max()), 1.0)
    typical = float((distances <= threshold).mean())
    return DomainModel(
        unscaled.features,
        unscaled.sides,
        center,
        spread,
        threshold,
        means,
        precision,
        {**(fitted or {}), "validation_reviews": len(validation), "validation_typical": typical},
    )
