"""One interface for every kind of model: token lists in, log-odds and word weights out.

The :class:`~critic.inference.predictor.Predictor` turns text into tokens and log-odds into answers; a
:class:`Scorer` does what lies between, for one kind of bundle:

* :class:`NeuralScorer` -- a PyTorch model over vocabulary ids, in length-sorted batches; word
  weights by deleting tokens, alone and the strongest few together
  (:mod:`critic.inference.attribution`);
* :class:`NBSVMScorer` -- the n-gram model's coefficients; each token's weight is its share
  of the n-grams that cover it;
* :class:`EnsembleScorer` -- its members' calibrated log-odds, weighted; word weights are the
  members' word weights, weighted the same way.

Each scorer reads at most ``max_length`` tokens of a review (the rest are ignored) and returns
raw log-odds: calibration is the predictor's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch

from critic.data.batches import pad_batch
from critic.data.vocab import UNK_ID
from critic.errors import CriticError
from critic.inference.attribution import greedy_deletion
from critic.inference.bundle import ENSEMBLE, Bundle, ShortReviews
from critic.inference.domain import DomainModel, review_lengths
from critic.models import NBSVM_KIND
from critic.system import keep_pace

TokenLists = Sequence[Sequence[str]]


class Scorer(Protocol):
    max_length: int
    """The most tokens of a review the model reads."""

    def logits(self, tokenized: TokenLists) -> np.ndarray:
        """(reviews,) raw log-odds of positive, float64."""
        ...

    def word_weights(self, tokenized: TokenLists) -> list[np.ndarray]:
        """Per review, one weight per token read (``min(len, max_length)``), in [-1, 1]."""
        ...

    def assess(self, tokenized: TokenLists) -> tuple[np.ndarray, np.ndarray | None]:
        """(reviews,) raw log-odds and domain scores (at most 1: typical; None when the
        bundle has no domain model), in one pass."""
        ...


def make_scorer(
    bundle: Bundle, batch_size: int = 64, neural: Callable[[Bundle, int], Scorer] | None = None
) -> Scorer:
    """The scorer for ``bundle``'s kind; ``neural`` builds the one for a neural model (or an
    ensemble's neural members): :class:`NeuralScorer` unless another backend is given."""
    if bundle.kind == NBSVM_KIND:
        return NBSVMScorer(bundle)
    if bundle.kind == ENSEMBLE:
        return EnsembleScorer(bundle, batch_size, neural)
    return (neural or NeuralScorer)(bundle, batch_size)


def scale_to_unit(values: np.ndarray) -> np.ndarray:
    """Divide by the largest magnitude, so the strongest token weighs 1 (or -1)."""
    peak = np.abs(values).max() if len(values) else 0.0
    return values / peak if peak > 0 else values


def weighted_log_odds(
    member_logits: np.ndarray, weights: Sequence[float], bias: float
) -> np.ndarray:
    """An ensemble's log-odds, ``bias + sum(weight_i * member_logit_i)``, per review, from its
    members' (reviews, members) calibrated log-odds."""
    # A row-wise sum rather than a matrix product: BLAS may add in another order for another
    # number of rows, and a review's answer must not depend on its neighbours.
    weights = np.asarray(weights, dtype=np.float64)
    return bias + (np.asarray(member_logits, dtype=np.float64) * weights).sum(axis=1)


def token_counts(tokenized: TokenLists) -> np.ndarray:
    """(reviews,) float64: each review's tokens, read or not."""
    return np.fromiter(map(len, tokenized), np.float64, len(tokenized))


def ensemble_log_odds(
    member_logits: np.ndarray,
    weights: Sequence[float],
    bias: float,
    short: ShortReviews | None = None,
    lengths: np.ndarray | None = None,
) -> np.ndarray:
    """(reviews,) an ensemble's log-odds from its members' (reviews, members) calibrated
    log-odds; with ``short``, each review's mix of the two sets by its ``lengths`` in tokens."""
    combined = weighted_log_odds(member_logits, weights, bias)
    if short is None:
        return combined
    share = short.share(lengths)
    return (1.0 - share) * combined + share * weighted_log_odds(
        member_logits, short.weights, short.bias
    )


def output_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers that turn a pooled representation into the logit: every model's ``output``
    (a hybrid has one per branch, whose logits it adds; a quantized copy's is a quantized
    linear layer, which reads the same input)."""
    layers = [
        module for name, module in model.named_modules() if name.rsplit(".", 1)[-1] == "output"
    ]
    if not layers:
        raise CriticError(f"{type(model).__name__} has no output layer to read its representation")
    return layers


def with_pooled(
    model: torch.nn.Module,
    layers: list[torch.nn.Module],
    token_ids: torch.Tensor,
    lengths: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch,) the logits and (batch, hidden) what the output layers read, in one forward
    pass: the inputs of ``layers`` (dropout is off in eval mode), side by side."""
    captured: list[torch.Tensor] = []
    hooks = [
        layer.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
        for layer in layers
    ]
    try:
        logits = model(token_ids, lengths)
    finally:
        for hook in hooks:
            hook.remove()
    return logits, torch.cat(captured, dim=1)


class DomainScored:
    """What every scorer shares: ``assess``, from its ``logits``, ``domain_features`` and the
    bundle's ``domain`` model."""

    domain: DomainModel | None

    def assess(self, tokenized: TokenLists) -> tuple[np.ndarray, np.ndarray | None]:
        """(reviews,) log-odds and their domain scores (None without a domain model)."""
        if self.domain is None:
            return self.logits(tokenized), None
        logits, raw = self.domain_features(tokenized)
        return logits, self.domain.scores(raw)


class NeuralScorer(DomainScored):
    def __init__(self, bundle: Bundle, batch_size: int = 64):
        assert bundle.vocab is not None
        self.model = bundle.model.eval()
        self.vocab = bundle.vocab
        self.max_length = bundle.config.data.max_length
        self.batch_size = batch_size
        self.device = next(self.model.parameters()).device
        self.domain = bundle.domain
        self._output_layers: list[torch.nn.Module] | None = None

    def _encode(self, tokenized: TokenLists) -> list[np.ndarray]:
        # A review of punctuation alone still gets an answer, from one unknown token.
        return [
            self.vocab.encode(tokens[: self.max_length]) if tokens else np.array([UNK_ID], np.int32)
            for tokens in tokenized
        ]

    def _batches(self, encoded: list[np.ndarray]):
        # Longest first, in batches of similar length: the least padding to step through.
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")
        for start in range(0, len(order), self.batch_size):
            keep_pace()  # a long run's threads follow the cores other processes leave it
            chosen = order[start : start + self.batch_size]
            token_ids, lengths = pad_batch([encoded[i] for i in chosen], self.max_length)
            yield chosen, token_ids.to(self.device), lengths.to(self.device)

    @torch.no_grad()
    def logits(self, tokenized: TokenLists) -> np.ndarray:
        encoded = self._encode(tokenized)
        logits = np.zeros(len(encoded), dtype=np.float64)
        for chosen, token_ids, lengths in self._batches(encoded):
            logits[chosen] = self.batch_logits(token_ids, lengths)
        return logits

    def batch_logits(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        """(batch,) log-odds of one padded batch: what another backend replaces."""
        return self.model(token_ids, lengths).double().cpu().numpy()

    def batch_outputs(
        self, token_ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        """(batch,) log-odds and (batch, hidden) pooled representations of one padded batch:
        what another backend replaces too."""
        if self._output_layers is None:  # found when first needed: a scorer may never be asked
            self._output_layers = output_layers(self.model)
        logits, pooled = with_pooled(self.model, self._output_layers, token_ids, lengths)
        return logits.double().cpu().numpy(), pooled.double().cpu().numpy()

    @torch.no_grad()
    def representations(self, tokenized: TokenLists) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reviews,) log-odds, (reviews, hidden) pooled representations -- what the output
        layer reads -- and (reviews,) the share of the tokens read that are unknown words."""
        encoded = self._encode(tokenized)
        unknown = np.fromiter(
            (np.count_nonzero(ids == UNK_ID) / len(ids) for ids in encoded),
            np.float64,
            len(encoded),
        )
        logits = np.zeros(len(encoded), dtype=np.float64)
        pooled: np.ndarray | None = None
        for chosen, token_ids, lengths in self._batches(encoded):
            batch_logits, batch_pooled = self.batch_outputs(token_ids, lengths)
            if pooled is None:
                pooled = np.zeros((len(encoded), batch_pooled.shape[1]), dtype=np.float64)
            logits[chosen], pooled[chosen] = batch_logits, batch_pooled
        assert pooled is not None
        return logits, pooled, unknown

    def domain_features(self, tokenized: TokenLists) -> tuple[np.ndarray, np.ndarray]:
        """(reviews,) log-odds and (reviews, features) the raw features of
        :data:`~critic.inference.domain.NEURAL_FEATURES`, in one pass."""
        assert self.domain is not None
        logits, pooled, unknown = self.representations(tokenized)
        raw = np.column_stack([unknown, review_lengths(tokenized), self.domain.density(pooled)])
        return logits, raw

    def word_weights(self, tokenized: TokenLists) -> list[np.ndarray]:
        encoded = self._encode(tokenized)
        read = [min(len(tokens), self.max_length) for tokens in tokenized]
        weights: list[np.ndarray] = [np.zeros(0)] * len(encoded)
        for chosen, token_ids, lengths in self._batches(encoded):
            scores = self.token_scores(token_ids, lengths).detach().double().cpu().numpy()
            for row, index in enumerate(chosen):
                weights[index] = scale_to_unit(scores[row, : read[index]])
        return weights

    def token_scores(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, time) each token's signed push on its review's logit, before scaling: the
        fall in the logit when that token is deleted -- alone, or for the few that move the
        answer most together, with the others of them gone
        (:func:`~critic.inference.attribution.greedy_deletion`) -- scored by
        :meth:`batch_logits`, so by another backend where one replaces it.

        For every neural kind, those with terms of their own too (attention's ``a_t (w . h_t)``,
        the n-gram bag's shares): the deletion test in docs/benchmarks.md found greedy deletion
        more faithful than each model's own terms (attention 41.0% of answers flipped by its top
        5 words against 34.0%, ngrams 31.5% against 28.5%), which stay a benchmark's way."""
        return greedy_deletion(self.batch_logits, token_ids, lengths)


class NBSVMScorer(DomainScored):
    def __init__(self, bundle: Bundle):
        self.model = bundle.model
        self.max_length = bundle.config.data.max_length
        self.domain = bundle.domain

    def logits(self, tokenized: TokenLists) -> np.ndarray:
        return self.model.decision_function([tokens[: self.max_length] for tokens in tokenized])

    def domain_features(self, tokenized: TokenLists) -> tuple[np.ndarray, np.ndarray]:
        """(reviews,) log-odds and (reviews, features) the raw features of
        :data:`~critic.inference.domain.NBSVM_FEATURES`, in one pass over the n-grams."""
        read = [tokens[: self.max_length] for tokens in tokenized]
        logits, unknown, uncovered = self.model.decision_and_coverage(read)
        return logits, np.column_stack([unknown, uncovered, review_lengths(tokenized)])

    def word_weights(self, tokenized: TokenLists) -> list[np.ndarray]:
        return [
            scale_to_unit(self.model.token_contributions(tokens[: self.max_length]))
            for tokens in tokenized
        ]


class EnsembleScorer(DomainScored):
    def __init__(
        self,
        bundle: Bundle,
        batch_size: int = 64,
        neural: Callable[[Bundle, int], Scorer] | None = None,
    ):
        ensemble = bundle.model
        self.domain = bundle.domain
        self.members = [make_scorer(member, batch_size, neural) for member in ensemble.members]
        self.temperatures = np.array([m.calibration.temperature for m in ensemble.members])
        self.weights = np.asarray(ensemble.weights, dtype=np.float64)
        self.bias = float(ensemble.bias)
        self.short = ensemble.short
        self.max_length = max(member.max_length for member in self.members)

    def short_shares(self, tokenized: TokenLists) -> np.ndarray:
        """(reviews,) how far each review counts as short (0 without short-review weights)."""
        if self.short is None:
            return np.zeros(len(tokenized))
        return self.short.share(token_counts(tokenized))

    def combine(self, member_logits: np.ndarray, tokenized: TokenLists) -> np.ndarray:
        """(reviews,) the ensemble's log-odds from its members' (reviews, members)."""
        return ensemble_log_odds(
            member_logits, self.weights, self.bias, self.short, token_counts(tokenized)
        )

    def member_logits(self, tokenized: TokenLists) -> np.ndarray:
        """(reviews, members): every member's calibrated log-odds."""
        return np.stack(
            [
                member.logits(tokenized) / temperature
                for member, temperature in zip(self.members, self.temperatures, strict=True)
            ],
            axis=1,
        )

    def logits(self, tokenized: TokenLists) -> np.ndarray:
        return self.combine(self.member_logits(tokenized), tokenized)

    def member_assessments(self, tokenized: TokenLists) -> tuple[np.ndarray, np.ndarray]:
        """(reviews, members) calibrated log-odds and domain scores, every member in one pass;
        a CriticError if a member has no domain model."""
        logits, scores = [], []
        for number, (member, temperature) in enumerate(
            zip(self.members, self.temperatures, strict=True), start=1
        ):
            member_logits, member_scores = member.assess(tokenized)
            if member_scores is None:
                raise CriticError(f"ensemble member {number} has no domain model")
            logits.append(member_logits / temperature)
            scores.append(member_scores)
        return np.stack(logits, axis=1), np.stack(scores, axis=1)

    def domain_features(self, tokenized: TokenLists) -> tuple[np.ndarray, np.ndarray]:
        """(reviews,) log-odds and (reviews, members) the members' domain scores."""
        member_logits, member_scores = self.member_assessments(tokenized)
        return self.combine(member_logits, tokenized), member_scores

    def word_weights(self, tokenized: TokenLists) -> list[np.ndarray]:
        combined = [np.zeros(min(len(tokens), self.max_length)) for tokens in tokenized]
        # Each review's own weight per member: the short-review set's, as far as it is short.
        share = self.short_shares(tokenized)[:, None]
        short = self.weights if self.short is None else np.asarray(self.short.weights)
        per_review = (1.0 - share) * self.weights + share * short
        for index, member in enumerate(self.members):
            if not per_review[:, index].any():
                continue
            member_weights = member.word_weights(tokenized)
            for total, weights, weight in zip(
                combined, member_weights, per_review[:, index], strict=True
            ):
                # A member that reads fewer tokens says nothing about the ones after.
                total[: len(weights)] += weight * weights
        return [scale_to_unit(total) for total in combined]
