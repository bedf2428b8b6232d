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
from itertools import chain, repeat

import numpy as np

from critic.config import ModelConfig
from critic.errors import BundleError
from critic.models.losses import logit_log_loss
from critic.models.registry import NBSVM_KIND, register

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


class GramTable:
    """The n-gram list as an integer hash table, so that a batch of reviews is scored in a
    few numpy passes instead of a Python loop over every n-gram of every review.

    Each word of the n-gram list gets an id from 1 to V (0: a word no n-gram holds); an n-gram
    of words ``a b c`` is the integer ``(a * B + b) * B + c`` with ``B = V + 1``. The first id
    is never 0, so an n-gram's length follows from its size and no two n-grams share a key.
    The keys sit in an open-addressing table (Fibonacci hashing, linear probing, at most a
    quarter full, so that probe runs stay short: 24 MB for the 416,000 n-grams of the demo's
    model): a look-up costs a read or two of one array, where a Python dictionary cost three
    cache misses and an object comparison per n-gram, and a binary search nineteen reads.
    Scoring needs one dictionary look-up per token (its word id) and no Python work per n-gram:
    100 reviews in 83 us each instead of 378 (docs/benchmarks.md)."""

    _EMPTY = -1
    _FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: spreads nearby keys

    def __init__(
        self, words: dict[str, int], keys: np.ndarray, coefficients: np.ndarray, ngram_max: int
    ):
        self.words = words
        self.base = len(words) + 1
        self.ngram_max = ngram_max
        self.coefficients = np.asarray(coefficients, dtype=np.float64)
        self.bits = max(10, (4 * len(keys)).bit_length())
        self.slot_keys = np.full(1 << self.bits, self._EMPTY, dtype=np.int64)
        self.slot_positions = np.zeros(1 << self.bits, dtype=np.int32)
        self._insert(keys)

    @classmethod
    def build(
        cls, vocabulary: Sequence[str], coefficients: np.ndarray, ngram_max: int
    ) -> GramTable | None:
        """The table of ``vocabulary``; None when its keys would not fit in an int64 (more
        than 2 ** (63 / ngram_max) distinct words), and the caller keeps the string path."""
        grams = [gram.split(" ") for gram in vocabulary]
        words = {word: i for i, word in enumerate(sorted(set(chain(*grams))), start=1)}
        base = len(words) + 1
        if base**ngram_max >= 2**63:
            return None
        keys = np.zeros(len(grams), dtype=np.int64)
        for n in range(1, ngram_max + 1):
            # Digit by digit in base B, one n-gram length at a time, so numpy does the sums.
            chosen = np.fromiter((i for i, gram in enumerate(grams) if len(gram) == n), np.int64)
            for digit in range(n):
                ids = np.fromiter((words[grams[i][digit]] for i in chosen), np.int64, len(chosen))
                keys[chosen] = keys[chosen] * base + ids
        return cls(words, keys, coefficients, ngram_max)

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        hashed = keys.astype(np.uint64) * self._FIBONACCI  # wraps modulo 2**64, as meant
        return (hashed >> np.uint64(64 - self.bits)).astype(np.int64)

    def _insert(self, keys: np.ndarray) -> None:
        """Linear probing, all keys at once: in each round every key not yet placed looks at
        its next slot, and of those that find the same free slot the first takes it."""
        mask = (1 << self.bits) - 1
        waiting = np.arange(len(keys))
        slots = self._slots(keys)
        while len(waiting):
            free = self.slot_keys[slots] == self._EMPTY
            taken, first = np.unique(slots[free], return_index=True)
            placed = waiting[free][first]
            self.slot_keys[taken] = keys[placed]
            self.slot_positions[taken] = placed
            left = np.ones(len(waiting), dtype=bool)
            left[np.flatnonzero(free)[first]] = False
            waiting, slots = waiting[left], (slots[left] + 1) & mask

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Each key's position in the n-gram list, or -1 for a key the list does not hold."""
        mask = (1 << self.bits) - 1
        found = np.full(len(keys), -1, dtype=np.int64)
        looking = np.arange(len(keys))
        slots = self._slots(keys)
        while len(looking):
            held = self.slot_keys[slots]
            hit = held == keys[looking]
            found[looking[hit]] = self.slot_positions[slots[hit]]
            # An empty slot ends the search: the key would have been put there.
            going_on = ~hit & (held != self._EMPTY)
            looking, slots = looking[going_on], (slots[going_on] + 1) & mask
        return found

    def logits(self, tokenized: Sequence[Sequence[str]], bias: float) -> np.ndarray:
        """``bias`` plus, per review, the coefficients of the distinct n-grams it holds."""
        return self.score(tokenized, bias)[0]

    def score(
        self, tokenized: Sequence[Sequence[str]], bias: float, coverage: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """:meth:`logits`, and with ``coverage`` per review the share of its tokens that are
        words no n-gram holds and the share of its n-grams (every window of 1 to ngram_max
        words) the list does not hold: the n-gram model's out-of-domain features."""
        reviews = len(tokenized)
        lengths = np.fromiter(map(len, tokenized), np.int64, reviews)
        ids = np.fromiter(
            map(self.words.get, chain.from_iterable(tokenized), repeat(0)), np.int64, lengths.sum()
        )
        rows = np.repeat(np.arange(reviews), lengths)  # (tokens,) the review of each token
        keys, known = ids, ids > 0
        found_keys, found_rows = [keys[known]], [rows[known]]
        for n in range(2, self.ngram_max + 1):
            # The n-grams starting at each token: the (n-1)-gram there, one word longer. Out:
            # a window holding a word no n-gram has, or running into the next review.
            keys = keys[:-1] * self.base + ids[n - 1 :]
            known = known[:-1] & (ids[n - 1 :] > 0) & (rows[: len(keys)] == rows[n - 1 :])
            found_keys.append(keys[known])
            found_rows.append(rows[: len(keys)][known])
        positions = self.positions(np.concatenate(found_keys))
        held = positions >= 0
        # Binarised features: each n-gram counts once per review, however often it occurs.
        # Sorted by review, then by position, so every review's sum is added in one order
        # whatever else shares its batch: a batched answer equals a lone one bit for bit.
        held_rows = np.concatenate(found_rows)[held]
        pairs = np.sort(held_rows * len(self.coefficients) + positions[held])
        pairs = pairs[np.flatnonzero(np.diff(pairs, prepend=-1))]
        sums = np.bincount(
            pairs // len(self.coefficients),
            weights=self.coefficients[pairs % len(self.coefficients)],
            minlength=reviews,
        )
        if not coverage:
            return bias + sums, None, None
        # Every occurrence counts here (not once per review): a share of the text.
        windows = sum(np.maximum(lengths - n + 1, 0) for n in range(1, self.ngram_max + 1))
        held_windows = np.bincount(held_rows, minlength=reviews)
        unknown = np.bincount(rows[ids == 0], minlength=reviews) / np.maximum(lengths, 1)
        uncovered = 1.0 - held_windows / np.maximum(windows, 1)
        return bias + sums, unknown, uncovered


@dataclass
class Selection:
    """One (ngram_max, C) tried on the validation split."""

    ngram_max: int
    c: float
    val_accuracy: float
    val_loss: float
    seconds: float


# It reads whole reviews: cutting them at 500 tokens cost it 0.6 points of accuracy.
@register("nbsvm", kind=NBSVM_KIND, recipe={"data": {"max_length": 5000}})
class NBSVM:
    """A fitted (or, fresh from the registry, empty) NB-weighted n-gram logistic model."""

    def __init__(self, config: ModelConfig):
        self.config = config
        self.ngram_max = config.ngram_max
        self.vocabulary: list[str] = []
        self.index: dict[str, int] = {}
        self.coefficients = np.zeros(0, dtype=np.float32)
        self.bias = 0.0
        self.table: GramTable | None = None

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
        model._index_grams()
        return model

    def _index_grams(self) -> None:
        """The integer table that scores reviews, when the n-grams' keys fit in an int64."""
        self.table = GramTable.build(self.vocabulary, self.coefficients, self.ngram_max)

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
                loss = logit_log_loss(val_labels, val_logits)
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
        self._index_grams()
        log(
            f"nbsvm: chose 1-{choice.ngram_max}-grams and C={choice.c:g}; "
            f"{len(self.vocabulary):,} n-grams kept"
        )
        return tried

    # --- answering ----------------------------------------------------------------------

    def decision_function(self, tokenized: Sequence[Sequence[str]]) -> np.ndarray:
        """The log-odds of positive for each token list."""
        if self.table is not None:
            return self.table.logits(tokenized, self.bias)
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

    def decision_and_coverage(
        self, tokenized: Sequence[Sequence[str]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The log-odds, and per review the share of its tokens that are words no n-gram of
        the model holds and the share of its n-grams (every window of 1 to ngram_max words,
        each occurrence) the model has no coefficient for."""
        if self.table is not None:
            logits, unknown, uncovered = self.table.score(tokenized, self.bias, coverage=True)
            assert unknown is not None and uncovered is not None
            return logits, unknown, uncovered
        words = {word for gram in self.vocabulary for word in gram.split(" ")}
        unknown = np.zeros(len(tokenized))
        uncovered = np.zeros(len(tokenized))
        for row, tokens in enumerate(tokenized):
            grams = ngrams(tokens, self.ngram_max)
            unknown[row] = sum(token not in words for token in tokens) / max(len(tokens), 1)
            uncovered[row] = 1.0 - sum(gram in self.index for gram in grams) / max(len(grams), 1)
        return self.decision_function(tokenized), unknown, uncovered

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
