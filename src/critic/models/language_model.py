"""A language model on a classifier's own embedding and recurrent encoder, for pre-training.

Dai & Le (2015) and ULMFiT (Howard & Ruder 2018) start a sentiment network from a language
model trained on the task's texts: predicting the next word teaches the recurrent weights what
a review's sentences look like -- negation, contrast, a verdict in the last line -- before any
label is seen. :class:`EncoderLanguageModel` borrows the classifier's ``embedding`` and its
word encoder (:attr:`word_encoder`, a :class:`~critic.models.rnn.RecurrentEncoder`): the
forward direction's output at word ``t`` predicts word ``t + 1``, the backward direction's
predicts word ``t - 1`` (each has read only its own side of the review, so neither sees the
word it predicts). Training it trains those shared modules; the heads are thrown away.

The output layer is PyTorch's adaptive softmax (Grave et al. 2017): a vocabulary sorted by
frequency, as :class:`~critic.data.vocab.Vocab` is, splits into a head of frequent words and
smaller tail clusters, so a step costs a fraction of a 30,000-way softmax.
"""

from __future__ import annotations

import torch
from torch import nn

from critic.data.vocab import UNK_ID
from critic.errors import CriticError
from critic.models.rnn import RecurrentEncoder, padding_mask

# Where the adaptive softmax's clusters start, for a vocabulary sorted by frequency: the head
# (here 200 words, 61% of the running text of the embedded reviews) is what every word pays
# for. With a head of 2,000 words a pre-training step of attention (64 reviews of 250
# words) took 0.98 s on 2 cores against the classifier's 0.21 s; with these cutoffs and
# OUTPUT_WORDS an epoch over the training split takes 131-156 s, about one adversarial epoch
# of attention's recipe.
CUTOFFS = (200, 1000, 5000)
# The words it predicts: the most frequent, 96% of the running text; rarer ones are predicted
# as <unk>. A cluster of the 20,000 rarest words cost as much as the head, for words that
# pre-training learns little from.
OUTPUT_WORDS = 10000


def word_encoder(model: nn.Module) -> RecurrentEncoder | None:
    """The recurrent encoder that reads ``model``'s word embeddings directly, or None.

    Models say so through a ``word_encoder`` attribute; those without one (the reference LSTM,
    the n-gram and convolutional models, whose recurrent layers read phrase features) cannot
    be pre-trained this way.
    """
    encoder = getattr(getattr(model, "module", model), "word_encoder", None)
    return encoder if isinstance(encoder, RecurrentEncoder) else None


def check_pretrainable(model: nn.Module, name: str) -> RecurrentEncoder:
    """``model``'s word encoder, or one clear error saying why it cannot be pre-trained."""
    encoder = word_encoder(model)
    if encoder is None:
        raise CriticError(
            f"--pretrain-epochs: {name} has no recurrent encoder reading its word embeddings; "
            "pre-train gru, bilstm, attention or attention-ngrams"
        )
    if encoder.directions == 2 and len(encoder.layers) > 1:
        # The second layer's forward half reads the first layer's backward half, which has
        # already read the word it would be asked to predict.
        raise CriticError(
            f"--pretrain-epochs: a bidirectional encoder of {len(encoder.layers)} layers would "
            "see the words it predicts; pre-train one layer (--num-layers 1)"
        )
    return encoder


class EncoderLanguageModel(nn.Module):
    """Next- and previous-word prediction from a classifier's embedding and word encoder."""

    def __init__(
        self,
        classifier: nn.Module,
        name: str,
        dropout: float,
        *,
        cutoffs: tuple[int, ...] = CUTOFFS,
        output_words: int = OUTPUT_WORDS,
    ):
        super().__init__()
        self.encoder = check_pretrainable(classifier, name)
        self.embedding = getattr(classifier, "module", classifier).embedding
        self.dropout = nn.Dropout(dropout)
        self.output_words = min(self.embedding.num_embeddings, output_words)
        self.hidden = hidden = self.encoder.output_size // self.encoder.directions
        cuts = [c for c in cutoffs if c < self.output_words - 1] or [max(1, self.output_words // 2)]
        self.heads = nn.ModuleList(
            nn.AdaptiveLogSoftmaxWithLoss(hidden, self.output_words, cuts, div_value=4.0)
            for _ in range(self.encoder.directions)
        )

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(summed negative log-likelihood, number of words predicted) over the batch."""
        embedded = self.dropout(self.embedding(token_ids))
        outputs = self.dropout(self.encoder(embedded, lengths))  # (batch, time, out)
        # A word has a next word when the one after it is real, and a previous word when it is
        # itself real and not the first: the same mask, shifted.
        pairs = padding_mask(lengths, token_ids.size(1))[:, 1:]  # (batch, time - 1)
        hidden = self.hidden
        total = outputs.new_zeros(())
        # Forward half at t predicts t + 1; backward half at t + 1 predicts t.
        sides = [(outputs[:, :-1, :hidden], token_ids[:, 1:])]
        if self.encoder.directions == 2:
            sides.append((outputs[:, 1:, hidden:], token_ids[:, :-1]))
        count = 0
        for head, (states, targets) in zip(self.heads, sides, strict=True):
            chosen = states[pairs]
            if len(chosen) == 0:
                continue
            words = targets[pairs]
            words = words.masked_fill(words >= self.output_words, UNK_ID)
            result = head(chosen, words)
            # ``result.loss`` is the mean; the caller sums across batches of unequal size.
            total = total + result.loss * len(chosen)
            count += len(chosen)
        return total, count

    def language_loss(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The mean negative log-likelihood per predicted word (what training minimises)."""
        total, count = self(token_ids, lengths)
        return total / max(count, 1)
