"""The binary log loss of a model's logits, for the fits that choose by it (nbsvm's C, the
ensemble's weights, the calibration's temperature)."""

from __future__ import annotations

import numpy as np


def logit_log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean ``-log sigmoid(±logit)`` (+ for a positive label): ``logaddexp(0, ∓logit)``, exact
    for any magnitude. Unlike a loss over probabilities, nothing is clipped: a confident
    mistake costs what it should, so fits compared by it rank the same way at any scale."""
    signs = np.where(np.asarray(labels) == 1, 1.0, -1.0)
    return float(np.logaddexp(0.0, -signs * np.asarray(logits, dtype=np.float64)).mean())
