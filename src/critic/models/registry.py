"""Architectures by name.

Every model is an ``nn.Module`` built from a :class:`~critic.config.ModelConfig` whose
``forward(token_ids, lengths)`` takes (batch, time) int64 ids padded with 0 and (batch,)
lengths, and returns (batch,) logits of the positive class. The sigmoid belongs to the loss
and to prediction, not to the module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from critic.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from critic.errors import CriticError

_REGISTRY: dict[str, Callable[[ModelConfig], nn.Module]] = {}
_RECIPES: dict[str, dict[str, dict[str, Any]]] = {}
_SECTIONS = ("data", "model", "train")


def register(name: str, recipe: dict[str, dict[str, Any]] | None = None):
    """Class decorator: make an architecture buildable by ``name``.

    ``recipe`` holds the settings, by section (``data``, ``model``, ``train``), that the
    architecture trains best with where they differ from critic's defaults: what ``critic
    train --model NAME`` uses unless told otherwise (see :func:`run_config`).
    """
    recipe = recipe or {}
    unknown = sorted(set(recipe) - set(_SECTIONS))
    if unknown:
        raise ValueError(f"model {name!r}: unknown recipe section(s) {', '.join(unknown)}")

    def add(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = builder
        _RECIPES[name] = recipe
        return builder

    return add


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
