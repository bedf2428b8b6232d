"""Text in, predictions out: one review or many, answered in the same shape.

Each prediction holds:

* ``label`` -- "positive" or "negative" (positive when ``probability >= 0.5``);
* ``probability`` -- the model's probability that the review is positive;
* ``rating`` -- a 1-10 rating. Until a model is trained on star ratings it is mapped from the
  probability: ``rating = floor(1.5 + 9 * probability)``, i.e. 1 + 9p rounded half up. That
  spreads 0..1 evenly over 1..10 and keeps the rating consistent with the label: a
  positive review always rates 6 or more, a negative one 5 or less;
* ``tokens`` -- how many tokens the model read, and whether the review was cut at the bundle's
  maximum length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import overload

import numpy as np
import torch

from critic.artifact import Bundle, load_bundle
from critic.data.batches import pad_batch
from critic.data.text import tokenize
from critic.data.vocab import UNK_ID
from critic.errors import CriticError


class EmptyReviewError(CriticError):
    """A review with nothing in it to judge."""


def rating_from_probability(probability: float) -> int:
    return min(10, max(1, math.floor(1.5 + 9.0 * probability)))


class Predictor:
    """A loaded bundle that answers reviews."""

    def __init__(self, bundle: Bundle, batch_size: int = 64):
        self.bundle = bundle
        self.model = bundle.model.eval()
        self.vocab = bundle.vocab
        self.max_length = bundle.config.data.max_length
        self.batch_size = batch_size
        self.device = next(self.model.parameters()).device

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> Predictor:
        return cls(load_bundle(path, device=device))

    @property
    def name(self) -> str:
        return self.bundle.config.model.name

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """Token ids (cut to the maximum length) and the uncut token count."""
        if not isinstance(text, str):
            raise CriticError(f"a review must be a string, got {type(text).__name__}")
        if not text.strip():
            raise EmptyReviewError("the review is empty")
        tokens = tokenize(text)
        # A review of punctuation alone still gets an answer, from one unknown token.
        ids = (
            self.vocab.encode(tokens[: self.max_length]) if tokens else np.array([UNK_ID], np.int32)
        )
        return ids, len(tokens)

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of positive for each text."""
        encoded = [self.encode(text)[0] for text in texts]
        return self._probabilities(encoded)

    def _probabilities(self, encoded: list[np.ndarray]) -> np.ndarray:
        probabilities = np.zeros(len(encoded), dtype=np.float64)
        # Longest first, in batches of similar length: the least padding to step through.
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            token_ids, lengths = pad_batch([encoded[i] for i in chosen], self.max_length)
            logits = self.model(token_ids.to(self.device), lengths.to(self.device))
            probabilities[chosen] = torch.sigmoid(logits.double()).cpu().numpy()
        return probabilities

    @overload
    def predict(self, texts: str) -> dict: ...
    @overload
    def predict(self, texts: Sequence[str]) -> list[dict]: ...

    @torch.no_grad()
    def predict(self, texts):
        """Predict one review (a string) or many (a list of strings)."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        encoded = [self.encode(text) for text in batch]
        probabilities = self._probabilities([ids for ids, _ in encoded])
        results = [
            {
                "label": "positive" if probability >= 0.5 else "negative",
                "probability": float(probability),
                "rating": rating_from_probability(float(probability)),
                "tokens": {"count": min(count, self.max_length), "cut": count > self.max_length},
            }
            for (_, count), probability in zip(encoded, probabilities, strict=True)
        ]
        return results[0] if single else results
