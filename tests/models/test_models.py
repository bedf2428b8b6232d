import numpy as np
import pytest
import torch
from torch.nn import functional as F

from critic.config import ModelConfig, RunConfig
from critic.errors import CriticError
from critic.models import NEURAL, build_model, model_names, recipe, register, run_config
from critic.models.fast_lstm import lstm_layer
from critic.models.nbsvm import NBSVM, ngrams
from critic.models.ngrams import ngram_ids
from critic.models.rnn import reverse_padded
from support.data import FROM_SCRATCH, random_batch


@pytest.mark.parametrize("name", FROM_SCRATCH)
def test_every_model_maps_a_batch_to_one_logit_per_review(name):
    model = build_model(ModelConfig(name=name, vocab_size=50, embedding_dim=8, hidden_dim=6))
    token_ids, lengths = random_batch()
    for mode in (model.train, model.eval):
        mode()
        logits = model(token_ids, lengths)
        assert logits.shape == (6,)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", FROM_SCRATCH)
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


@pytest.mark.parametrize("name", FROM_SCRATCH)
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


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(name="bilstm", num_layers=2),
        ModelConfig(name="cnn-lstm", kernel_size=3, pool_size=2),
        ModelConfig(name="attention", cell="lstm"),
    ],
    ids=lambda config: config.name,
)
def test_training_mode_on_cpu_gives_the_same_logits_as_torch_lstm(config):
    torch.manual_seed(0)
    model = build_model(config.replace(vocab_size=50, embedding_dim=8, hidden_dim=6))
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


def test_nbsvm_integer_table_answers_as_the_string_path_and_batches_bit_for_bit():
    model = fitted_nbsvm()
    assert model.table is not None
    rng = np.random.default_rng(0)
    words = [*sorted(model.table.words), "zebra", "quokka"]
    reviews = [list(rng.choice(words, size=int(rng.integers(0, 40)))) for _ in range(60)]
    reviews += [GOOD, BAD, GOOD + BAD, ["great", "great", "great"], []]
    table = model.table
    batched = model.decision_function(reviews)
    lone = np.array([model.decision_function([tokens])[0] for tokens in reviews])
    model.table = None  # the string path: every n-gram joined and looked up by name
    strings = model.decision_function(reviews)
    model.table = table
    assert np.array_equal(batched, lone)
    np.testing.assert_allclose(batched, strings, rtol=0, atol=1e-9)


def test_nbsvm_coverage_is_the_same_from_the_table_and_the_string_path():
    model = fitted_nbsvm()
    rng = np.random.default_rng(1)
    words = [*sorted(model.table.words), "zebra", "quokka"]
    reviews = [list(rng.choice(words, size=int(rng.integers(1, 40)))) for _ in range(40)]
    reviews += [GOOD, BAD, ["zebra", "quokka"], ["great", "great", "great"]]
    table = model.table
    from_table = model.decision_and_coverage(reviews)
    model.table = None
    from_strings = model.decision_and_coverage(reviews)
    model.table = table
    for fast, slow in zip(from_table, from_strings, strict=True):
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    _, unknown, uncovered = from_table
    assert unknown[-2] == 1.0 and uncovered[-2] == 1.0  # no word the model knows
    assert unknown[-1] == 0.0


def test_nbsvm_keeps_the_string_path_when_the_integer_keys_would_overflow():
    from critic.models.nbsvm import GramTable

    # 3,000 distinct words: 3,001 ** 6 passes 2 ** 63, so six-word keys cannot be int64s.
    vocabulary = [f"w{i}" for i in range(3000)]
    assert GramTable.build(vocabulary, np.ones(3000), ngram_max=6) is None
    assert GramTable.build(vocabulary, np.ones(3000), ngram_max=5) is not None


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


# The architectures' own settings: each variant builds, answers, and ignores padding.
VARIANTS = [
    ModelConfig(name="gru", bidirectional=True, num_layers=2, dropout=0.2),
    ModelConfig(name="bilstm", num_layers=3, dropout=0.3),
    ModelConfig(name="cnn-lstm", conv_channels=5, kernel_size=4, pool_size=3),
    ModelConfig(name="cnn-lstm", kernel_size=1, pool_size=1, bidirectional=True),
    ModelConfig(name="lstm", pooling="max"),
    ModelConfig(name="bilstm", pooling="max"),
    ModelConfig(name="gru", pooling="mean", bidirectional=True),
    ModelConfig(name="cnn-lstm", pooling="max", pool_size=2, bidirectional=True),
    ModelConfig(name="attention", cell="gru", num_layers=2),
    ModelConfig(name="ngrams", ngram_order=1),
    ModelConfig(name="ngrams", ngram_order=3, ngram_buckets=7),
]


@pytest.mark.parametrize(
    "config", VARIANTS, ids=lambda c: f"{c.name}-{c.num_layers}-{c.ngram_order}"
)
def test_every_variant_answers_and_ignores_padding(config):
    torch.manual_seed(0)
    model = build_model(config.replace(vocab_size=50, embedding_dim=8, hidden_dim=6)).eval()
    token_ids, lengths = random_batch()
    logits = model(token_ids, lengths)
    assert logits.shape == (6,) and torch.isfinite(logits).all()
    for row in range(6):
        alone = model(token_ids[row : row + 1, : lengths[row]], lengths[row : row + 1])
        assert torch.allclose(alone[0], logits[row], atol=1e-6)


def test_bidirectional_and_deeper_models_have_more_parameters():
    def size(**settings):
        model = build_model(ModelConfig(vocab_size=50, embedding_dim=8, hidden_dim=6, **settings))
        return sum(p.numel() for p in model.parameters())

    assert size(name="gru", bidirectional=True) > size(name="gru")
    assert size(name="bilstm", num_layers=2) > size(name="bilstm") > size(name="lstm")


def test_pooling_reads_only_each_reviews_real_steps():
    config = ModelConfig(name="bilstm", vocab_size=50, embedding_dim=8, hidden_dim=1)
    encoder = build_model(config).encoder  # two directions of one unit each
    outputs = torch.tensor([[[1.0, -4.0], [3.0, -2.0], [99.0, 99.0]],
                            [[-5.0, 2.0], [-9.0, 9.0], [-7.0, 0.0]]])  # fmt: skip
    lengths = torch.tensor([2, 3])  # the first review's third step is padding
    assert encoder.pool(outputs, lengths, "max").tolist() == [[3.0, -2.0], [-5.0, 9.0]]
    mean = encoder.pool(outputs, lengths, "mean")
    assert torch.allclose(mean, torch.tensor([[2.0, -3.0], [-7.0, 11.0 / 3]]))
    # last: the forward half at the last real step, the backward half at the first step.
    assert encoder.pool(outputs, lengths, "last").tolist() == [[3.0, -4.0], [-7.0, 2.0]]
    with pytest.raises(CriticError, match="pooling must be one of last, max, mean"):
        ModelConfig(pooling="attention")


@pytest.mark.parametrize("name", ["attention", "ngrams", "attention-ngrams"])
def test_a_model_that_pools_its_own_way_refuses_a_pooling(name):
    with pytest.raises(CriticError, match="--pooling applies to lstm, gru, bilstm and cnn-lstm"):
        build_model(ModelConfig(name=name, vocab_size=50, pooling="max"))
    build_model(ModelConfig(name=name, vocab_size=50))  # the default is no pooling of ours


def test_reversing_each_review_within_its_length_leaves_padding_and_undoes_itself():
    sequences = torch.arange(8.0).view(4, 2, 1)  # (time, batch, 1)
    lengths = torch.tensor([4, 2])
    reversed_ = reverse_padded(sequences, lengths)
    assert reversed_[:, 0, 0].tolist() == [6.0, 4.0, 2.0, 0.0]
    assert reversed_[:, 1, 0].tolist() == [3.0, 1.0, 5.0, 7.0]  # padding (5, 7) stays put
    assert torch.equal(reverse_padded(reversed_, lengths), sequences)


@pytest.mark.parametrize("name", ["attention", "ngrams", "attention-ngrams"])
def test_word_weights_split_the_logit_exactly_and_are_zero_on_padding(name):
    torch.manual_seed(0)
    config = ModelConfig(name=name, vocab_size=50, embedding_dim=8, hidden_dim=6, ngram_order=3)
    model = build_model(config).eval()
    token_ids, lengths = random_batch()
    weights = model.word_weights(token_ids, lengths)
    assert weights.shape == token_ids.shape
    assert (weights[token_ids == 0] == 0).all()
    logits = model(token_ids, lengths)
    # logit = bias + the sum of the word weights: the difference is one constant, the bias.
    bias = logits - weights.sum(1)
    assert torch.allclose(bias, bias[0].expand_as(bias), atol=1e-5)
    assert (weights > 0).any() and (weights < 0).any()  # signed: towards either label


def test_ngrams_get_the_same_row_wherever_they_occur_and_orders_differ():
    token_ids = torch.tensor([[5, 6, 7, 5, 6, 0, 0]])
    rows = ngram_ids(token_ids, torch.tensor([5]), order=3, vocab_size=10, buckets=1000)
    unigrams, bigrams, trigrams = rows.view(3, 7)
    assert unigrams.tolist() == [5, 6, 7, 5, 6, 0, 0]
    assert bigrams[0] == bigrams[3] and bigrams[0] != bigrams[1]  # "5 6" twice, "6 7" once
    assert (bigrams[:4] >= 10).all() and (bigrams[4:] == 0).all()  # "6 <pad>" is no bigram
    assert (trigrams[:3] >= 10).all() and (trigrams[3:] == 0).all()
    assert trigrams[0] not in bigrams.tolist()


def test_model_settings_are_checked_and_old_configs_still_load():
    with pytest.raises(CriticError, match="cell must be lstm or gru"):
        ModelConfig(cell="rnn")
    with pytest.raises(CriticError, match=r"ngram_order must lie in 1\.\.5"):
        ModelConfig(ngram_order=0)
    with pytest.raises(CriticError, match="pool_size must be positive"):
        ModelConfig(pool_size=0)
    # A bundle written before these settings existed names none of them.
    old = {"name": "lstm", "embedding_dim": 32, "hidden_dim": 100, "num_layers": 1,
           "dropout": 0.0, "vocab_size": 5000}  # fmt: skip
    assert RunConfig.from_dict({"model": old}).model == ModelConfig()


def test_the_settings_given_beat_the_recipe_which_beats_the_defaults():
    chosen = recipe("ngrams")
    assert chosen, "ngrams trains with settings of its own"
    config = run_config("ngrams", data={"max_length": 123})
    assert config.model.name == "ngrams"
    assert config.data.max_length == 123
    for section, values in chosen.items():
        for name, value in values.items():
            if (section, name) != ("data", "max_length"):
                assert getattr(getattr(config, section), name) == value
    assert run_config("lstm") == RunConfig()
    with pytest.raises(CriticError, match="unknown setting"):
        run_config("lstm", model={"layers": 2})
    with pytest.raises(ValueError, match="unknown recipe section"):
        register("broken", recipe={"optimizer": {}})
