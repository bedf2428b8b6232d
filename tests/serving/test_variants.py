from collections import Counter
from pathlib import Path

import pytest

from critic.errors import CriticError
from critic.serving.variants import Variant, VariantRouter, VariantSpec


@pytest.mark.parametrize(
    ("text", "name", "path", "weight"),
    [
        ("champion=runs/lstm:0.9", "champion", "runs/lstm", 0.9),
        ("a=runs/lstm", "a", "runs/lstm", 1.0),
        ("b=C:/models/x:2", "b", "C:/models/x", 2.0),
        ("c=runs/with:colon", "c", "runs/with:colon", 1.0),
    ],
)
def test_variant_specs_parse(text, name, path, weight):
    spec = VariantSpec.parse(text)
    assert (spec.name, spec.bundle, spec.weight) == (name, Path(path), weight)


@pytest.mark.parametrize("text", ["nameonly", "=runs/x", "bad name=runs/x", "x=runs/y:-1"])
def test_bad_variant_specs_are_clear_errors(text):
    with pytest.raises(CriticError):
        VariantSpec.parse(text)


def router(weights, seed=0):
    return VariantRouter(
        [Variant(name, predictor=None, weight=w, bundle=Path(name)) for name, w in weights.items()],
        seed=seed,
    )


def test_traffic_follows_the_weights():
    r = router({"a": 0.9, "b": 0.1})
    counts = Counter(r.choose().name for _ in range(5000))
    assert 0.87 < counts["a"] / 5000 < 0.93


def test_a_target_variant_overrides_the_draw_and_an_unknown_one_names_the_valid_ones():
    r = router({"a": 1.0, "b": 0.0})
    assert r.choose("b").name == "b"
    with pytest.raises(CriticError, match="variants: a, b"):
        r.choose("c")


def test_weights_change_at_run_time_and_are_checked_first():
    r = router({"a": 1.0, "b": 1.0})
    r.set_weights({"a": 0.0})
    assert {r.choose().name for _ in range(200)} == {"b"}
    assert r.shares() == {"a": 0.0, "b": 1.0}
    with pytest.raises(CriticError, match="at least one variant"):
        r.set_weights({"b": 0.0})
    with pytest.raises(CriticError, match="no variant 'z'"):
        r.set_weights({"z": 1.0, "a": 1.0})
    assert r.variants["a"].weight == 0.0  # nothing changed by the refused updates
    with pytest.raises(CriticError, match="must be a number"):
        r.set_weights({"a": "lots"})


def test_duplicate_names_are_refused():
    with pytest.raises(CriticError, match="must differ"):
        VariantRouter([Variant("a", None, 1, Path("x")), Variant("a", None, 1, Path("y"))])
