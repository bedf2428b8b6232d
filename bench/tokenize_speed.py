"""Benchmark: cleaning + tokenising speed on one core, over the 25,000 embedded IMDB reviews.

    python bench/tokenize_speed.py

The target is at least 5,000 reviews/s on one core (the reference project's BeautifulSoup,
NLTK stop-words and Porter stemmer manage about 10 reviews/s on this machine).
"""

from __future__ import annotations

import json
import time

from critic.data.sources import load_embedded
from critic.data.text import tokenize_many
from critic.data.vocab import Vocab


def main(argv: list[str] | None = None) -> dict:
    """No options: the embedded reviews, best of three passes."""
    texts = load_embedded("imdb").texts
    best = float("inf")
    for _ in range(3):  # best of three: the figure least disturbed by anything else running
        started = time.perf_counter()
        tokenized = tokenize_many(texts)
        best = min(best, time.perf_counter() - started)
    started = time.perf_counter()
    vocab = Vocab.build(tokenized, 5000)
    for tokens in tokenized:
        vocab.encode(tokens)
    encode_seconds = time.perf_counter() - started
    figures = {
        "reviews": len(texts),
        "tokenize_seconds": round(best, 3),
        "tokenize_reviews_per_second": round(len(texts) / best),
        "vocab_and_encode_reviews_per_second": round(len(texts) / encode_seconds),
        "mean_tokens": round(sum(map(len, tokenized)) / len(tokenized), 1),
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
