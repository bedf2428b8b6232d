"""Architectures by name, each of a kind.

* ``neural`` (the default kind): an ``nn.Module`` trained by the loop in ``critic.train``.
  Every one is an ``nn.Module`` built from a :class:`~critic.config.ModelConfig` whose
``forward(token_ids, lengths)`` takes (batch, time) int64 ids padded with 0 and (batch,)
lengths, and returns (batch,) logits of the positive class. The sigmoid belongs to the loss
and to prediction, not to the module.
* ``nbsvm``: an n-gram linear model fitted by scikit-learn (``critic.models.nbsvm``).

A bundle records its kind; a third kind, ``ensemble``, is made from trained bundles by
``critic ensemble`` rather than trained, and has no registry entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from critic.config import ModelConfig
from critic.errors import CriticError

NEURAL = "neural"
KINDS = (NEURAL, "nbsvm")

_REGISTRY: dict[str, Callable[[ModelConfig], Any]] = {}
_KINDS: dict[str, str] = {}


def register(name: str, kind: str = NEURAL):
    """Class decorator: make an architecture buildable by ``name``."""
    if kind not in KINDS:
        raise ValueError(f"model {name!r}: unknown kind {kind!r}")

    def add(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = builder
        _KINDS[name] = kind
        return builder

    return add


def model_kind(name: str) -> str:
    """``neural`` or ``nbsvm``: which training and which bundle layout the model needs."""
    check_model_name(name)
    return _KINDS[name]


def model_names(kind: str | None = None) -> list[str]:
    """Every registered name, or those of one kind."""
    return sorted(name for name in _REGISTRY if kind is None or _KINDS[name] == kind)


def build_model(config: ModelConfig) -> Any:
    """Instantiate the architecture that ``config.name`` names (untrained)."""
    check_model_name(config.name)
    return _REGISTRY[config.name](config)


def check_model_name(name: str) -> None:
    """A CriticError naming the valid models, unless ``name`` is one."""
    if name == "ensemble":
        raise CriticError(
            "an ensemble is made from trained bundles, not trained: "
            "critic ensemble runs/a runs/b --out runs/ensemble"
        )
    if name not in _REGISTRY:
        raise CriticError(f"unknown model {name!r}; valid models: {', '.join(model_names())}")
