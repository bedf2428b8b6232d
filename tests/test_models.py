import pytest
import torch
from torch.nn import functional as F

from critic.config import ModelConfig
from critic.errors import CriticError
from critic.models import NEURAL, build_model, model_names
from critic.models.fast_lstm import lstm_layer


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
