"""The vocabulary: the most frequent training words, as plain JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from critic.errors import BundleError
from critic.fileio import write_text_atomic

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


class Vocab:
    """Maps tokens to ids: 0 is padding, 1 is every word outside the vocabulary."""

    def __init__(self, words: Sequence[str]):
        if len(words) < 2 or words[PAD_ID] != PAD or words[UNK_ID] != UNK:
            raise BundleError("a vocabulary must start with <pad> and <unk>")
        if len(set(words)) != len(words):
            raise BundleError("a vocabulary must not repeat a word")
        self.words: list[str] = list(words)
        self.index: dict[str, int] = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def build(cls, tokenized: Iterable[Sequence[str]], size: int) -> Vocab:
        """Keep the ``size - 2`` most frequent words (ties broken alphabetically)."""
        counts: Counter[str] = Counter()
        for tokens in tokenized:
            counts.update(tokens)
        # Sorting by (-count, word) makes the vocabulary independent of dict order.
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls([PAD, UNK] + [word for word, _ in ranked[: max(size - 2, 0)]])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        get = self.index.get
        return np.fromiter(
            (get(token, UNK_ID) for token in tokens), dtype=np.int32, count=len(tokens)
        )

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids]

    def to_json(self) -> str:
        return json.dumps(
            {"format": "critic-vocab", "version": 1, "words": self.words}, ensure_ascii=False
        )

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        try:
            payload = json.loads(text)
            words = payload["words"]
        except (ValueError, KeyError, TypeError) as error:
            raise BundleError(f"vocabulary is not valid critic JSON ({error})") from None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise BundleError("vocabulary words must be a list of strings")
        return cls(words)

    def save(self, path: Path) -> None:
        write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Vocab:
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise BundleError(f"cannot read vocabulary {path}: {error.strerror}") from None
