"""The language model pre-training trains: it predicts words it has not read, from the
classifier's own embedding and encoder, and refuses models it cannot pre-train."""

import math

import pytest
import torch

from critic.config import ModelConfig
from critic.errors import CriticError
from critic.models import build_model
from critic.models.language_model import EncoderLanguageModel, word_encoder

VOCAB = 40


def attention(**changes):
    settings = {"name": "attention", "cell": "gru", "vocab_size": VOCAB, "embedding_dim": 16}
    return build_model(ModelConfig(**{**settings, "hidden_dim": 16, **changes}))


def noise():
    return torch.randint(2, VOCAB, (16, 30))


def pattern():
    """Each word follows from the one before: word + 1, from a random start."""
    return (torch.randint(0, VOCAB - 2, (16, 1)) + torch.arange(30)) % (VOCAB - 2) + 2


def fit(language_model, texts, steps=80):
    """Train on a fresh batch of ``texts()`` a step; return the loss per word on another."""
    optimizer = torch.optim.Adam(language_model.parameters(), lr=0.02)
    for _ in range(steps):
        token_ids = texts()
        total, count = language_model(token_ids, torch.full((16,), 30))
        optimizer.zero_grad()
        (total / count).backward()
        optimizer.step()
    language_model.eval()
    with torch.no_grad():
        return float(language_model.language_loss(texts(), torch.full((16,), 30)))


def test_words_it_has_not_read_cannot_be_predicted_from_noise():
    # Fresh random words every batch: a model that sees only the words before (forward) or
    # after (backward) the one it predicts can do no better than guessing among the vocabulary.
    # One that saw the word itself would drive this loss towards zero.
    torch.manual_seed(0)
    loss = fit(EncoderLanguageModel(attention(), "attention", 0.0), noise)
    assert loss > 0.9 * math.log(VOCAB - 2)


def test_a_pattern_in_the_text_is_learned():
    # The same model, on text where each word follows from its neighbours, learns it.
    torch.manual_seed(0)
    loss = fit(EncoderLanguageModel(attention(), "attention", 0.0), pattern)
    assert loss < 0.5


def test_training_it_trains_the_classifiers_own_modules():
    model = attention()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    torch.manual_seed(0)
    fit(EncoderLanguageModel(model, "attention", 0.0), noise, steps=3)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert any(name.startswith("embedding") for name in changed)
    assert any(name.startswith("encoder") for name in changed)
    assert not any(name.startswith(("attention", "output")) for name in changed)  # the head's


def test_padding_and_one_word_reviews_predict_nothing():
    language_model = EncoderLanguageModel(attention(), "attention", 0.0)
    token_ids = torch.tensor([[5, 6, 7, 0], [9, 0, 0, 0]])
    total, count = language_model(token_ids, torch.tensor([3, 1]))
    assert count == 4  # 2 next words and 2 previous words, all in the first review
    assert torch.isfinite(total)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"name": "cnn-lstm"}, "cnn-lstm has no recurrent encoder reading its word embeddings"),
        ({"name": "lstm"}, "lstm has no recurrent encoder reading its word embeddings"),
        ({"name": "ngrams"}, "ngrams has no recurrent encoder"),
        (
            {"name": "attention", "num_layers": 2},
            "a bidirectional encoder of 2 layers would see the words it predicts",
        ),
    ],
)
def test_models_it_cannot_pretrain_are_refused_in_one_line(config, message):
    model = build_model(ModelConfig(**{"vocab_size": VOCAB, **config}))
    with pytest.raises(CriticError, match=message) as error:
        EncoderLanguageModel(model, config["name"], 0.0)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["gru", "bilstm", "attention", "attention-ngrams"])
def test_the_recurrent_models_reading_words_can_be_pretrained(name):
    model = build_model(ModelConfig(name=name, vocab_size=VOCAB, ngram_buckets=8))
    assert word_encoder(model) is not None
    language_model = EncoderLanguageModel(model, name, 0.1)
    total, count = language_model(torch.randint(2, VOCAB, (2, 6)), torch.tensor([6, 4]))
    assert count == (5 + 3) * word_encoder(model).directions and torch.isfinite(total)
