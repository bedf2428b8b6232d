import numpy as np
import pytest
import torch
from torch.nn import functional as F

from critic.config import ModelConfig
from critic.errors import CriticError
from critic.models import NEURAL, build_model, model_names
from critic.models.fast_lstm import lstm_layer
from critic.models.nbsvm import NBSVM, ngrams


def random_batch(vocab_size=50, batch=6, steps=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    token_ids = torch.randint(2, vocab_size, (batch, steps), generator=generator)
    token_ids[torch.arange(steps).expand(batch, -1) >= lengths.unsqueeze(1)] = 0
    return token_ids, lengths


@pytest.mark.parametrize("name", model_names(NEURAL))
def test_every_model_maps_a_batch_to_one_logit_per_review(name):
    model = build_model(ModelConfig(name=name, vocab_size=50, embedding_dim=8, hidden_dim=6))
    token_ids, lengths = random_batch()
    for mode in (model.train, model.eval):
        mode()
        logits = model(token_ids, lengths)
        assert logits.shape == (6,)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", model_names(NEURAL))
def test_every_model_learns_from_one_batch(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, vocab_size=50, embedding_dim=8, hidden_dim=6))
    token_ids, lengths = random_batch()
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    losses = []
    for _ in range(15):
        loss = F.binary_cross_entropy_with_logits(model(token_ids, lengths), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", model_names(NEURAL))
def test_padding_after_a_review_does_not_change_its_logit(name):
    model = build_model(ModelConfig(name=name, vocab_size=50, embedding_dim=8, hidden_dim=6)).eval()
    token_ids, lengths = random_batch()
    alone = model(token_ids[1:2, : lengths[1]], lengths[1:2])
    in_batch = model(token_ids, lengths)[1]
    assert torch.allclose(alone[0], in_batch, atol=1e-6)


def test_an_unknown_model_name_lists_the_valid_ones():
    with pytest.raises(CriticError, match=r"unknown model 'transformer'; valid models: .*lstm"):
        build_model(ModelConfig(name="transformer"))


@pytest.mark.parametrize("layers", [1, 2])
def test_the_fast_cpu_lstm_equals_torch_lstm_in_values_and_gradients(layers):
    torch.manual_seed(0)
    reference = torch.nn.LSTM(5, 7, num_layers=layers).double()
    inputs = torch.randn(9, 4, 5, dtype=torch.double, requires_grad=True)
    weights = torch.randn(9, 4, 7, dtype=torch.double)
    expected, _ = reference(inputs)
    (expected * weights).sum().backward()
    expected_grads = [inputs.grad.clone()] + [p.grad.clone() for p in reference.parameters()]
    inputs.grad = None
    reference.zero_grad()

    outputs = inputs
    for layer in range(layers):
        outputs = lstm_layer(
            outputs,
            *(
                getattr(reference, f"{n}_l{layer}")
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ),
        )
    assert torch.allclose(outputs, expected, atol=1e-12)
    (outputs * weights).sum().backward()
    grads = [inputs.grad] + [p.grad for p in reference.parameters()]
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-10)


def test_the_reference_lstm_has_the_reference_shape():
    model = build_model(ModelConfig())
    assert model.embedding.weight.shape == (5000, 32)
    assert model.lstm.hidden_size == 100 and model.lstm.num_layers == 1
    assert sum(p.numel() for p in model.parameters()) == 213_701


def test_training_mode_on_cpu_gives_the_same_logits_as_torch_lstm():
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=50, embedding_dim=8, hidden_dim=6))
    token_ids, lengths = random_batch()
    model.train()
    fast = model(token_ids, lengths)
    with torch.no_grad():
        reference = model(token_ids, lengths)  # no grad: nn.LSTM's own path
    assert torch.allclose(fast, reference, atol=1e-5)


# --- nbsvm ---------------------------------------------------------------------------------

GOOD = ["a", "great", "film", "truly", "great", "acting"]
BAD = ["not", "good", "a", "dull", "film"]


def test_ngrams_lists_every_one_to_n_gram_shortest_first():
    assert ngrams(["not", "so", "good"], 3) == [
        "not", "so", "good", "not so", "so good", "not so good",
    ]  # fmt: skip
    assert ngrams(["one"], 3) == ["one"]
    assert ngrams([], 2) == []


def fitted_nbsvm(**changes) -> NBSVM:
    positives = [["a", "great", "film"], ["great", "acting"], ["truly", "great"], ["a", "joy"]]
    negatives = [["not", "good"], ["a", "dull", "film"], ["dull", "and", "not", "good"], ["bad"]]
    tokens = positives * 5 + negatives * 5
    labels = np.array([1] * 20 + [0] * 20)
    model = build_model(ModelConfig(name="nbsvm", min_df=2, **changes))
    model.fit(
        tokens, labels, positives + negatives, np.array([1] * 4 + [0] * 4), log=lambda _: None
    )
    return model


def test_nbsvm_is_registered_as_its_own_kind():
    from critic.models import model_kind

    assert model_kind("nbsvm") == "nbsvm" and model_kind("lstm") == NEURAL
    assert "nbsvm" in model_names() and "nbsvm" not in model_names(NEURAL)


def test_nbsvm_learns_which_n_grams_are_positive():
    model = fitted_nbsvm()
    assert model.coefficients[model.index["great"]] > 0
    assert model.coefficients[model.index["dull"]] < 0
    assert model.coefficients[model.index["not good"]] < 0
    logits = model.decision_function([GOOD, BAD])
    assert logits[0] > 0 > logits[1]
    assert model.config.c is not None  # the chosen C is recorded


def test_an_nbsvm_logit_is_the_bias_plus_each_present_n_gram_once():
    model = fitted_nbsvm()
    expected = model.bias + sum(
        float(model.coefficients[model.index[gram]])
        for gram in set(ngrams(GOOD, 3))
        if gram in model.index
    )
    assert model.decision_function([GOOD])[0] == pytest.approx(expected, abs=1e-5)
    assert model.decision_function([["zebra", "quokka"]])[0] == pytest.approx(model.bias)


def test_nbsvm_token_contributions_add_up_to_the_logit_less_the_bias():
    model = fitted_nbsvm()
    for tokens in (GOOD, BAD, ["great", "great", "great"], []):
        shares = model.token_contributions(tokens)
        assert len(shares) == len(tokens)
        assert shares.sum() == pytest.approx(
            model.decision_function([tokens])[0] - model.bias, abs=1e-5
        )


def test_nbsvm_can_pick_the_n_gram_length_on_validation():
    model = fitted_nbsvm(select_ngrams=True, c=1.0)
    assert model.config.ngram_max in (1, 2, 3) and model.config.c == 1.0
    assert all(gram.count(" ") < model.ngram_max for gram in model.vocabulary)
