"""Architectures by name, each of a kind, each with the settings it trains best with.

* ``neural`` (the default kind): an ``nn.Module`` built from a
  :class:`~critic.config.ModelConfig` whose ``forward(token_ids, lengths)`` takes (batch,
  time) int64 ids padded with 0 and (batch,) lengths, and returns (batch,) logits of the
  positive class. The sigmoid belongs to the loss and to prediction, not to the module. The
  loop in ``critic.training.neural`` trains it.
* ``nbsvm``: an n-gram linear model fitted by scikit-learn (``critic.models.nbsvm``).

A bundle records its kind; a third kind, ``ensemble``, is made from trained bundles by
``critic ensemble`` rather than trained, and has no registry entry.

A model's *recipe* holds the settings, by section (``data``, ``model``, ``train``), where
they differ from critic's defaults: what ``critic train --model NAME`` uses unless told
otherwise (see :func:`run_config`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from critic.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from critic.errors import CriticError

NEURAL = "neural"
NBSVM_KIND = "nbsvm"
"""The n-gram logistic model's kind: fitted in one go by scikit-learn, its own bundle files."""
KINDS = (NEURAL, NBSVM_KIND)

_REGISTRY: dict[str, Callable[[ModelConfig], Any]] = {}
_KINDS: dict[str, str] = {}
_RECIPES: dict[str, dict[str, dict[str, Any]]] = {}
_SECTIONS = ("data", "model", "train")


def register(name: str, kind: str = NEURAL, recipe: dict[str, dict[str, Any]] | None = None):
    """Class decorator: make an architecture buildable by ``name``."""
    if kind not in KINDS:
        raise ValueError(f"model {name!r}: unknown kind {kind!r}")
    recipe = recipe or {}
    unknown = sorted(set(recipe) - set(_SECTIONS))
    if unknown:
        raise ValueError(f"model {name!r}: unknown recipe section(s) {', '.join(unknown)}")

    def add(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = builder
        _KINDS[name] = kind
        _RECIPES[name] = recipe
        return builder

    return add


def model_kind(name: str) -> str:
    """``neural`` or ``nbsvm``: which training and which bundle layout the model needs."""
    check_model_name(name)
    return _KINDS[name]


def recipe(name: str) -> dict[str, dict[str, Any]]:
    """The settings that model ``name`` trains with by default, by section."""
    check_model_name(name)
    return {section: dict(values) for section, values in _RECIPES[name].items()}


def run_config(
    name: str,
    data: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> RunConfig:
    """Settings for training model ``name``: critic's defaults, its recipe, then those given."""
    chosen = recipe(name)
    given = {"data": data or {}, "model": model or {}, "train": train or {}}
    sections = {s: {**chosen.get(s, {}), **given[s]} for s in _SECTIONS}
    return RunConfig(
        data=DataConfig.from_dict(sections["data"]),
        model=ModelConfig.from_dict({**sections["model"], "name": name}),
        train=TrainConfig.from_dict(sections["train"]),
    )


def model_names(kind: str | None = None) -> list[str]:
    """Every registered name, or those of one kind."""
    return sorted(name for name in _REGISTRY if kind is None or _KINDS[name] == kind)


def build_model(config: ModelConfig) -> Any:
    """Instantiate the architecture that ``config.name`` names (untrained)."""
    check_model_name(config.name)
    return _REGISTRY[config.name](config)


def check_model_config(config: ModelConfig) -> Any:
    """Raise what building ``config``'s model would raise, without its real size; return the
    miniature (to check what else a setting needs of the model).

    An architecture may refuse a setting it does not use (``--pooling`` on attention); a
    miniature copy (a vocabulary of 3 words, one n-gram bucket) runs the same checks in
    milliseconds, so ``critic train`` fails before reading data or training word2vec.
    """
    return build_model(config.replace(vocab_size=3, ngram_buckets=1))


def check_model_name(name: str) -> None:
    """A CriticError naming the valid models, unless ``name`` is one."""
    if name == "ensemble":
        raise CriticError(
            "an ensemble is made from trained bundles, not trained: "
            "critic ensemble runs/a runs/b --out runs/ensemble"
        )
    if name not in _REGISTRY:
        raise CriticError(f"unknown model {name!r}; valid models: {', '.join(model_names())}")
