"""Short crops of reviews: a few whole sentences of a review, labelled as the review.

Why: critics' one-sentence quotes (Rotten Tomatoes) and product-review snippets are a tenth of
an IMDB review's length, and a model trained on whole reviews leans on its bias there, where
few of its features fire (docs/benchmarks.md, "Off movie reviews"). A crop of a held-out
review is the nearest thing to a snippet that the training data itself holds: ``critic
ensemble`` fits a second set of member weights for short reviews on crops of the validation
split, and reports its accuracy on crops of the test split, so that no other domain is ever
trained or tuned on. The label is the whole review's, so it is noisy: a sentence of a
positive review may tell the plot, or praise nothing.
"""

from __future__ import annotations

import re

import numpy as np

from critic.data.sources import Reviews

# A sentence ends at ".", "!" or "?" before a space, or at IMDB's line breaks.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?:<br\s*/?>\s*)+", re.IGNORECASE)
MIN_SENTENCE_WORDS = 4
# Rotten Tomatoes' snippets have 21 words on average and the Amazon ones 18: crops of 8 to 30
# words (whole sentences, so a long first sentence may make one longer) span them.
CROP_WORDS = (8, 30)


def sentences(text: str) -> list[str]:
    """A review's sentences of at least :data:`MIN_SENTENCE_WORDS` words."""
    parts = (part.strip() for part in _SENTENCE_END.split(text))
    return [part for part in parts if len(part.split()) >= MIN_SENTENCE_WORDS]


def short_crops(reviews: Reviews, per_review: int = 2, seed: int = 0) -> Reviews:
    """``per_review`` crops of each review (fewer for a review with no sentence long enough):
    consecutive sentences from a random one until a random length in :data:`CROP_WORDS` is
    reached. The same reviews and seed give the same crops."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[int] = []
    for text, label in zip(reviews.texts, reviews.labels, strict=True):
        parts = sentences(text)
        if not parts:
            continue
        for _ in range(per_review):
            start = int(rng.integers(len(parts)))
            wanted = int(rng.integers(CROP_WORDS[0], CROP_WORDS[1] + 1))
            end, words = start, 0
            while end < len(parts) and words < wanted:
                words += len(parts[end].split())
                end += 1
            texts.append(" ".join(parts[start:end]))
            labels.append(int(label))
    return Reviews(texts, np.array(labels, dtype=np.int8))
