"""Autoscaling of a SageMaker endpoint's variants: Application Auto Scaling target tracking.

Every production variant of an endpoint becomes a scalable target (its instance count, between
a minimum and a maximum) with one target-tracking policy on the predefined metric
``SageMakerVariantInvocationsPerInstance``: the invocations each instance receives per minute.
Application Auto Scaling adds instances when the metric stays above the target and removes
them when it stays well below, within the limits.

The target comes from a load test, as AWS's guidance has it: the most requests per second one
instance answers before its latency climbs, times a safety factor (0.5), times 60 (the metric
counts per minute). :func:`suggested_target` is that sum; ``bench/serve_load.py`` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from critic.errors import CriticError
from critic.sagemaker.aws import aws_errors, connect, describe_or_none
from critic.sagemaker.checks import check_name, check_positive_int

Log = Callable[[str], None]

SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
POLICY_NAME = "critic-invocations-per-instance"
SAFETY_FACTOR = 0.5  # AWS's suggestion: scale out at half of what one instance can answer
MAX_INSTANCES = 100  # a sanity bound well above SageMaker's default instance quotas


@dataclass(frozen=True)
class ScalingLimits:
    """How far each variant may scale, and the load per instance it scales to hold."""

    min_instances: int
    max_instances: int
    target_invocations: float
    """Invocations per instance per minute (``SageMakerVariantInvocationsPerInstance``)."""

    def __post_init__(self) -> None:
        check_positive_int("the minimum number of instances", self.min_instances)
        check_positive_int("the maximum number of instances", self.max_instances)
        if self.max_instances < self.min_instances:
            raise CriticError(
                f"the maximum number of instances ({self.max_instances}) must be at least the "
                f"minimum ({self.min_instances})"
            )
        if self.max_instances > MAX_INSTANCES:
            raise CriticError(
                f"the maximum number of instances must be at most {MAX_INSTANCES}, "
                f"got {self.max_instances}"
            )
        target = self.target_invocations
        if (
            isinstance(target, bool)
            or not isinstance(target, int | float)
            or not math.isfinite(target)
            or target <= 0
        ):
            raise CriticError(
                "the target must be a positive number of invocations per instance per minute, "
                f"got {target!r}; a load test suggests one (bench/serve_load.py)"
            )


@dataclass(frozen=True)
class VariantScaling:
    """One variant's autoscaling as Application Auto Scaling reports it."""

    variant: str
    min_instances: int
    max_instances: int
    target_invocations: float | None
    """None when the variant is a scalable target without critic's policy."""

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "min_instances": self.min_instances,
            "max_instances": self.max_instances,
            "target_invocations": self.target_invocations,
        }


def suggested_target(max_rps: float, safety: float = SAFETY_FACTOR) -> float:
    """The ``SageMakerVariantInvocationsPerInstance`` target for a variant whose one instance
    answers at most ``max_rps`` requests per second: ``max_rps * safety * 60``."""
    if isinstance(max_rps, bool) or not isinstance(max_rps, int | float):
        raise CriticError(f"max_rps must be a number, got {max_rps!r}")
    if not math.isfinite(max_rps) or max_rps <= 0:
        raise CriticError(f"max_rps must be a positive number, got {max_rps!r}")
    if isinstance(safety, bool) or not isinstance(safety, int | float) or not 0 < safety <= 1:
        raise CriticError(f"the safety factor must lie in (0, 1], got {safety!r}")
    return max_rps * safety * 60


def resource_id(endpoint_name: str, variant: str) -> str:
    """Application Auto Scaling's name for a variant: ``endpoint/NAME/variant/VARIANT``."""
    return f"endpoint/{endpoint_name}/variant/{variant}"


def set_autoscaling(
    endpoint_name: str,
    limits: ScalingLimits,
    region: str | None = None,
    *,
    log: Log = print,
    session: Any = None,
) -> list[VariantScaling]:
    """Register every variant of an InService endpoint as a scalable target within ``limits``
    and give it a target-tracking policy on invocations per instance; calling it again changes
    both. Returns each variant's scaling as Application Auto Scaling then reports it."""
    check_name("endpoint", endpoint_name)
    if not isinstance(limits, ScalingLimits):
        raise CriticError(f"limits must be ScalingLimits, got {limits!r}")
    aws = connect(region, session)
    variants = _in_service_variants(aws, endpoint_name)
    scaling = aws.client("application-autoscaling")
    for variant in variants:
        target = resource_id(endpoint_name, variant)
        with aws_errors(f"registering variant {variant} of {endpoint_name} for autoscaling"):
            scaling.register_scalable_target(
                ServiceNamespace=SERVICE_NAMESPACE,
                ResourceId=target,
                ScalableDimension=SCALABLE_DIMENSION,
                MinCapacity=limits.min_instances,
                MaxCapacity=limits.max_instances,
            )
        with aws_errors(f"putting the scaling policy of variant {variant} of {endpoint_name}"):
            scaling.put_scaling_policy(
                PolicyName=POLICY_NAME,
                ServiceNamespace=SERVICE_NAMESPACE,
                ResourceId=target,
                ScalableDimension=SCALABLE_DIMENSION,
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": float(limits.target_invocations),
                    "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
                },
            )
        log(
            f"autoscaling variant {variant}: {limits.min_instances}-{limits.max_instances} "
            f"instances, target {limits.target_invocations:g} invocations per instance per minute"
        )
    return describe_autoscaling(endpoint_name, aws.region, session=aws.session)


def describe_autoscaling(
    endpoint_name: str, region: str | None = None, *, session: Any = None
) -> list[VariantScaling]:
    """The autoscaling of each variant of an endpoint that has some (empty: none has)."""
    check_name("endpoint", endpoint_name)
    aws = connect(region, session)
    variants = _variant_names(aws, endpoint_name)
    scaling = aws.client("application-autoscaling")
    ids = {resource_id(endpoint_name, variant): variant for variant in variants}
    with aws_errors(f"looking up the autoscaling of endpoint {endpoint_name}"):
        targets = _all_pages(
            scaling,
            "describe_scalable_targets",
            "ScalableTargets",
            ServiceNamespace=SERVICE_NAMESPACE,
            ResourceIds=list(ids),
            ScalableDimension=SCALABLE_DIMENSION,
        )
        result = []
        for target in targets:
            if target["ResourceId"] not in ids:
                continue
            policy = _policy(scaling, target["ResourceId"])
            tracking = (policy or {}).get("TargetTrackingScalingPolicyConfiguration", {})
            result.append(
                VariantScaling(
                    variant=ids[target["ResourceId"]],
                    min_instances=target["MinCapacity"],
                    max_instances=target["MaxCapacity"],
                    target_invocations=tracking.get("TargetValue"),
                )
            )
    return result


def remove_autoscaling(
    endpoint_name: str, region: str | None = None, *, log: Log = print, session: Any = None
) -> list[str]:
    """Delete critic's scaling policy and deregister each variant of the endpoint; the
    instances stay at their present count. Returns the variants that had autoscaling."""
    removed = []
    aws = connect(region, session)
    scaling = aws.client("application-autoscaling")
    for entry in describe_autoscaling(endpoint_name, aws.region, session=aws.session):
        target = resource_id(endpoint_name, entry.variant)
        with aws_errors(f"removing the autoscaling of variant {entry.variant}"):
            if entry.target_invocations is not None:
                scaling.delete_scaling_policy(
                    PolicyName=POLICY_NAME,
                    ServiceNamespace=SERVICE_NAMESPACE,
                    ResourceId=target,
                    ScalableDimension=SCALABLE_DIMENSION,
                )
            scaling.deregister_scalable_target(
                ServiceNamespace=SERVICE_NAMESPACE,
                ResourceId=target,
                ScalableDimension=SCALABLE_DIMENSION,
            )
        log(f"autoscaling of variant {entry.variant} removed")
        removed.append(entry.variant)
    return removed


# --- helpers ----------------------------------------------------------------------------------


def _endpoint(aws: Any, endpoint_name: str) -> dict:
    endpoint = describe_or_none(
        aws.client("sagemaker").describe_endpoint,
        f"looking up endpoint {endpoint_name}",
        EndpointName=endpoint_name,
    )
    if endpoint is None:
        raise CriticError(f"there is no endpoint named {endpoint_name} in region {aws.region}")
    return endpoint


def _variant_names(aws: Any, endpoint_name: str) -> list[str]:
    endpoint = _endpoint(aws, endpoint_name)
    return [variant["VariantName"] for variant in endpoint.get("ProductionVariants", [])]


def _in_service_variants(aws: Any, endpoint_name: str) -> list[str]:
    """The variant names, once the endpoint can take a scalable target (InService)."""
    endpoint = _endpoint(aws, endpoint_name)
    status = endpoint.get("EndpointStatus")
    if status != "InService":
        raise CriticError(
            f"endpoint {endpoint_name} is {status}; autoscaling can be set once it is InService "
            f"(critic sagemaker autoscale {endpoint_name} ... when it is)"
        )
    names = [variant["VariantName"] for variant in endpoint.get("ProductionVariants", [])]
    if not names:
        raise CriticError(f"endpoint {endpoint_name} has no production variant to scale")
    return names


def _policy(scaling: Any, target: str) -> dict | None:
    policies = _all_pages(
        scaling,
        "describe_scaling_policies",
        "ScalingPolicies",
        ServiceNamespace=SERVICE_NAMESPACE,
        ResourceId=target,
        ScalableDimension=SCALABLE_DIMENSION,
        PolicyNames=[POLICY_NAME],
    )
    # Compared exactly: a filter by resource id need not be one (moto matches substrings).
    return next(
        (p for p in policies if p["ResourceId"] == target and p["PolicyName"] == POLICY_NAME),
        None,
    )


def _all_pages(client: Any, operation: str, key: str, **params: Any) -> list[dict]:
    items: list[dict] = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page.get(key, []))
    return items
