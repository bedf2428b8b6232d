"""One deterministic, stratified split.

For a source without a test set of its own (the embedded reviews, a CSV): train / validation /
test by label, e.g. 20,000 / 2,500 / 2,500 for the 25,000 embedded IMDB reviews. For aclImdb:
its own test set, and a validation slice of its train set.

The IMDB files repeat some reviews word for word (about 100 of 25,000). Every review whose text
occurs more than once stays in train, so no validation or test review has a twin in training.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from critic.config import DataConfig
from critic.data.sources import EMBEDDED_SOURCES, Reviews
from critic.errors import DataError

# The settings that decide which reviews land in which split: critic compare and critic
# ensemble both refuse bundles that differ in one. The rest change how a model reads a review
# (vocabulary size, maximum length) or what else is read with it (rating_column: the stars,
# never which reviews), not which reviews it was trained, validated and tested on.
SPLIT_SETTINGS = (
    "source",
    "text_column",
    "label_column",
    "max_reviews",
    "validation_fraction",
    "test_fraction",
    "split_seed",
)


def split_identity(data: DataConfig) -> dict:
    """The settings of a data config that decide which reviews land in which split; the
    embedded source under any of its names."""
    identity = {name: getattr(data, name, None) for name in SPLIT_SETTINGS}
    identity["source"] = EMBEDDED_SOURCES.get(identity["source"], identity["source"])
    return identity


def stratified_sample(reviews: Reviews, count: int, seed: int) -> Reviews:
    """At most ``count`` reviews, keeping the share of each label."""
    if count >= len(reviews):
        return reviews
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(reviews.labels):
        members = np.flatnonzero(reviews.labels == label)
        quota = round(count * len(members) / len(reviews))
        chosen.append(rng.permutation(members)[:quota])
    return reviews.take(np.sort(np.concatenate(chosen)))


def _held_out(
    reviews: Reviews, fractions: list[float], seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Pick held-out slices of the given fractions per label; the rest is returned as train."""
    rng = np.random.default_rng(seed)
    counts = Counter(reviews.texts)
    unique = np.array([counts[text] == 1 for text in reviews.texts], dtype=bool)
    slices: list[list[np.ndarray]] = [[] for _ in fractions]
    for label in np.unique(reviews.labels):
        members = np.flatnonzero(reviews.labels == label)
        candidates = rng.permutation(members[unique[members]])
        start = 0
        for k, fraction in enumerate(fractions):
            size = round(fraction * len(members))
            slices[k].append(candidates[start : start + size])
            start += size
    held = [np.sort(np.concatenate(parts)) for parts in slices]
    taken = np.zeros(len(reviews), dtype=bool)
    for indices in held:
        taken[indices] = True
    return held, np.flatnonzero(~taken)


def split_reviews(
    parts: dict[str, Reviews], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, Reviews]:
    """Train, validation and test, from a source's own parts."""
    if "test" in parts:
        (validation,), train = _held_out(parts["train"], [validation_fraction], seed)
        result = {
            "train": parts["train"].take(train),
            "validation": parts["train"].take(validation),
            "test": parts["test"],
        }
    else:
        everything = parts["all"]
        (validation, test), train = _held_out(
            everything, [validation_fraction, test_fraction], seed
        )
        result = {
            "train": everything.take(train),
            "validation": everything.take(validation),
            "test": everything.take(test),
        }
    for name, reviews in result.items():
        if len(reviews) == 0:
            raise DataError(f"too few reviews to make a {name} split")
    if len(np.unique(result["train"].labels)) < 2:
        raise DataError("the training split needs both positive and negative reviews")
    return result
