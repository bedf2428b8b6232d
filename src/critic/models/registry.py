"""Architectures by name.

Every model is an ``nn.Module`` built from a :class:`~critic.config.ModelConfig` whose
``forward(token_ids, lengths)`` takes (batch, time) int64 ids padded with 0 and (batch,)
lengths, and returns (batch,) logits of the positive class. The sigmoid belongs to the loss
and to prediction, not to the module.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from critic.config import ModelConfig
from critic.errors import CriticError

_REGISTRY: dict[str, Callable[[ModelConfig], nn.Module]] = {}


def register(name: str):
    """Class decorator: make an architecture buildable by ``name``."""

    def add(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = builder
        return builder

    return add


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the architecture that ``config.name`` names."""
    check_model_name(config.name)
    return _REGISTRY[config.name](config)


def check_model_name(name: str) -> None:
    """A CriticError naming the valid models, unless ``name`` is one."""
    if name not in _REGISTRY:
        raise CriticError(f"unknown model {name!r}; valid models: {', '.join(model_names())}")
