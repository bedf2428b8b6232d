"""When traffic counts as drifted, and when model quality has dropped: the settings of
``critic monitor``.

Apart from :mod:`critic.monitor.drift` so that the command line builds its options from them
without importing numpy, scipy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from critic.config import setting
from critic.errors import CriticError


@dataclass(frozen=True)
class DriftThresholds:
    """When a difference from the baseline counts as drift."""

    psi: float = setting(
        0.2,
        "Population stability index (of the scores, and of review lengths) past which "
        "traffic has drifted; 0.1-0.2 is a moderate shift, above 0.2 a significant one.",
    )
    alpha: float = setting(
        0.001,
        "Significance level: a difference counts only if chance alone (the sizes of the two "
        "samples) would give one as large less often than this (KS test; chi-square bound on "
        "the PSI; Fisher's exact test on the label share).",
    )
    ks_statistic: float = setting(
        0.15, "Smallest KS distance between the score distributions that counts as drift."
    )
    unknown_words: float = setting(
        0.05, "Rise of the share of words outside the vocabulary that counts as drift."
    )
    label_share: float = setting(
        0.15, "Change of the share of positive answers that counts as drift."
    )
    unusual_share: float = setting(
        0.10,
        "Rise of the share of answers whose domain score calls their review unlike the model's "
        "training reviews (about 5% of held-out ones are) that counts as drift.",
    )
    min_reviews: int = setting(30, "Fewest reviews a window needs to be judged at all.")

    def __post_init__(self) -> None:
        for name in ("psi", "ks_statistic", "unknown_words", "label_share", "unusual_share"):
            if not getattr(self, name) > 0:
                raise CriticError(f"threshold {name} must be above 0, got {getattr(self, name)}")
        if not 0 < self.alpha < 1:
            raise CriticError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.min_reviews < 1:
            raise CriticError(f"min_reviews must be at least 1, got {self.min_reviews}")


@dataclass(frozen=True)
class QualityThresholds:
    """When accuracy or calibration against ground truth counts as a drop (critic monitor
    --ground-truth)."""

    accuracy_margin: float = setting(
        0.05,
        "Accuracy drop below the bundle's validation accuracy that counts as a drop, once the "
        "upper bound of the accuracy's interval is below validation accuracy minus this margin.",
    )
    max_ece: float = setting(
        0.15, "Expected calibration error (15 bins) past which answers count as miscalibrated."
    )
    confidence: float = setting(0.95, "Confidence level of the accuracy's Wilson interval.")
    min_labels: int = setting(
        50, "Fewest labelled answers a window (or a variant) needs to be judged at all."
    )

    def __post_init__(self) -> None:
        if not 0 <= self.accuracy_margin < 1:
            raise CriticError(f"accuracy_margin must lie in [0, 1), got {self.accuracy_margin}")
        if not 0 < self.max_ece <= 1:
            raise CriticError(f"max_ece must lie in (0, 1], got {self.max_ece}")
        if not 0 < self.confidence < 1:
            raise CriticError(f"confidence must lie in (0, 1), got {self.confidence}")
        if self.min_labels < 1:
            raise CriticError(f"min_labels must be at least 1, got {self.min_labels}")
