"""Production variants: several models behind one endpoint, traffic split by weight.

As on SageMaker: each request goes to a variant drawn with probability weight / total, unless
the client names one (``X-Amzn-SageMaker-Target-Variant``); the weights can change while the
endpoint runs (SageMaker's UpdateEndpointWeightsAndCapacities).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from critic.errors import CriticError

if TYPE_CHECKING:  # loading a predictor imports torch; naming a variant must not
    from critic.inference.predictor import Predictor

DEFAULT_VARIANT = "AllTraffic"  # the name SageMaker's SDK gives a single variant
# SageMaker's rule for the names of endpoints, endpoint configs, models, variants and training
# jobs: the local endpoint keeps it too, so that what runs here can be deployed as it is.
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MAX_NAME_LENGTH = 63


def check_name(kind: str, name: object) -> str:
    """A SageMaker resource name: 1-63 letters, digits and hyphens, no hyphen at either end."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or len(name) > MAX_NAME_LENGTH:
        raise CriticError(
            f"{kind} name {name!r} is not valid for SageMaker: use 1-{MAX_NAME_LENGTH} letters, "
            "digits and hyphens, starting and ending with a letter or digit"
        )
    return name


def check_weight(variant: str, weight: object, allow_zero: bool = False) -> float:
    """A variant's traffic weight: a finite number, positive (or zero where allowed)."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise CriticError(f"the weight of variant {variant!r} must be a number, got {weight!r}")
    if weight < 0 or (weight == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "positive"
        raise CriticError(f"the weight of variant {variant!r} must be {bound}, got {weight!r}")
    return float(weight)


def check_distinct_names(variants: Iterable[Any]) -> None:
    """Refuse two variants (anything with a ``name``) of one name: requests name their target."""
    names = [variant.name for variant in variants]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CriticError(f"variant names must differ; repeated: {', '.join(repeated)}")


def split_spec(text: str, option: str, number: str, example: str) -> tuple[str, Path, float]:
    """``NAME=BUNDLE[:NUMBER]`` (a variant's weight, a shadow's fraction; 1 when left out) as
    its three parts; a colon inside the path itself stays in the path."""
    name, separator, rest = text.partition("=")
    if not separator or not name or not rest:
        raise CriticError(f"{option} {text!r}: expected NAME=BUNDLE[:{number}], e.g. {example}")
    path, value = rest, 1.0
    head, colon, tail = rest.rpartition(":")
    if colon:
        try:
            value = float(tail)
            path = head
        except ValueError:
            pass  # a colon inside the path itself
    return name, Path(path), value


@dataclass(frozen=True)
class VariantSpec:
    """One production variant to serve or deploy: its name, its model, its traffic weight.

    ``bundle`` is a bundle folder for ``critic serve``; :func:`critic.sagemaker.deploy` takes
    a model.tar.gz there. A weight of 0 keeps the variant out of the draw (it still answers
    requests that name it)."""

    name: str
    bundle: Path
    weight: float = 1.0

    def __post_init__(self) -> None:
        check_name("variant", self.name)
        # Frozen: the normalised values are set the way dataclasses set them.
        object.__setattr__(self, "bundle", Path(self.bundle))
        object.__setattr__(self, "weight", check_weight(self.name, self.weight, allow_zero=True))

    @classmethod
    def parse(cls, text: str) -> VariantSpec:
        """``name=path[:weight]``, e.g. ``champion=runs/lstm:0.9``."""
        return cls(*split_spec(text, "--variant", "WEIGHT", "champion=runs/lstm:0.9"))


def parse_weights(texts: Sequence[str]) -> dict[str, float]:
    """``VARIANT=WEIGHT`` texts (``critic sagemaker update-weights``) as weights by name."""
    weights = {}
    for text in texts:
        name, separator, value = text.partition("=")
        try:
            weight = float(value)
        except ValueError:
            separator = ""
        if not separator or not name:
            raise CriticError(f"{text!r}: expected VARIANT=WEIGHT, e.g. champion=0.5")
        weights[name] = weight
    return weights


def variant_specs(first: Path | None, texts: Sequence[str] | None) -> list[VariantSpec]:
    """The variants a command line names: ``first`` (if given) as the single variant AllTraffic,
    then each ``NAME=PATH[:WEIGHT]`` text; names checked distinct. Empty when none is named."""
    specs = [VariantSpec.parse(text) for text in texts or []]
    if first is not None:
        specs.insert(0, VariantSpec(DEFAULT_VARIANT, first, 1.0))
    check_distinct_names(specs)
    return specs


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
        check_distinct_names(variants)
        self.variants = {variant.name: variant for variant in variants}
        self._check_total({v.name: v.weight for v in variants})
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        # Replaced whole, never changed in place: a request keeps the shares it was routed
        # with, and reads the table without a lock.
        self._draws = self._draw_table()

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
        return self.route(target)[0]

    def route(self, target: str | None = None) -> tuple[Variant, dict[str, float], bool]:
        """The named variant, or one drawn by weight; with the shares of that moment (every
        variant's probability of being drawn) and whether the client named it."""
        # One read of the table the writers replace whole: no lock on the request path.
        variants, cumulative, shares = self._draws
        if target:
            return self.get(target), shares, True
        if len(variants) == 1:
            return variants[0], shares, False
        # random.choices' own draw (the same variants for the same seed), without rebuilding
        # the cumulative weights on every request.
        point = self._random.random() * cumulative[-1]
        return variants[bisect.bisect(cumulative, point, 0, len(variants) - 1)], shares, False

    def add(self, variant: Variant) -> None:
        """A new variant (a shadow promoted while the endpoint runs), at its weight."""
        with self._lock:
            if variant.name in self.variants:
                raise CriticError(f"there is already a variant {variant.name!r}")
            self.variants = {**self.variants, variant.name: variant}
            self._draws = self._draw_table()

    def set_weights(self, weights: dict[str, float]) -> None:
        """Change some variants' weights at once (all checked before any changes)."""
        for name, weight in weights.items():
            self.get(name)
            check_weight(name, weight, allow_zero=True)
        with self._lock:
            proposed = {name: v.weight for name, v in self.variants.items()} | weights
            self._check_total(proposed)
            for name, weight in weights.items():
                self.variants[name].weight = float(weight)
            self._draws = self._draw_table()

    def _draw_table(self) -> tuple[list[Variant], list[float], dict[str, float]]:
        variants = list(self.variants.values())
        cumulative = list(itertools.accumulate(v.weight for v in variants))
        return variants, cumulative, self._current_shares()

    def _current_shares(self) -> dict[str, float]:
        total = sum(v.weight for v in self.variants.values())
        return {name: v.weight / total for name, v in self.variants.items()}

    def shares(self) -> dict[str, float]:
        return self._current_shares()


def load_variant(spec: VariantSpec, device: str = "cpu", backend: str = "torch") -> Variant:
    """One variant's bundle, loaded (blocking: seconds for a large model)."""
    from critic.inference.predictor import Predictor

    predictor = Predictor.load(spec.bundle, device=device, backend=backend)
    return Variant(spec.name, predictor, spec.weight, spec.bundle)


def load_variants(
    specs: list[VariantSpec], device: str = "cpu", seed: int | None = None, backend: str = "torch"
) -> VariantRouter:
    """Load every variant's bundle once, behind one router; neural models run on ``backend``
    (see :data:`critic.inference.predictor.BACKENDS`)."""
    return VariantRouter([load_variant(spec, device, backend) for spec in specs], seed=seed)
