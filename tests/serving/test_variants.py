from collections import Counter
from pathlib import Path

import pytest

from critic.errors import CriticError
from critic.serving.variants import (
    DEFAULT_VARIANT,
    NAME_PATTERN,
    Variant,
    VariantRouter,
    VariantSpec,
    check_distinct_names,
    check_name,
    check_weight,
    variant_specs,
)


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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nameonly", "--variant 'nameonly': expected NAME=BUNDLE[:WEIGHT], e.g. champion="),
        ("=runs/x", "--variant '=runs/x': expected NAME=BUNDLE[:WEIGHT]"),
        ("bad name=runs/x", "variant name 'bad name' is not valid for SageMaker: use 1-63 "),
        ("-x=runs/x", "variant name '-x' is not valid for SageMaker"),
        (f"{'v' * 64}=runs/x", "is not valid for SageMaker: use 1-63 letters, digits and hyphens"),
        ("x=runs/y:-1", "the weight of variant 'x' must be zero or more, got -1.0"),
        ("x=runs/y:nan", "the weight of variant 'x' must be a number, got nan"),
        ("x=runs/y:inf", "the weight of variant 'x' must be a number, got inf"),
    ],
)
def test_bad_variant_specs_are_clear_errors(text, message):
    with pytest.raises(CriticError) as raised:
        VariantSpec.parse(text)
    assert message in str(raised.value)


def test_a_spec_keeps_a_path_and_a_float_weight_and_may_be_out_of_the_draw():
    spec = VariantSpec("challenger", "runs/lstm", 0)
    assert (spec.bundle, spec.weight) == (Path("runs/lstm"), 0.0)
    assert isinstance(spec.weight, float)
    assert VariantSpec("a", Path("x")).weight == 1.0


def test_serve_and_deploy_share_one_variant_spec():
    import critic.sagemaker
    from critic.sagemaker import checks

    assert critic.sagemaker.VariantSpec is VariantSpec
    assert checks.check_name is check_name and checks.NAME_PATTERN is NAME_PATTERN


@pytest.mark.parametrize(
    ("kind", "name", "valid"),
    [
        ("endpoint", "critic-ab", True),
        ("variant", "a", True),
        ("variant", "v" * 63, True),
        ("variant", "a--b", True),
        ("variant", "v" * 64, False),
        ("variant", "-a", False),
        ("variant", "a-", False),
        ("variant", "a_b", False),
        ("variant", "", False),
        ("variant", 3, False),
    ],
)
def test_names_follow_sagemakers_rule(kind, name, valid):
    if valid:
        assert check_name(kind, name) == name
    else:
        with pytest.raises(CriticError) as raised:
            check_name(kind, name)
        assert str(raised.value).startswith(f"{kind} name {name!r} is not valid for SageMaker")


@pytest.mark.parametrize(
    ("weight", "allow_zero", "message"),
    [
        (0, False, "the weight of variant 'a' must be positive, got 0"),
        (-0.5, True, "the weight of variant 'a' must be zero or more, got -0.5"),
        (True, True, "the weight of variant 'a' must be a number, got True"),
        ("1", True, "the weight of variant 'a' must be a number, got '1'"),
        (float("inf"), True, "the weight of variant 'a' must be a number, got inf"),
    ],
)
def test_bad_weights_name_the_variant_and_the_rule(weight, allow_zero, message):
    with pytest.raises(CriticError) as raised:
        check_weight("a", weight, allow_zero=allow_zero)
    assert str(raised.value) == message


def test_good_weights_come_back_as_floats():
    assert check_weight("a", 3) == 3.0 and isinstance(check_weight("a", 3), float)
    assert check_weight("a", 0, allow_zero=True) == 0.0


def test_distinct_names_pass_and_repeated_ones_are_named_once_each():
    check_distinct_names([VariantSpec("a", Path("x")), VariantSpec("b", Path("x"))])
    check_distinct_names([])
    specs = [VariantSpec(name, Path("x")) for name in ("b", "a", "b", "c", "a", "b")]
    with pytest.raises(CriticError) as raised:
        check_distinct_names(specs)
    assert str(raised.value) == "variant names must differ; repeated: a, b"


def test_a_command_lines_bundle_is_all_traffic_before_the_named_variants():
    specs = variant_specs(Path("runs/lstm"), ["challenger=runs/gru:0.5"])
    assert specs == [
        VariantSpec(DEFAULT_VARIANT, Path("runs/lstm"), 1.0),
        VariantSpec("challenger", Path("runs/gru"), 0.5),
    ]
    assert variant_specs(None, None) == []
    with pytest.raises(CriticError) as raised:
        variant_specs(Path("runs/lstm"), ["AllTraffic=runs/gru"])
    assert str(raised.value) == "variant names must differ; repeated: AllTraffic"


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
    with pytest.raises(CriticError) as raised:
        r.set_weights({"a": -1})
    assert str(raised.value) == "the weight of variant 'a' must be zero or more, got -1"
    assert r.variants["a"].weight == 0.0


def test_duplicate_names_are_refused():
    with pytest.raises(CriticError) as raised:
        VariantRouter([Variant("a", None, 1, Path("x")), Variant("a", None, 1, Path("y"))])
    assert str(raised.value) == "variant names must differ; repeated: a"
