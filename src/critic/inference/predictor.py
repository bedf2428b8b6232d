"""Text in, predictions out: one review or many, answered in the same shape.

Every kind of bundle (a neural model, the n-gram ``nbsvm`` model, an ensemble) answers the
same way; a :class:`~critic.inference.scoring.Scorer` computes its log-odds. Each prediction holds:

* ``label`` -- "positive" or "negative": the sign of the model's log-odds (positive when
  ``probability >= 0.5``);
* ``probability`` -- the model's own (raw) probability that the review is positive;
* ``score`` -- the calibrated probability that the review is positive: the log-odds divided
  by the bundle's temperature, fitted on the validation split (temperature scaling). Of the
  reviews scored about 0.8, about 80% are positive; the raw probability of a model that
  learned its training reviews by heart is often more sure than it is right. The label is
  the same either way. A bundle from before calibration (format version 1) scores its raw
  probability;
* ``rating`` -- a 1-10 rating. When the bundle was trained on reviews with star ratings
  (aclImdb), it is learned from them: an isotonic regression of the stars on the calibrated
  log-odds. Otherwise it is mapped from the score: ``rating = floor(1.5 + 9 * score)``, i.e.
  1 + 9p rounded half up, which spreads 0..1 evenly over 1..10. Either way the rating agrees
  with the label: a positive review rates 6 or more, a negative one 5 or less.
  ``Predictor.rating_source`` says which (``stars`` or ``probability``);
* ``tokens`` -- how many tokens the model read, and whether the review was cut at the bundle's
  maximum length;
* ``domain`` -- ``{"score": s, "typical": s <= 1}``: how unlike the reviews the model learned
  from the review is (:mod:`critic.inference.domain`): about 95% of held-out reviews of its
  own domain score at most 1. None for a bundle fitted before there was one (``critic domain
  BUNDLE`` fits it);
* with ``explain=True``, ``words`` -- every token read with its weight in [-1, 1]: how much,
  and which way, it pushed the answer (positive = towards "positive"), scaled so the
  strongest word of each review weighs 1. A neural model computes them itself (e.g.
  attention) or by gradient x input on the embeddings; the n-gram model from its
  coefficients (each token gets its share of every n-gram that covers it); an ensemble
  weights its members' word weights as it weights their log-odds.

A neural model (an ensemble's neural members too) runs in eager PyTorch by default, or with
``backend="onnx"`` in ONNX Runtime (:mod:`critic.inference.onnx`): the same answers to 1e-5;
word weights still come from PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from critic.data.text import tokenize
from critic.errors import CriticError
from critic.evaluation.calibration import rating_from_probability, sigmoid
from critic.inference.bundle import ENSEMBLE, Bundle, load_bundle
from critic.inference.scoring import NeuralScorer, Scorer, make_scorer

__all__ = [
    "BACKENDS",
    "EmptyReviewError",
    "ModelOutputError",
    "Predictor",
    "rating_from_probability",
]

BACKENDS = ("torch", "onnx", "auto")
"""What runs a neural model: eager PyTorch, ONNX Runtime (``critic.inference.onnx``), or
``auto``: ONNX Runtime for the architectures it measured faster on (lstm, gru, attention) when
it is installed and the model is on the CPU, PyTorch otherwise."""


class EmptyReviewError(CriticError):
    """A review with nothing in it to judge."""


class ModelOutputError(RuntimeError):
    """The model gave a score that is not a number (NaN or infinite): a fault of the model --
    weights that overflowed or diverged in training -- never of the review, so it is not a
    CriticError; the endpoint answers it with a 500 and counts it as a server error."""


def checked_logits(logits: np.ndarray) -> np.ndarray:
    """The log-odds, refused when any is not finite: NaN would otherwise read as a confident
    "negative" (NaN >= 0 is false) and go out as an answer."""
    logits = np.asarray(logits)
    bad = np.flatnonzero(~np.isfinite(logits))
    if bad.size:
        raise ModelOutputError(
            f"the model scored {bad.size} of {logits.size} reviews as {logits[bad[0]]} (review "
            f"{bad[0] + 1} first): its weights may hold NaN or overflow; no answer is given"
        )
    return logits


class Predictor:
    """A loaded bundle that answers reviews."""

    def __init__(self, bundle: Bundle, batch_size: int = 64, backend: str = "torch"):
        self.bundle = bundle
        self.backend = backend
        self.scorer = make_scorer(bundle, batch_size, neural_scorer(backend))
        self.calibration = bundle.calibration
        self.max_length = self.scorer.max_length
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: Path, device: str = "cpu", backend: str = "torch") -> Predictor:
        """Load a bundle; ``backend`` runs its neural models (an ensemble's neural members):
        ``torch`` (eager PyTorch), ``onnx`` (ONNX Runtime, exported at load, CPU only) or
        ``auto`` (ONNX Runtime where it measured faster, else PyTorch)."""
        return cls(load_bundle(path, device=device), backend=backend)

    @property
    def name(self) -> str:
        return self.bundle.config.model.name

    @property
    def kind(self) -> str:
        return self.bundle.kind

    @property
    def rating_source(self) -> str:
        return self.calibration.rating_source

    def backend_choice(self) -> str | None:
        """What backend ``auto`` measured and chose for this model (an ensemble: for each
        member it measured), in words; None where nothing was measured."""
        if self.kind != ENSEMBLE:
            return self.scorer.choice() if hasattr(self.scorer, "choice") else None
        said = [
            f"member {number} ({bundle.config.model.name}): {scorer.choice()}"
            for number, (bundle, scorer) in enumerate(
                zip(self.bundle.model.members, self.scorer.members, strict=True), start=1
            )
            if hasattr(scorer, "choice")
        ]
        return "; ".join(said) or None

    @property
    def model(self):
        return self.bundle.model

    def read(self, text: str) -> list[str]:
        """Every token of a review (the scorer reads the first ``max_length``)."""
        if not isinstance(text, str):
            raise CriticError(f"a review must be a string, got {type(text).__name__}")
        if not text.strip():
            raise EmptyReviewError("the review is empty")
        tokens = tokenize(text)
        # Tokens are words, or "!" and "?": a review of those alone (or of markup and emoji,
        # which leave no token) has nothing to judge, and gets no verdict.
        if not any(token not in ("!", "?") for token in tokens):
            raise EmptyReviewError(
                "the review has no words to judge (only markup, symbols or emoji)"
            )
        return tokens

    @overload
    def predict_logits(self, texts: str) -> float: ...
    @overload
    def predict_logits(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict_logits(self, texts):
        """The model's raw log-odds of positive: a float for one text, an array for a list."""
        return self._numbers(texts, np.asarray)

    @overload
    def predict_proba(self, texts: str) -> float: ...
    @overload
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict_proba(self, texts):
        """The model's raw probability of positive: a float for one text, an array for a list."""
        return self._numbers(texts, sigmoid)

    @overload
    def predict_scores(self, texts: str) -> float: ...
    @overload
    def predict_scores(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict_scores(self, texts):
        """The calibrated probability of positive: a float for one text, an array for a list."""
        return self._numbers(texts, self.calibration.scores)

    def assess(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """The raw log-odds of each review and its domain score (at most 1: typical), in one
        pass; the scores are None when the bundle has no domain model."""
        logits, domain_scores = self.scorer.assess([self.read(text) for text in texts])
        return checked_logits(logits), domain_scores

    @property
    def has_domain(self) -> bool:
        """Whether the answers carry a domain score (the bundle has a domain model)."""
        return self.bundle.domain is not None

    def _numbers(self, texts, from_logits: Callable[[np.ndarray], np.ndarray]):
        """One number per review, ``from_logits`` of its log-odds, in the shape asked."""
        single, batch = _one_or_many(texts)
        values = from_logits(checked_logits(self.scorer.logits([self.read(t) for t in batch])))
        return float(values[0]) if single else values

    @overload
    def predict(self, texts: str, explain: bool = False) -> dict: ...
    @overload
    def predict(self, texts: Sequence[str], explain: bool = False) -> list[dict]: ...

    def predict(self, texts, explain: bool = False):
        """Predict one review (a string) or many (a list of strings)."""
        single, batch = _one_or_many(texts)
        tokenized = [self.read(text) for text in batch]
        logits, domain_scores = self.scorer.assess(tokenized)
        logits = checked_logits(logits)
        probabilities = sigmoid(logits)
        scores = self.calibration.scores(logits)
        ratings = self.calibration.ratings(logits, scores)
        results = [
            {
                "label": "positive" if logit >= 0 else "negative",
                "probability": float(probability),
                "score": float(score),
                "rating": int(rating),
                "tokens": {
                    "count": min(len(tokens), self.max_length),
                    "cut": len(tokens) > self.max_length,
                },
                "domain": None
                if domain is None
                else {"score": round(float(domain), 3), "typical": bool(domain <= 1.0)},
            }
            for tokens, logit, probability, score, rating, domain in zip(
                tokenized,
                logits,
                probabilities,
                scores,
                ratings,
                [None] * len(tokenized) if domain_scores is None else domain_scores,
                strict=True,
            )
        ]
        if explain:
            for result, tokens, weights in zip(
                results, tokenized, self.scorer.word_weights(tokenized), strict=True
            ):
                result["words"] = [
                    {"word": word, "weight": round(float(weight), 4)}
                    for word, weight in zip(tokens, weights, strict=False)
                ]
        return results[0] if single else results


def neural_scorer(backend: str) -> Callable[[Bundle, int], Scorer]:
    """What scores a neural model with ``backend`` (one of :data:`BACKENDS`)."""
    if backend == "torch":
        return NeuralScorer
    if backend == "onnx":
        # onnxruntime is an optional dependency: imported only when asked for.
        from critic.inference.onnx import OnnxScorer

        return OnnxScorer
    if backend == "auto":
        from critic.inference.onnx import preferred_scorer

        return preferred_scorer
    raise CriticError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")


def _one_or_many(texts: str | Sequence[str]) -> tuple[bool, list[str]]:
    """Whether ``texts`` is one review (a string, not a sequence of characters), and the list
    of reviews to answer."""
    single = isinstance(texts, str)
    return single, [texts] if single else list(texts)
