"""The typed configs: checks with clear messages, plain-dict round trips, unknown settings refused."""

import json

import pytest

from critic.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from critic.errors import CriticError


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DataConfig(source=""), "data source must not be empty"),
        (lambda: DataConfig(vocab_size=2), "vocab_size must be at least 3, got 2"),
        (lambda: DataConfig(max_length=0), "max_length must be at least 1, got 0"),
        (lambda: DataConfig(max_reviews=9), "max_reviews must be at least 10, got 9"),
        (
            lambda: DataConfig(test_fraction=0.5),
            "validation_fraction and test_fraction must each lie between 0 and 0.5",
        ),
        (lambda: ModelConfig(embedding_dim=0), "embedding_dim must be positive, got 0"),
        (lambda: ModelConfig(dropout=1.0), "dropout must lie in [0, 1), got 1.0"),
        (lambda: ModelConfig(ngram_max=6), "ngram_max must lie in 1..5, got 6"),
        (lambda: ModelConfig(c=0.0), "c must be positive, got 0.0"),
        (lambda: ModelConfig(cell="rnn"), "cell must be lstm or gru, got 'rnn'"),
        (lambda: ModelConfig(pooling="sum"), "pooling must be one of last, max, mean, got 'sum'"),
        (lambda: ModelConfig(ngram_dim=0), "ngram_dim must be positive, got 0"),
        (lambda: TrainConfig(epochs=0), "epochs must be at least 1, got 0"),
        (lambda: TrainConfig(learning_rate=0), "learning_rate must be positive, got 0"),
        (lambda: TrainConfig(weight_decay=-1), "weight_decay must not be negative, got -1"),
        (lambda: TrainConfig(device="tpu"), "device must be auto, cpu or cuda, got 'tpu'"),
        (lambda: TrainConfig(max_seconds=0), "max_seconds must be positive, got 0"),
        (lambda: TrainConfig(embeddings=""), "embeddings must not be empty"),
    ],
)
def test_a_bad_setting_is_refused_with_a_message_that_names_it(make, message):
    with pytest.raises(CriticError) as raised:
        make()
    assert str(raised.value) == message


def test_replace_checks_again():
    with pytest.raises(CriticError, match="hidden_dim must be positive, got 0"):
        ModelConfig().replace(hidden_dim=0)


def test_a_run_config_survives_a_trip_through_json():
    config = RunConfig(
        data=DataConfig(source="reviews.csv", rating_column="stars", max_reviews=500),
        model=ModelConfig(name="nbsvm", c=0.5, select_ngrams=True, ngram_dim=8),
        train=TrainConfig(epochs=3, max_seconds=60.0, embeddings="word2vec"),
    )
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert DataConfig.from_dict(config.data.to_dict()) == config.data


def test_missing_settings_take_the_defaults():
    assert RunConfig.from_dict({}) == RunConfig()
    assert RunConfig.from_dict({"model": {"name": "gru"}}).model == ModelConfig(name="gru")


def test_an_unknown_setting_is_refused_and_the_valid_ones_are_named():
    with pytest.raises(CriticError) as raised:
        TrainConfig.from_dict({"epochz": 3})
    message = str(raised.value)
    assert message.startswith(
        "TrainConfig: unknown setting(s) epochz; valid: adversarial, batch_size,"
    )
    with pytest.raises(CriticError, match=r"ModelConfig: unknown setting\(s\) layers"):
        RunConfig.from_dict({"model": {"layers": 2}})


def test_an_unknown_section_is_refused():
    with pytest.raises(CriticError) as raised:
        RunConfig.from_dict({"optimizer": {}, "data": {}})
    assert str(raised.value) == "RunConfig: unknown section(s) optimizer"


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, kind, expected",
    [("true", bool, True), (" Yes ", bool, True), ("on", bool, True), ("1", bool, True),
     ("FALSE", bool, False), ("no", bool, False), ("off", bool, False), ("0", bool, False),
     ("8080", int, 8080), (" 3 ", int, 3), ("0.25", float, 0.25), ("1e-3", float, 1e-3),
     ("reviews.csv", str, "reviews.csv"), (2, float, 2.0), (True, bool, True)],
)  # fmt: skip
def test_one_parser_turns_text_into_every_kind_of_setting(text, kind, expected):
    from critic.config import parse_value

    value = parse_value(text, kind, "--x")
    assert value == expected and type(value) is kind


@pytest.mark.parametrize(
    "text, kind, message",
    [("ture", bool, "CRITIC_X: expected true or false, got 'ture'"),
     ("", bool, "CRITIC_X: expected true or false, got ''"),
     ("three", int, "CRITIC_X: expected an integer, got 'three'"),
     ("1.5", int, "CRITIC_X: expected an integer, got '1.5'"),
     ("fast", float, "CRITIC_X: expected a number, got 'fast'")],
)  # fmt: skip
def test_text_that_is_not_its_settings_type_is_one_line_naming_the_setting(text, kind, message):
    from critic.config import parse_value

    with pytest.raises(CriticError) as raised:
        parse_value(text, kind, "CRITIC_X")
    assert str(raised.value) == message


def test_the_lambda_accepts_the_same_words_and_review_keys_as_critic():
    # The Lambda's file travels alone (no critic to import), so it keeps its own copy.
    from critic import config
    from critic.sagemaker import lambda_handler

    assert lambda_handler.TRUE_WORDS == config.TRUE_WORDS
    assert lambda_handler.FALSE_WORDS == config.FALSE_WORDS
    # ... and reads a review from a JSON object under every key the endpoint does.
    from critic.serving.codec import REVIEW_KEYS

    assert {"instances", *REVIEW_KEYS} <= set(lambda_handler.PAYLOAD_KEYS)
