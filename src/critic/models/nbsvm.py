"""NBSVM: logistic regression on binarised n-grams scaled by naive Bayes log-count ratios.

Wang & Manning (2012), "Baselines and bigrams": each n-gram of a review is present (1) or not
(0); every feature is scaled by its log-count ratio ``r = log((p / |p|_1) / (q / |q|_1))``,
where ``p`` and ``q`` count (plus one) the positive and negative training reviews that hold
it; a linear classifier is fitted on the scaled features. The logistic-regression form reaches
about 92% on IMDB, several points above the reference LSTM, and fits in about a minute.

The fitted model is only a list of n-grams with one coefficient each (the classifier's weight
times ``r``) and a bias: ``logit = bias + sum of the coefficients of the n-grams present``.
Answering needs no scikit-learn, only a dictionary and numpy. The tokens come from
:func:`critic.data.text.tokenize`, so negations ("n't", "not") and "!" / "?" are features.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from critic.config import ModelConfig
from critic.errors import BundleError
from critic.models.registry import register

# Inverse regularisation strengths tried on the validation split when none is given; on the
# embedded IMDB split the best (0.3) lies inside this range.
C_GRID = (0.1, 0.3, 1.0, 3.0)
NB_SMOOTHING = 1.0


def ngrams(tokens: Sequence[str], ngram_max: int) -> list[str]:
    """Every 1..ngram_max-gram of ``tokens``, words joined by one space, shortest first."""
    tokens = list(tokens)
    found = list(tokens)
    for n in range(2, ngram_max + 1):
        # zip of the shifted lists walks every window once, in C: about twice as fast as
        # slicing tokens[i : i + n] for each i, and this runs for every review answered.
        found.extend(map(" ".join, zip(*(tokens[shift:] for shift in range(n)), strict=False)))
    return found


@dataclass
class Selection:
    """One (ngram_max, C) tried on the validation split."""

    ngram_max: int
    c: float
    val_accuracy: float
    val_loss: float
    seconds: float


# It reads whole reviews: cutting them at 500 tokens cost it 0.6 points of accuracy.
@register("nbsvm", kind="nbsvm", recipe={"data": {"max_length": 5000}})
class NBSVM:
    """A fitted (or, fresh from the registry, empty) NB-weighted n-gram logistic model."""

    def __init__(self, config: ModelConfig):
        self.config = config
        self.ngram_max = config.ngram_max
        self.vocabulary: list[str] = []
        self.index: dict[str, int] = {}
        self.coefficients = np.zeros(0, dtype=np.float32)
        self.bias = 0.0

    @classmethod
    def from_arrays(
        cls, config: ModelConfig, vocabulary: list[str], coefficients: np.ndarray, bias: float
    ) -> NBSVM:
        if len(vocabulary) != len(coefficients):
            raise BundleError(
                f"nbsvm: {len(vocabulary)} n-grams but {len(coefficients)} coefficients"
            )
        if len(set(vocabulary)) != len(vocabulary):
            raise BundleError("nbsvm: the n-gram list repeats an n-gram")
        model = cls(config)
        model.vocabulary = list(vocabulary)
        model.index = {gram: i for i, gram in enumerate(vocabulary)}
        model.coefficients = np.asarray(coefficients, dtype=np.float32)
        model.bias = float(bias)
        return model

    def __len__(self) -> int:
        return len(self.vocabulary)

    # --- fitting ------------------------------------------------------------------------

    def fit(
        self,
        train_tokens: list[list[str]],
        train_labels: np.ndarray,
        val_tokens: list[list[str]],
        val_labels: np.ndarray,
        log: Callable[[str], None] = print,
    ) -> list[Selection]:
        """Fit on the training reviews; pick C (and, if asked, ``ngram_max``) by validation log
        loss -- smoother than accuracy, which on 2,500 reviews moves in steps of 0.04% and
        often ties. Returns every choice tried."""
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        started = time.perf_counter()
        top = self.config.ngram_max
        vectorizer = CountVectorizer(
            analyzer=lambda tokens: ngrams(tokens, top),
            min_df=self.config.min_df,
            binary=True,
            dtype=np.float32,
        )
        features = vectorizer.fit_transform(train_tokens).tocsr()  # (reviews, n-grams) 0/1
        val_features = vectorizer.transform(val_tokens).tocsr()
        names = vectorizer.get_feature_names_out()
        lengths = np.fromiter((name.count(" ") + 1 for name in names), np.int8, len(names))
        labels = np.asarray(train_labels).astype(int)
        val_labels = np.asarray(val_labels).astype(int)
        log(
            f"nbsvm: {features.shape[1]:,} n-grams (1 to {top} words, in at least "
            f"{self.config.min_df} reviews) from {features.shape[0]:,} reviews, "
            f"{time.perf_counter() - started:.0f} s"
        )
        positive = NB_SMOOTHING + np.asarray(features[labels == 1].sum(0)).ravel()
        negative = NB_SMOOTHING + np.asarray(features[labels == 0].sum(0)).ravel()
        ratio = np.log(positive / positive.sum()) - np.log(negative / negative.sum())

        orders = range(1, top + 1) if self.config.select_ngrams else [top]
        c_values = C_GRID if self.config.c is None else (self.config.c,)
        tried: list[Selection] = []
        best: tuple | None = None
        for ngram_max in orders:
            # Shorter n-gram ranges are the same features with the longer n-grams zeroed.
            scale = (ratio * (lengths <= ngram_max)).astype(np.float32)
            scaled = features.multiply(scale).tocsr()
            val_scaled = val_features.multiply(scale).tocsr()
            for c in c_values:
                fit_started = time.perf_counter()
                # The dual liblinear solver: fast when n-grams far outnumber reviews.
                classifier = LogisticRegression(C=c, solver="liblinear", dual=True, max_iter=1000)
                classifier.fit(scaled, labels)
                val_logits = classifier.decision_function(val_scaled)
                accuracy = float(((val_logits >= 0) == val_labels).mean())
                loss = float(
                    np.logaddexp(0.0, -np.where(val_labels == 1, 1, -1) * val_logits).mean()
                )
                choice = Selection(ngram_max, c, accuracy, loss, time.perf_counter() - fit_started)
                tried.append(choice)
                log(
                    f"nbsvm: 1-{ngram_max}-grams, C={c:g}: validation accuracy {accuracy:.4f}, "
                    f"loss {loss:.4f} ({choice.seconds:.1f} s)"
                )
                if best is None or loss < best[0].val_loss:
                    coefficients = classifier.coef_.ravel() * scale
                    best = (choice, coefficients, float(classifier.intercept_[0]))
        assert best is not None
        choice, coefficients, bias = best
        # Keep only the n-grams that count: a zero coefficient (a longer n-gram switched off,
        # or r = 0) changes no answer.
        keep = np.flatnonzero(coefficients != 0)
        self.config = self.config.replace(ngram_max=choice.ngram_max, c=choice.c)
        self.ngram_max = choice.ngram_max
        self.vocabulary = [str(names[i]) for i in keep]
        self.index = {gram: i for i, gram in enumerate(self.vocabulary)}
        self.coefficients = coefficients[keep].astype(np.float32)
        self.bias = bias
        log(
            f"nbsvm: chose 1-{choice.ngram_max}-grams and C={choice.c:g}; "
            f"{len(self.vocabulary):,} n-grams kept"
        )
        return tried

    # --- answering ----------------------------------------------------------------------

    def decision_function(self, tokenized: Sequence[Sequence[str]]) -> np.ndarray:
        """The log-odds of positive for each token list."""
        get = self.index.get
        logits = np.empty(len(tokenized), dtype=np.float64)
        for row, tokens in enumerate(tokenized):
            # A set: each n-gram counts once however often it occurs (binarised features).
            present = set(map(get, ngrams(tokens, self.ngram_max)))
            present.discard(None)
            # Sorted, so that the sum is added in one order whatever the set's order.
            chosen = np.fromiter(sorted(present), np.int64, len(present))
            logits[row] = self.bias + float(self.coefficients[chosen].sum(dtype=np.float64))
        return logits

    def token_contributions(self, tokens: Sequence[str]) -> np.ndarray:
        """Each token's share of the log-odds (less the bias): an n-gram's coefficient is
        split evenly over its occurrences (it counts once however often it occurs) and over
        the tokens it covers, so the shares add up to ``logit - bias``."""
        contributions = np.zeros(len(tokens), dtype=np.float64)
        index, coefficients = self.index, self.coefficients
        counts = Counter(gram for gram in ngrams(tokens, self.ngram_max) if gram in index)
        for n in range(1, self.ngram_max + 1):
            for start in range(len(tokens) - n + 1):
                gram = " ".join(tokens[start : start + n]) if n > 1 else tokens[start]
                position = index.get(gram)
                if position is not None:
                    share = float(coefficients[position]) / (counts[gram] * n)
                    contributions[start : start + n] += share
        return contributions
