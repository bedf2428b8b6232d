"""Text in, predictions out: one review or many, answered in the same shape.

Each prediction holds:

* ``label`` -- "positive" or "negative" (positive when ``probability >= 0.5``);
* ``probability`` -- the model's probability that the review is positive;
* ``rating`` -- a 1-10 rating. Until a model is trained on star ratings it is mapped from the
  probability: ``rating = floor(1.5 + 9 * probability)``, i.e. 1 + 9p rounded half up. That
  spreads 0..1 evenly over 1..10 and keeps the rating consistent with the label: a
  positive review always rates 6 or more, a negative one 5 or less;
* ``tokens`` -- how many tokens the model read, and whether the review was cut at the bundle's
  maximum length;
* with ``explain=True``, ``words`` -- every token read with its weight in [-1, 1]: how much,
  and which way, it pushed the answer (positive = towards "positive"). A model may compute
  them itself (``model.word_weights``, e.g. attention); otherwise they are gradient x input
  on the embeddings, scaled so the strongest word of each review weighs 1.
"""

from __future__ import annotations

import contextlib
import math
import warnings
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

    def read(self, text: str) -> tuple[np.ndarray, list[str], int]:
        """Token ids and tokens (cut to the maximum length), and the uncut token count."""
        if not isinstance(text, str):
            raise CriticError(f"a review must be a string, got {type(text).__name__}")
        if not text.strip():
            raise EmptyReviewError("the review is empty")
        tokens = tokenize(text)
        kept = tokens[: self.max_length]
        # A review of punctuation alone still gets an answer, from one unknown token.
        ids = self.vocab.encode(kept) if kept else np.array([UNK_ID], np.int32)
        return ids, kept, len(tokens)

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of positive for each text."""
        return self._probabilities([self.read(text)[0] for text in texts])

    def _batches(self, encoded: list[np.ndarray]):
        # Longest first, in batches of similar length: the least padding to step through.
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            token_ids, lengths = pad_batch([encoded[i] for i in chosen], self.max_length)
            yield chosen, token_ids.to(self.device), lengths.to(self.device)

    def _probabilities(self, encoded: list[np.ndarray]) -> np.ndarray:
        probabilities = np.zeros(len(encoded), dtype=np.float64)
        for chosen, token_ids, lengths in self._batches(encoded):
            logits = self.model(token_ids, lengths)
            probabilities[chosen] = torch.sigmoid(logits.double()).cpu().numpy()
        return probabilities

    def _word_weights(self, encoded: list[np.ndarray]) -> list[np.ndarray]:
        """Per review, one weight per token read, scaled to [-1, 1]."""
        weights: list[np.ndarray] = [np.zeros(0)] * len(encoded)
        own = getattr(self.model, "word_weights", None)
        captured: dict[str, torch.Tensor] = {}

        def keep_embeddings(module, inputs, output):
            output.retain_grad()
            captured["embedded"] = output

        hook = None if own else self.model.embedding.register_forward_hook(keep_embeddings)
        stack = contextlib.ExitStack()
        try:
            # oneDNN's and cuDNN's RNN kernels refuse a backward pass in eval mode; PyTorch's
            # native kernels give the same forward values and do allow it.
            with (
                warnings.catch_warnings(),
                torch.enable_grad(),
            ):
                # mkldnn.flags() also re-sets oneDNN's TF32 switch, which warns on every call
                # that this build has no Intel GPU support: noise, not news.
                warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
                stack.enter_context(torch.backends.mkldnn.flags(enabled=False))
                stack.enter_context(torch.backends.cudnn.flags(enabled=False))
                for chosen, token_ids, lengths in self._batches(encoded):
                    if own:
                        scores = own(token_ids, lengths)  # (batch, time)
                    else:
                        # Each review's logit depends on its own row only, so one backward
                        # pass of the sum gives every review's gradient at once.
                        self.model(token_ids, lengths).sum().backward()
                        embedded = captured["embedded"]  # (batch, time, embedding)
                        scores = (embedded.grad * embedded).sum(-1)  # (batch, time)
                    scores = scores.detach().double().cpu().numpy()
                    for row, index in enumerate(chosen):
                        values = scores[row, : len(encoded[index])]
                        peak = np.abs(values).max() if len(values) else 0.0
                        weights[index] = values / peak if peak > 0 else values
        finally:
            stack.close()
            if hook is not None:
                hook.remove()
            self.model.zero_grad(set_to_none=True)
        return weights

    @overload
    def predict(self, texts: str, explain: bool = False) -> dict: ...
    @overload
    def predict(self, texts: Sequence[str], explain: bool = False) -> list[dict]: ...

    @torch.no_grad()
    def predict(self, texts, explain: bool = False):
        """Predict one review (a string) or many (a list of strings)."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        read = [self.read(text) for text in batch]
        encoded = [ids for ids, _, _ in read]
        probabilities = self._probabilities(encoded)
        results = [
            {
                "label": "positive" if probability >= 0.5 else "negative",
                "probability": float(probability),
                "rating": rating_from_probability(float(probability)),
                "tokens": {"count": len(kept), "cut": count > self.max_length},
            }
            for (_, kept, count), probability in zip(read, probabilities, strict=True)
        ]
        if explain:
            for result, (_, kept, _), weights in zip(
                results, read, self._word_weights(encoded), strict=True
            ):
                result["words"] = [
                    {"word": word, "weight": round(float(weight), 4)}
                    for word, weight in zip(kept, weights, strict=False)
                ]
        return results[0] if single else results
