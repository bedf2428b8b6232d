"""Length-bucketed batches.

Reviews run from a few words to over a thousand. Batching them at random pads every batch to
its longest review and the LSTM then steps through padding. Instead each epoch shuffles the
reviews, cuts them into pools of ``pool_batches`` batches, sorts every pool by length and cuts
it into batches, then shuffles the batches: each batch holds reviews of similar length (almost
no padding), while the batch order and membership still change from epoch to epoch.

Trained by several processes at once (``shard=(rank, world_size)``), every process walks the
same batches and takes its own slice of each: the batches, their number and the reviews an
epoch sees are those of one process, so ``--batch-size`` means the same either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from critic.data.vocab import PAD_ID


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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

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
        for indices in self.batch_indices():
            if world_size > 1:
                # A last batch smaller than the number of ranks repeats reviews, so that no
                # rank is left without a slice (and all take the same number of steps).
                indices = np.resize(indices, max(len(indices), world_size))[rank::world_size]
            token_ids, lengths = pad_batch([self.split.review(i) for i in indices], self.max_length)
            labels = torch.from_numpy(self.split.labels[indices].astype(np.float32))
            yield Batch(token_ids, lengths, labels, indices)
