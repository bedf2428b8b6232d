"""critic.sagemaker.autoscaling against moto's server: every variant of a deployed endpoint
becomes a scalable target with one target-tracking policy, which can be changed, shown and
removed; bad limits are one-line errors before any AWS call."""

from __future__ import annotations

import contextlib
import json

import boto3
import pytest

from critic.errors import CriticError
from critic.sagemaker import (
    ScalingLimits,
    delete_endpoint,
    deploy,
    describe_autoscaling,
    remove_autoscaling,
    set_autoscaling,
    suggested_target,
)
from critic.sagemaker.autoscaling import METRIC, POLICY_NAME, SCALABLE_DIMENSION
from support.aws import BUCKET, ROLE, assert_one_line, quiet
from support.cli import run_cli


@pytest.fixture(scope="module")
def scaling(aws):
    return boto3.session.Session().client("application-autoscaling")


@pytest.fixture(scope="module", autouse=True)
def leave_nothing_behind(aws):
    """moto's state outlives its server: what these tests make goes after them (the next
    modules expect an account without endpoints)."""
    yield
    for name in ("critic-scaled", "critic-rescaled", "critic-cli-scaled"):
        with contextlib.suppress(CriticError):
            remove_autoscaling(name, log=quiet)
            delete_endpoint(name, log=quiet)


def targets(scaling, endpoint: str) -> dict[str, tuple[int, int]]:
    answer = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")
    return {
        target["ResourceId"]: (target["MinCapacity"], target["MaxCapacity"])
        for target in answer["ScalableTargets"]
        if target["ResourceId"].startswith(f"endpoint/{endpoint}/")
        and target["ScalableDimension"] == SCALABLE_DIMENSION
    }


def policies(scaling, endpoint: str) -> dict[str, dict]:
    answer = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")
    return {
        policy["ResourceId"]: policy
        for policy in answer["ScalingPolicies"]
        if policy["ResourceId"].startswith(f"endpoint/{endpoint}/")
    }


def test_the_suggested_target_is_max_rps_times_the_safety_factor_times_60():
    assert suggested_target(40) == pytest.approx(1200)  # AWS's guidance: 40 * 0.5 * 60
    assert suggested_target(40, safety=0.25) == pytest.approx(600)
    assert suggested_target(0.5) == pytest.approx(15)


@pytest.mark.parametrize(
    ("max_rps", "safety", "words"),
    [(0, 0.5, "positive"), (-3, 0.5, "positive"), (float("nan"), 0.5, "positive"),
     ("10", 0.5, "a number"), (10, 0, "(0, 1]"), (10, 1.5, "(0, 1]")],
)  # fmt: skip
def test_a_suggested_target_needs_a_positive_rate_and_a_factor_up_to_one(max_rps, safety, words):
    with pytest.raises(CriticError, match=words.replace("(", r"\(").replace("]", r"\]")):
        suggested_target(max_rps, safety)


@pytest.mark.parametrize(
    ("limits", "words"),
    [((0, 2, 100), "minimum number of instances must be a whole number of at least 1"),
     ((3, 2, 100), "maximum number of instances (2) must be at least the minimum (3)"),
     ((1, 2, 0), "target must be a positive number"),
     ((1, 2, -5), "target must be a positive number"),
     ((1, 2, float("inf")), "target must be a positive number"),
     ((1, 1000, 100), "at most 100")],
)  # fmt: skip
def test_bad_limits_are_refused_with_the_rule_they_break(limits, words):
    with pytest.raises(CriticError) as error:
        ScalingLimits(*limits)
    assert words in assert_one_line(error)


def test_deploy_with_limits_scales_every_variant_on_invocations_per_instance(
    aws, archives, scaling
):
    deployment = deploy(
        [("champion", archives.champion, 1), ("challenger", archives.challenger, 1)],
        "critic-scaled", ROLE, BUCKET, log=quiet, autoscaling=ScalingLimits(1, 4, 600),
    )  # fmt: skip
    expected = {
        "endpoint/critic-scaled/variant/champion": (1, 4),
        "endpoint/critic-scaled/variant/challenger": (1, 4),
    }
    assert targets(scaling, "critic-scaled") == expected
    made = policies(scaling, "critic-scaled")
    assert set(made) == set(expected)
    for policy in made.values():
        assert policy["PolicyName"] == POLICY_NAME
        assert policy["PolicyType"] == "TargetTrackingScaling"
        assert policy["ScalableDimension"] == SCALABLE_DIMENSION
        assert policy["TargetTrackingScalingPolicyConfiguration"] == {
            "TargetValue": 600.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
        }
    assert sorted(entry.to_dict()["variant"] for entry in deployment.autoscaling) == [
        "challenger",
        "champion",
    ]
    assert {entry.target_invocations for entry in deployment.autoscaling} == {600.0}


def test_autoscaling_can_be_changed_shown_and_removed(aws, archives, scaling):
    deploy([("only", archives.champion, 1)], "critic-rescaled", ROLE, BUCKET, log=quiet)
    assert describe_autoscaling("critic-rescaled") == []

    set_autoscaling("critic-rescaled", ScalingLimits(1, 3, 300), log=quiet)
    changed = set_autoscaling("critic-rescaled", ScalingLimits(2, 6, 900), log=quiet)
    assert [entry.to_dict() for entry in changed] == [
        {"variant": "only", "min_instances": 2, "max_instances": 6, "target_invocations": 900.0}
    ]
    assert targets(scaling, "critic-rescaled") == {"endpoint/critic-rescaled/variant/only": (2, 6)}
    (policy,) = policies(scaling, "critic-rescaled").values()
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 900.0

    lines: list[str] = []
    assert remove_autoscaling("critic-rescaled", log=lines.append) == ["only"]
    assert targets(scaling, "critic-rescaled") == {}
    assert policies(scaling, "critic-rescaled") == {}
    assert describe_autoscaling("critic-rescaled") == []
    assert lines == ["autoscaling of variant only removed"]


def test_autoscaling_a_missing_endpoint_is_one_line_that_names_it(aws, scaling):
    with pytest.raises(CriticError) as error:
        set_autoscaling("critic-nowhere", ScalingLimits(1, 2, 100), log=quiet)
    assert "no endpoint named critic-nowhere" in assert_one_line(error)
    assert targets(scaling, "critic-nowhere") == {}


@pytest.mark.parametrize(
    ("changes", "words"),
    [({"instance_count": 5}, "instance count (5) must lie within the autoscaling limits (1-4)"),
     ({"wait": False}, "once the endpoint is InService")],
)  # fmt: skip
def test_deploy_refuses_limits_it_cannot_apply_before_making_anything(
    aws, archives, changes, words
):
    with pytest.raises(CriticError) as error:
        deploy(
            [("only", archives.champion, 1)], "critic-unscaled", ROLE, BUCKET, log=quiet,
            autoscaling=ScalingLimits(1, 4, 100), **changes,
        )  # fmt: skip
    assert words in assert_one_line(error)
    assert aws.sagemaker.list_endpoints(NameContains="critic-unscaled")["Endpoints"] == []


def critic(*args, check=True):
    """``critic ARGS``, which must succeed unless ``check`` is false (see run_cli)."""
    return run_cli(*args, check=check, timeout=180)


def test_the_cli_deploys_with_autoscaling_then_changes_shows_and_removes_it(aws, archives, scaling):
    deployed = critic(
        "sagemaker", "deploy", archives.champion, "--endpoint", "critic-cli-scaled",
        "--role", ROLE, "--bucket", BUCKET,
        "--min-instances", 1, "--max-instances", 3, "--target-invocations", 450,
    )  # fmt: skip
    answer = json.loads(deployed.stdout.splitlines()[-1])
    assert answer["autoscaling"] == [
        {"variant": "AllTraffic", "min_instances": 1, "max_instances": 3,
         "target_invocations": 450.0}
    ]  # fmt: skip
    critic("sagemaker", "autoscale", "critic-cli-scaled", "--min", 2, "--max", 5, "--target", 700)
    shown = json.loads(critic("sagemaker", "autoscale", "critic-cli-scaled").stdout)
    assert shown["autoscaling"][0] | {"variant": "AllTraffic"} == {
        "variant": "AllTraffic", "min_instances": 2, "max_instances": 5, "target_invocations": 700.0
    }  # fmt: skip
    removed = critic("sagemaker", "autoscale", "critic-cli-scaled", "--off")
    assert json.loads(removed.stdout.splitlines()[-1])["removed"] == ["AllTraffic"]
    assert targets(scaling, "critic-cli-scaled") == {}


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--max", 2], "needs --max-instances and --target-invocations"),
     (["--max", 1, "--min", 3, "--target", 10], "must be at least the minimum (3)"),
     (["--max", 3, "--target", 0], "target must be a positive number"),
     (["--off", "--max", 3, "--target", 5], "--off removes the autoscaling")],
)  # fmt: skip
def test_the_cli_refuses_bad_autoscaling_with_one_line(aws, args, words):
    completed = critic("sagemaker", "autoscale", "critic-any", *args, check=False)
    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1 and words in completed.stderr
    assert "Traceback" not in completed.stderr
