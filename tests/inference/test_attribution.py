"""The attribution methods behind the word weights: what each computes, checked by hand."""

import functools

import numpy as np
import pytest
import torch

from critic.config import ModelConfig
from critic.data.text import tokenize_many
from critic.data.vocab import UNK_ID
from critic.inference.attribution import (
    gradient_x_input,
    greedy_deletion,
    integrated_gradients,
    leave_one_out,
)
from critic.inference.bundle import load_bundle
from critic.inference.scoring import NeuralScorer, make_scorer, scale_to_unit
from critic.models import build_model
from support.bundles import small_bundle
from support.data import FROM_SCRATCH, random_batch


def additive_score(values: torch.Tensor):
    """A model whose logit is the sum of one value per token id: every method's answer is known."""

    def score(token_ids, lengths):
        real = torch.arange(token_ids.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        return (values[token_ids] * real).sum(1)

    return score


def test_leave_one_out_of_an_additive_model_is_each_tokens_own_value():
    values = torch.linspace(-1.0, 1.0, 50, dtype=torch.float64)
    token_ids, lengths = random_batch()
    got = leave_one_out(additive_score(values), token_ids, lengths)
    assert got.shape == token_ids.shape and got.dtype == torch.float64
    expected = values[token_ids].masked_fill(token_ids == 0, 0.0)
    expected[lengths == 1, 0] -= values[UNK_ID]  # a lone token, deleted, reads as <unk>
    assert torch.allclose(got, expected)


@pytest.mark.parametrize("settle", [False, True])
def test_greedy_deletion_of_an_additive_model_is_leave_one_out(settle):
    # Each token's fall is its own value whatever else is gone: the rounds change nothing.
    values = torch.linspace(-1.0, 1.0, 50, dtype=torch.float64)
    token_ids, lengths = random_batch()
    score = additive_score(values)
    got = greedy_deletion(score, token_ids, lengths, words=3, pool=6, rows_per_pass=7,
                          settle=settle)  # fmt: skip
    assert torch.allclose(got, leave_one_out(score, token_ids, lengths))


def test_greedy_deletion_finds_words_that_matter_only_together():
    # The logit saturates at 2: "superb" (2) and "wonderful" (2) each make the review positive
    # alone, so deleting either alone changes nothing and leave-one-out weighs every token 0.
    # Once the first is gone the second carries the answer, and the rounds find it.
    values = torch.tensor([0.0, 0.0, 2.0, 2.0, 1.0], dtype=torch.float64)

    def saturating(token_ids, lengths):
        return torch.clamp(additive_score(values)(token_ids, lengths), max=2.0)

    token_ids, lengths = torch.tensor([[2, 3, 4]]), torch.tensor([3])
    assert torch.equal(leave_one_out(saturating, token_ids, lengths), torch.zeros(1, 3).double())
    got = greedy_deletion(saturating, token_ids, lengths, words=2, settle=False)
    # The first "superb" goes first (no candidate moves the logit; the first wins the tie),
    # then "wonderful": 2 -> 1 once it is gone too; the 1-point word was tried after the
    # first and moved nothing.
    assert got[0].tolist() == [0.0, 1.0, 0.0]
    assert torch.equal(greedy_deletion(saturating, token_ids[:, :1], torch.tensor([1])),
                       leave_one_out(saturating, token_ids[:, :1], torch.tensor([1])))  # fmt: skip
    # Settled, each chosen word is weighed with the other chosen gone: both carry the answer
    # alone there (2 -> 1), and the 1-point word cannot be deleted after them (nothing left).
    settled = greedy_deletion(saturating, token_ids, lengths, words=2)
    assert settled[0].tolist() == [1.0, 1.0, 0.0]


def test_a_beam_finds_a_pair_that_the_one_at_a_time_rounds_miss():
    # Deleting "a" alone moves the logit most (1.5), so the rounds take it first; but "b" and
    # "c" (1 each alone) move it 4 deleted together. A beam of 2 keeps {b} beside {a} and
    # reaches {b, c}; settled, b and c then weigh what each carries with the other gone.
    def interacting(token_ids, lengths):
        real = torch.arange(token_ids.size(1)).unsqueeze(0) < lengths.unsqueeze(1)

        def gone(token):
            return (~((token_ids == token) & real).any(1)).double()

        a, b, c = gone(2), gone(3), gone(4)
        return 5.0 - 1.5 * a - b - c - 2.0 * b * c

    token_ids, lengths = torch.tensor([[2, 3, 4, 5]]), torch.tensor([4])
    rounds = greedy_deletion(interacting, token_ids, lengths, words=2)
    searched = greedy_deletion(interacting, token_ids, lengths, words=2, beam=2)
    assert rounds[0].tolist() == [1.5, 1.0, 3.0, 0.0]  # chose a, then b: deleted, 5 -> 2.5
    assert searched[0].tolist() == [1.5, 3.0, 3.0, 0.0]  # chose b and c: 5 -> 1
    assert torch.equal(  # a beam of one is the rounds
        greedy_deletion(interacting, token_ids, lengths, words=2, beam=1), rounds
    )
    with pytest.raises(ValueError, match="beam must be at least 1"):
        greedy_deletion(interacting, token_ids, lengths, beam=0)


def test_windows_share_their_fall_among_their_words_and_widths_are_averaged():
    values = torch.tensor([0.0, 0.0, 1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    token_ids, lengths = torch.tensor([[2, 3, 4, 5]]), torch.tensor([4])
    got = leave_one_out(additive_score(values), token_ids, lengths, widths=(1, 2))
    # Windows of two: (1+2), (2+4), (4+8); each token gets the mean of the windows it is in.
    pairs = torch.tensor([3.0, (3.0 + 6.0) / 2, (6.0 + 12.0) / 2, 12.0], dtype=torch.float64)
    singles = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    assert torch.allclose(got[0], (singles + pairs) / 2)


def test_leave_one_out_is_the_fall_in_the_logit_when_each_token_is_deleted(trained_bundle):
    bundle = load_bundle(trained_bundle)
    scorer = NeuralScorer(bundle)
    tokens = tokenize_many(["A dull, lifeless film, but the ending was great fun."])[0]
    ids = torch.from_numpy(scorer.vocab.encode(tokens).astype(np.int64))
    model = bundle.model.eval()
    with torch.no_grad():
        full = model(ids.unsqueeze(0), torch.tensor([len(ids)]))
        by_hand = [
            full
            - model(torch.cat([ids[:t], ids[t + 1 :]]).unsqueeze(0), torch.tensor([len(ids) - 1]))
            for t in range(len(ids))
        ]
    # Passes of three variants: several passes, each a batch of its own.
    got = leave_one_out(model, ids.unsqueeze(0), torch.tensor([len(ids)]), rows_per_pass=3)
    assert got[0].tolist() == pytest.approx(torch.cat(by_hand).tolist(), abs=1e-5)


@pytest.mark.parametrize(
    "way", [leave_one_out, greedy_deletion, functools.partial(greedy_deletion, settle=False)]
)
def test_a_reviews_weights_do_not_depend_on_the_reviews_beside_it(way):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="gru", vocab_size=50, embedding_dim=8, hidden_dim=6))
    model.eval()
    token_ids, lengths = random_batch()
    together = way(model, token_ids, lengths)
    for row in range(len(token_ids)):
        n = int(lengths[row])
        alone = way(model, token_ids[row : row + 1, :n], lengths[row : row + 1])
        assert torch.allclose(together[row, :n], alone[0], atol=1e-5)
        assert (together[row, n:] == 0).all()


NEURAL_NAMES = FROM_SCRATCH


@pytest.mark.parametrize("name", NEURAL_NAMES)
def test_every_neural_architecture_gets_one_weight_in_unit_range_per_token_read(tmp_path, name):
    scorer = make_scorer(load_bundle(small_bundle(tmp_path, name)))
    reviews = ["A wonderful film!", "Boring. " * 40, "meh", "Not good, not funny at all."]
    tokenized = tokenize_many(reviews)
    weights = scorer.word_weights(tokenized)
    for tokens, row in zip(tokenized, weights, strict=True):
        assert len(row) == min(len(tokens), scorer.max_length)
        assert np.abs(row).max() <= 1.0 + 1e-12
    assert np.abs(weights[0]).max() == pytest.approx(1.0)  # an untrained model still leans
    alone = scorer.word_weights(tokenized[3:])
    assert np.allclose(alone[0], weights[3], atol=1e-4)  # padding beside it changes nothing


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(name="lstm"),
        ModelConfig(name="gru", bidirectional=True),
        ModelConfig(name="bilstm", pooling="max"),
        ModelConfig(name="cnn-lstm", pool_size=2),
    ],
    ids=lambda c: f"{c.name}-{c.pooling}",
)
@pytest.mark.parametrize("baseline_id", [None, UNK_ID], ids=["zeros", "unk"])
def test_integrated_gradients_add_up_to_the_logit_less_the_baselines(config, baseline_id):
    torch.manual_seed(0)
    model = build_model(config.replace(vocab_size=50, embedding_dim=8, hidden_dim=6)).eval()
    with torch.no_grad():  # larger weights than at initialisation: a model far from linear
        for parameter in model.parameters():
            parameter.mul_(3.0)
    token_ids, lengths = random_batch()
    # 128 alphas over 6 reviews: several passes of ROWS_PER_PASS rows, summed.
    shares = integrated_gradients(model, token_ids, lengths, steps=128, baseline_id=baseline_id)
    with torch.no_grad():
        logits = model(token_ids, lengths)
    moved = logits - logit_at_baseline(model, token_ids, lengths, baseline_id)
    assert moved.abs().max() > 0.3, "the check needs reviews that moved the logit"
    # Max-pooling and ReLU bend the path from the baseline where another step or filter takes
    # over; the midpoint rule converges slowly across such kinks, and fast elsewhere.
    kinked = config.pooling == "max" or config.name == "cnn-lstm"
    tolerance = 0.03 if kinked else 1e-3
    assert torch.allclose(shares.sum(1), moved, rtol=tolerance, atol=tolerance)
    assert (shares[token_ids == 0] == 0).all()
    assert all(p.grad is None for p in model.parameters()), "no gradients left behind"
    # Plain gradient x input does not add up.
    plain = gradient_x_input(model, token_ids, lengths)
    assert (plain.sum(1) - moved).abs().max() > 3 * tolerance


def logit_at_baseline(model, token_ids, lengths, baseline_id) -> torch.Tensor:
    """The review integrated gradients starts from: every real token's vector zero, or
    ``baseline_id``'s; padding as it was."""
    real = (token_ids != 0).unsqueeze(2)

    def replace(module, inputs, output):
        base = 0.0 if baseline_id is None else module.weight[baseline_id]
        return torch.where(real, base, output)

    hook = model.embedding.register_forward_hook(replace)
    try:
        with torch.no_grad():
            return model(token_ids, lengths)
    finally:
        hook.remove()


def test_gradient_x_input_is_each_word_vector_dotted_with_the_logits_gradient():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="lstm", vocab_size=50, embedding_dim=8, hidden_dim=6))
    model.eval()
    token_ids, lengths = random_batch()
    embedded = model.embedding(token_ids).detach().requires_grad_(True)
    hook = model.embedding.register_forward_hook(lambda module, inputs, output: embedded)
    try:
        model(token_ids, lengths).sum().backward()
    finally:
        hook.remove()
    expected = (embedded.grad * embedded).sum(-1).masked_fill(token_ids == 0, 0.0)
    model.zero_grad(set_to_none=True)
    assert torch.allclose(gradient_x_input(model, token_ids, lengths), expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "attention", "ngrams", "attention-ngrams"])
def test_the_served_weights_of_a_neural_model_are_its_greedy_deletion_scaled(
    kind, trained_bundle, tmp_path
):
    # Models with terms of their own (attention's, the n-gram bag's) are served by deletion
    # too: the deletion test found it the more faithful (docs/benchmarks.md).
    bundle = trained_bundle if kind == "lstm" else small_bundle(tmp_path, kind)
    scorer = make_scorer(load_bundle(bundle))
    assert kind == "lstm" or hasattr(scorer.model, "word_weights")
    tokenized = tokenize_many(["A dull, lifeless film.", "I loved every minute of it!"])
    served = scorer.word_weights(tokenized)
    for tokens, weights in zip(tokenized, served, strict=True):
        ids = torch.from_numpy(scorer.vocab.encode(tokens).astype(np.int64)).unsqueeze(0)
        falls = greedy_deletion(scorer.model, ids, torch.tensor([ids.size(1)]))[0].numpy()
        assert weights == pytest.approx(scale_to_unit(falls), abs=1e-6)
