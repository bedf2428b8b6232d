"""A fastText-style neural bag of n-grams (Joulin et al. 2017).

Word order matters in sentiment mostly at short range ("not good", "waste of time"), and a
bag of uni-, bi- and tri-grams captures that at a tiny fraction of a recurrent network's cost.
The n-grams are computed inside ``forward`` from the token ids, so the model takes the same
(token_ids, lengths) as every other and needs no feature extraction of its own: each n-gram of
two or more ids is hashed into one of ``ngram_buckets`` rows of a shared table (the hashing
trick; collisions are rare enough at 2^20 buckets not to matter), unigrams keep their
vocabulary rows. A review is the mean of its n-grams' vectors, then one linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from critic.config import ModelConfig
from critic.data.vocab import PAD_ID
from critic.models.registry import register
from critic.models.rnn import refuse_pooling

# Odd 61-bit multipliers for a polynomial hash of an n-gram's ids (fits in int64 arithmetic
# with wrap-around, which is what torch does).
_HASH_MULTIPLIERS = (0x9E3779B97F4A7C15 & ((1 << 61) - 1), 0xBF58476D1CE4E5B9 & ((1 << 61) - 1))


def ngram_ids(
    token_ids: torch.Tensor, lengths: torch.Tensor, order: int, vocab_size: int, buckets: int
) -> torch.Tensor:
    """(batch, time) ids -> (batch, order * time) rows of the n-gram table, PAD_ID where none.

    Unigram ``w`` keeps row ``w``; an n-gram of n >= 2 ids gets row ``vocab_size + hash mod
    buckets``, where the hash depends on n as well as the ids. An n-gram that would reach past
    a review's last real token is padding, so padding never changes a review's bag.
    """
    batch, steps = token_ids.shape
    positions = torch.arange(steps, device=token_ids.device).expand(batch, -1)
    rows = [token_ids]
    hashed = token_ids.clone()
    for n in range(2, order + 1):
        # hash of (w_t, ..., w_{t+n-1}): h_n = h_{n-1} * M + w_{t+n-1}, then shifted by n.
        following = torch.zeros_like(token_ids)
        following[:, : steps - n + 1] = token_ids[:, n - 1 :]
        hashed = hashed * _HASH_MULTIPLIERS[(n - 2) % 2] + following + n
        row = vocab_size + torch.remainder(hashed, buckets)
        valid = positions + n <= lengths.unsqueeze(1)
        rows.append(torch.where(valid, row, torch.full_like(row, PAD_ID)))
    return torch.cat(rows, dim=1)


@register(
    "ngrams",
    recipe={
        # Measured on the embedded IMDB split: words and word pairs (trigrams in 2^18
        # buckets did worse, 90.2%), a 30,000-word vocabulary (5,000: 90.1%) and a high
        # learning rate; best after two epochs, over-fits in the third.
        "data": {"vocab_size": 30000, "max_length": 800},
        "model": {"embedding_dim": 16, "ngram_order": 2},
        "train": {"learning_rate": 0.01, "epochs": 4, "patience": 1},
    },
)
class NgramBagClassifier(nn.Module):
    """Mean of uni- to ``ngram_order``-gram embeddings, dropout, one logit."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        refuse_pooling(config, "averages a review's word and n-gram vectors")
        self.config = config
        self.order = config.ngram_order
        self.buckets = config.ngram_buckets
        rows = config.vocab_size + (self.buckets if self.order > 1 else 0)
        # mode="mean" leaves padding_idx out of both the sum and the count.
        self.embedding = nn.EmbeddingBag(
            rows, config.embedding_dim, mode="mean", padding_idx=PAD_ID
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.embedding_dim, 1)
        with torch.no_grad():
            # fastText's initialisation: small, so that early updates are not drowned.
            self.embedding.weight.uniform_(-1.0 / config.embedding_dim, 1.0 / config.embedding_dim)
            self.embedding.weight[PAD_ID].zero_()

    def _rows(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return ngram_ids(token_ids, lengths, self.order, self.config.vocab_size, self.buckets)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        bag = self.embedding(self._rows(token_ids, lengths))  # (batch, embedding)
        return self.output(self.dropout(bag)).squeeze(1)  # (batch,)

    def word_weights(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, time) signed share of each token in the logit.

        The model is linear in its bag, so the logit splits exactly into one term per n-gram;
        each n-gram's term is shared equally among the tokens it spans.
        """
        batch, steps = token_ids.shape
        rows = self._rows(token_ids, lengths)  # (batch, order * time)
        vectors = self.embedding.weight[rows]  # (batch, order * time, embedding)
        terms = vectors @ self.output.weight.squeeze(0)  # (batch, order * time)
        terms = terms * (rows != PAD_ID)
        counts = (rows != PAD_ID).sum(1, keepdim=True).clamp(min=1)
        terms = (terms / counts).view(batch, self.order, steps)
        weights = torch.zeros(batch, steps + self.order, device=token_ids.device)
        for n in range(1, self.order + 1):
            for offset in range(n):
                weights[:, offset : offset + steps] += terms[:, n - 1] / n
        return weights[:, :steps]
