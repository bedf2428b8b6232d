"""Length-bucketed batches.

Reviews run from a few words to over a thousand. Batching them at random pads every batch to
its longest review and the LSTM then steps through padding. Instead each epoch shuffles the
reviews, cuts them into pools of ``pool_batches`` batches, sorts every pool by length and cuts
it into batches, then shuffles the batches: each batch holds reviews of similar length (almost
no padding), while the batch order and membership still change from epoch to epoch.

Trained by several processes at once (``shard=(rank, world_size)``), every process walks the
same batches and takes its own slice of each: the batches, their number and the reviews an
epoch sees are those of one process, so ``--batch-size`` means the same either way.

Training batches may be given :class:`TokenNoise`: words replaced by ``<unk>`` at random (word
dropout), so that a model cannot lean on any one word, the ones movie reviews alone use least of
all. Validation and test batches are never given any.

They may also be given :class:`Crops`: a share of the reviews read, each epoch, as a short
window of their words instead of whole, so that a model also learns to answer a snippet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from critic.data.crops import CROP_WORDS
from critic.data.vocab import PAD_ID, UNK_ID


@dataclass
class EncodedSplit:
    """Token ids of many reviews, stored flat: review ``i`` is ``tokens[offsets[i]:offsets[i+1]]``."""

    tokens: np.ndarray  # (total_tokens,) int32
    offsets: np.ndarray  # (reviews + 1,) int64
    labels: np.ndarray  # (reviews,) int8
    ratings: np.ndarray  # (reviews,) int8, 0 = unknown

    @classmethod
    def from_lists(
        cls, encoded: list[np.ndarray], labels: np.ndarray, ratings: np.ndarray
    ) -> EncodedSplit:
        lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tokens = np.concatenate(encoded).astype(np.int32) if encoded else np.zeros(0, np.int32)
        return cls(tokens, offsets, np.asarray(labels, np.int8), np.asarray(ratings, np.int8))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def review(self, index: int) -> np.ndarray:
        return self.tokens[self.offsets[index] : self.offsets[index + 1]]


@dataclass
class Batch:
    token_ids: torch.Tensor  # (batch, time) int64, padded with 0
    lengths: torch.Tensor  # (batch,) int64, each >= 1
    labels: torch.Tensor  # (batch,) float32
    indices: np.ndarray  # (batch,) positions of these reviews in the split

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.token_ids.to(device), self.lengths.to(device), self.labels.to(device), self.indices
        )


def pad_batch(sequences: list[np.ndarray], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each sequence to ``max_length`` and pad to the longest: (batch, time) ids and lengths."""
    lengths = np.array([max(min(len(ids), max_length), 1) for ids in sequences], dtype=np.int64)
    padded = np.full((len(sequences), int(lengths.max())), PAD_ID, dtype=np.int64)
    for row, ids in enumerate(sequences):
        ids = ids[:max_length]
        padded[row, : len(ids)] = ids
    return torch.from_numpy(padded), torch.from_numpy(lengths)


@dataclass(frozen=True)
class TokenNoise:
    """Training words replaced by ``<unk>``: each with probability ``word_dropout`` (Iyyer et
    al. 2015's word dropout, as Dai & Le 2015 use it), and each of ``masked_ids`` (e.g. the
    words movie reviews use far more than general text) also with probability ``mask_rate``."""

    word_dropout: float = 0.0
    masked_ids: np.ndarray | None = None  # (words,) int64
    mask_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("word_dropout", "mask_rate"):
            share = getattr(self, name)
            if not 0.0 <= share < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {share}")

    @property
    def active(self) -> bool:
        masking = self.masked_ids is not None and len(self.masked_ids) > 0 and self.mask_rate > 0
        return self.word_dropout > 0 or masking

    def apply(self, token_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``token_ids`` (batch, time) with the drawn words replaced by ``<unk>``, in place;
        padding stays padding."""
        keep = np.full(token_ids.shape, 1.0 - self.word_dropout)
        if self.masked_ids is not None and self.mask_rate > 0:
            masked = np.isin(token_ids, self.masked_ids)
            keep[masked] *= 1.0 - self.mask_rate
        dropped = (rng.random(token_ids.shape) >= keep) & (token_ids != PAD_ID)
        token_ids[dropped] = UNK_ID
        return token_ids


@dataclass(frozen=True)
class Crops:
    """A share of the training reviews read, each epoch, as ``words`` (lowest, highest)
    consecutive tokens from a random place, labelled as the whole review.

    Why: a one-sentence critic's quote (Rotten Tomatoes, 21 words on average) or a product
    snippet is a tenth of an IMDB review, and a model that has only ever read whole reviews
    leans on its bias there, where few of its features fire (docs/benchmarks.md, "Off movie
    reviews"). The window is of tokens, not sentences: prepared splits keep no punctuation,
    and a window of a review is still text the review's author wrote. Its label is the whole
    review's, so it is noisy (a window may tell the plot), which is why only a share is cut.
    """

    share: float = 0.0
    words: tuple[int, int] = CROP_WORDS  # the snippets' span, as critic ensemble crops them

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"crop share must lie in [0, 1], got {self.share}")
        if not 1 <= self.words[0] <= self.words[1]:
            raise ValueError(f"crop words must be 1 <= lowest <= highest, got {self.words}")

    @property
    def active(self) -> bool:
        return self.share > 0

    def windows(self, lengths: np.ndarray, rng: np.random.Generator):
        """(starts, lengths) of each review's window: the whole review, or for a drawn share of
        the reviews longer than the drawn length, that many tokens from a random start."""
        wanted = rng.integers(self.words[0], self.words[1] + 1, size=len(lengths))
        cut = (rng.random(len(lengths)) < self.share) & (lengths > wanted)
        starts = np.zeros(len(lengths), dtype=np.int64)
        starts[cut] = rng.integers(0, lengths[cut] - wanted[cut] + 1)
        return starts, np.where(cut, wanted, lengths).astype(np.int64)


class BucketedBatches:
    """Iterate over a split in length-bucketed batches; ``set_epoch`` reshuffles."""

    def __init__(
        self,
        split: EncodedSplit,
        batch_size: int,
        max_length: int,
        *,
        shuffle: bool = True,
        pool_batches: int = 50,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
        noise: TokenNoise | None = None,
        crops: Crops | None = None,
    ):
        self.split = split
        self.batch_size = batch_size
        self.max_length = max_length
        self.shuffle = shuffle
        self.pool_batches = pool_batches
        self.seed = seed
        self.epoch = 0
        self.shard = shard
        """(rank, world_size): which slice of every batch this process takes."""
        self.cut_lengths = np.minimum(split.lengths, max_length)
        self.noise = noise if noise is not None and noise.active else None
        """Words replaced by ``<unk>`` as batches are made: for training batches only."""
        self.crops = crops if crops is not None and crops.active else None
        """Reviews read as short windows, drawn anew each epoch: training batches only."""
        self._windows: tuple[np.ndarray, np.ndarray] | None = None
        """This epoch's (starts, lengths) with crops, once ``set_epoch`` has drawn them."""

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.crops is not None:
            # Of (seed, epoch) alone, as the order is: a resumed run cuts the same windows.
            rng = np.random.default_rng([self.seed, self.epoch, 2])
            self._windows = self.crops.windows(self.split.lengths, rng)
            self.cut_lengths = np.minimum(self._windows[1], self.max_length)

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def batch_indices(self) -> list[np.ndarray]:
        if not self.shuffle:
            # Evaluation: one global sort by length is the least padding of all.
            order = np.argsort(-self.cut_lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # The generator depends only on (seed, epoch): a resumed run sees the same batches.
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.split))
        pool_size = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(order), pool_size):
            pool = order[start : start + pool_size]
            pool = pool[np.argsort(-self.cut_lengths[pool], kind="stable")]
            batches.extend(
                pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)
            )
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[Batch]:
        rank, world_size = self.shard
        # Its own generator, of (seed, epoch) alone: the batches are the same with noise or
        # without, and a resumed run draws the same noise.
        noise_rng = np.random.default_rng([self.seed, self.epoch, rank, 1])
        for indices in self.batch_indices():
            if world_size > 1:
                # A last batch smaller than the number of ranks repeats reviews, so that no
                # rank is left without a slice (and all take the same number of steps).
                indices = np.resize(indices, max(len(indices), world_size))[rank::world_size]
            token_ids, lengths = pad_batch([self._window(i) for i in indices], self.max_length)
            if self.noise is not None:
                self.noise.apply(token_ids.numpy(), noise_rng)  # token_ids shares its memory
            labels = torch.from_numpy(self.split.labels[indices].astype(np.float32))
            yield Batch(token_ids, lengths, labels, indices)

    def _window(self, index: int) -> np.ndarray:
        """Review ``index`` as this epoch reads it: whole, or its window (with crops)."""
        if self._windows is None:
            return self.split.review(index)
        starts, lengths = self._windows
        start = self.split.offsets[index] + starts[index]
        return self.split.tokens[start : start + lengths[index]]
