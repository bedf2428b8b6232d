"""When traffic counts as drifted: the settings of ``critic monitor``.

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
    min_reviews: int = setting(30, "Fewest reviews a window needs to be judged at all.")

    def __post_init__(self) -> None:
        for name in ("psi", "ks_statistic", "unknown_words", "label_share"):
            if not getattr(self, name) > 0:
                raise CriticError(f"threshold {name} must be above 0, got {getattr(self, name)}")
        if not 0 < self.alpha < 1:
            raise CriticError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.min_reviews < 1:
            raise CriticError(f"min_reviews must be at least 1, got {self.min_reviews}")
