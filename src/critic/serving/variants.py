"""Production variants: several models behind one endpoint, traffic split by weight.

As on SageMaker: each request goes to a variant drawn with probability weight / total, unless
the client names one (``X-Amzn-SageMaker-Target-Variant``); the weights can change while the
endpoint runs (SageMaker's UpdateEndpointWeightsAndCapacities).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from critic.errors import CriticError
from critic.predictor import Predictor

DEFAULT_VARIANT = "AllTraffic"  # the name SageMaker's SDK gives a single variant
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's VariantName rule


@dataclass(frozen=True)
class VariantSpec:
    name: str
    bundle: Path
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise CriticError(
                f"variant name {self.name!r}: use letters, digits and hyphens (up to 63), as SageMaker does"
            )
        if not self.weight >= 0:
            raise CriticError(f"variant {self.name}: the weight must not be negative")

    @classmethod
    def parse(cls, text: str) -> VariantSpec:
        """``name=path[:weight]``, e.g. ``champion=runs/lstm:0.9``."""
        name, separator, rest = text.partition("=")
        if not separator or not name or not rest:
            raise CriticError(
                f"--variant {text!r}: expected NAME=BUNDLE[:WEIGHT], e.g. champion=runs/lstm:0.9"
            )
        path, weight = rest, 1.0
        head, colon, tail = rest.rpartition(":")
        if colon:
            try:
                weight = float(tail)
                path = head
            except ValueError:
                pass  # a colon inside the path itself
        return cls(name, Path(path), weight)


class Variant:
    def __init__(self, name: str, predictor: Predictor, weight: float, bundle: Path):
        self.name = name
        self.predictor = predictor
        self.weight = weight
        self.bundle = bundle

    def describe(self) -> dict:
        metrics = self.predictor.bundle.metrics
        return {
            "name": self.name,
            "weight": self.weight,
            "model": self.predictor.name,
            "bundle": str(self.bundle),
            "test_accuracy": metrics.get("test_accuracy"),
        }


class VariantRouter:
    """Picks the variant for each request; weights may be changed from another thread."""

    def __init__(self, variants: list[Variant], seed: int | None = None):
        if not variants:
            raise CriticError("an endpoint needs at least one variant")
        names = [variant.name for variant in variants]
        if len(set(names)) != len(names):
            raise CriticError(f"variant names must differ: {', '.join(names)}")
        self.variants = {variant.name: variant for variant in variants}
        self._check_total({v.name: v.weight for v in variants})
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    @staticmethod
    def _check_total(weights: dict[str, float]) -> None:
        if sum(weights.values()) <= 0:
            raise CriticError("at least one variant needs a weight above 0")

    @property
    def names(self) -> list[str]:
        return list(self.variants)

    def get(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            raise CriticError(
                f"no variant {name!r}; variants: {', '.join(self.variants)}"
            ) from None

    def choose(self, target: str | None = None) -> Variant:
        """The named variant, or one drawn by weight."""
        if target:
            return self.get(target)
        with self._lock:
            variants = list(self.variants.values())
            return self._random.choices(variants, weights=[v.weight for v in variants])[0]

    def set_weights(self, weights: dict[str, float]) -> None:
        """Change some variants' weights at once (all checked before any changes)."""
        for name, weight in weights.items():
            self.get(name)
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight >= 0:
                raise CriticError(f"variant {name}: the weight must be a number of at least 0")
        with self._lock:
            proposed = {name: v.weight for name, v in self.variants.items()} | weights
            self._check_total(proposed)
            for name, weight in weights.items():
                self.variants[name].weight = float(weight)

    def shares(self) -> dict[str, float]:
        total = sum(v.weight for v in self.variants.values())
        return {name: v.weight / total for name, v in self.variants.items()}


def load_variants(
    specs: list[VariantSpec], device: str = "cpu", seed: int | None = None
) -> VariantRouter:
    return VariantRouter(
        [
            Variant(spec.name, Predictor.load(spec.bundle, device=device), spec.weight, spec.bundle)
            for spec in specs
        ],
        seed=seed,
    )
