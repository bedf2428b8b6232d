"""How an endpoint update reaches its traffic on SageMaker: deployment guardrails.

SageMaker updates an endpoint blue/green: it starts the new endpoint config on a fleet of its
own (green), moves the traffic over from the old fleet (blue) and, once the move is done and a
last baking period passed, stops the old fleet. :class:`TrafficShift` says how the traffic
moves -- all at once, a canary share first, or in linear steps -- and how long each step bakes;
:func:`rollback_alarms` makes the CloudWatch alarms SageMaker watches through every step and
the final bake: one that fires sends all the traffic back to the old fleet, which is still
running. That is critic's local rollout (``critic rollout``) done by SageMaker itself.

The alarms judge the new fleet against the old one over the same minutes, like the local
guardrails (:mod:`critic.evaluation.guardrails`, whose limits are the defaults here), because
SageMaker publishes each fleet's metrics under its endpoint config's name (the
``EndpointConfigName`` dimension):

* **latency** -- the new fleet's p95 ``ModelLatency`` over the old fleet's, past
  ``max_latency_ratio``; a p95 under ``latency_floor_ms`` never fires;
* **server errors** -- the new fleet's share of ``Invocation5XXErrors`` (the metric is 1 per
  failed call and 0 otherwise, so its Average is the share) more than ``max_error_increase``
  above the old fleet's;
* **client errors** -- the same for ``Invocation4XXErrors``, with ``max_client_error_increase``:
  a model that refuses reviews the old one answered shows here (both fleets see the same
  clients, so their own mistakes cancel out);
* optionally a ceiling on the new fleet's p95 in milliseconds, whatever the old fleet does.

Each alarm fires when two of the last three minutes breach, so one slow minute does not cost a
release. When the old fleet takes no traffic (the final bake) its figures are missing: the
error alarms then compare with zero, the latency ratio has nothing to compare and waits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from critic.config import setting
from critic.errors import CriticError
from critic.evaluation.guardrails import GuardrailLimits

MODES = ("all-at-once", "canary", "linear")
_ROUTING_TYPES = {"all-at-once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}
MAX_WAIT_S = 3600  # SageMaker's limit on a step's (and the final) baking period
MAX_CANARY_PERCENT = 50  # SageMaker: a canary is at most half of the new fleet
MAX_ROLLBACK_ALARMS = 10  # alarms an AutoRollbackConfiguration may name
EXECUTION_TIMEOUT_S = (600, 28800)  # MaximumExecutionTimeoutInSeconds' bounds

NAMESPACE = "AWS/SageMaker"
PERIOD_S = 60
EVALUATION_PERIODS = 3
DATAPOINTS_TO_ALARM = 2
ALARM_PREFIX = "critic-"
ALARM_KINDS = ("latency", "5xx", "4xx", "latency-ceiling")

_LOCAL = GuardrailLimits()


@dataclass(frozen=True)
class TrafficShift:
    """How an update moves the traffic from the old fleet to the new one.

    ``percent`` is the canary's share of the new fleet's capacity, or each linear step's;
    ``bake_s`` how long each step is watched before the next; ``final_bake_s`` how long the
    new fleet takes all the traffic, still watched, before the old fleet is stopped (and a
    rollback no longer possible). ``max_execution_s`` bounds the whole update (SageMaker's
    default when None)."""

    mode: str = "all-at-once"
    percent: int | None = None
    bake_s: int = 300
    final_bake_s: int | None = None
    """Defaults to ``bake_s``."""
    max_execution_s: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CriticError(f"traffic shift must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "all-at-once":
            if self.percent is not None:
                raise CriticError("an all-at-once update has no step size: drop the percent")
        else:
            top = MAX_CANARY_PERCENT if self.mode == "canary" else 100
            if not _whole(self.percent) or not 1 <= self.percent <= top:
                raise CriticError(
                    f"the {self.mode} step must be a whole percent from 1 to {top} of the new "
                    f"fleet, got {self.percent!r}"
                    + (" (SageMaker's canary is at most half the fleet)" if top == 50 else "")
                )
        for name in ("bake_s", "final_bake_s"):
            value = getattr(self, name)
            if value is None:
                continue
            if not _whole(value) or not 0 <= value <= MAX_WAIT_S:
                raise CriticError(
                    f"{name} must be whole seconds from 0 to {MAX_WAIT_S} (an hour, SageMaker's "
                    f"limit), got {value!r}"
                )
        if self.max_execution_s is not None:
            low, high = EXECUTION_TIMEOUT_S
            if not _whole(self.max_execution_s) or not low <= self.max_execution_s <= high:
                raise CriticError(
                    f"max_execution_s must be whole seconds from {low} to {high}, got "
                    f"{self.max_execution_s!r}"
                )
            if self.expected_s() > self.max_execution_s:
                raise CriticError(
                    f"the steps and baking periods take {self.expected_s()} s, more than "
                    f"max_execution_s ({self.max_execution_s} s)"
                )

    @property
    def steps(self) -> int:
        """How many times the traffic moves."""
        if self.mode == "all-at-once":
            return 1
        if self.mode == "canary":
            return 2
        return math.ceil(100 / self.percent)

    def expected_s(self) -> int:
        """The baking time of the whole update: each step but the last, then the final bake."""
        final = self.bake_s if self.final_bake_s is None else self.final_bake_s
        return (self.steps - 1) * self.bake_s + final

    def deployment_config(self, alarm_names: list[str]) -> dict:
        """UpdateEndpoint's ``DeploymentConfig``: this shift, rolled back by the alarms."""
        routing: dict[str, Any] = {
            "Type": _ROUTING_TYPES[self.mode],
            "WaitIntervalInSeconds": self.bake_s,
        }
        if self.mode == "canary":
            routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": self.percent}
        elif self.mode == "linear":
            routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": self.percent}
        policy: dict[str, Any] = {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": self.bake_s
            if self.final_bake_s is None
            else self.final_bake_s,
        }
        if self.max_execution_s is not None:
            policy["MaximumExecutionTimeoutInSeconds"] = self.max_execution_s
        config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
        if alarm_names:
            config["AutoRollbackConfiguration"] = {
                "Alarms": [{"AlarmName": name} for name in alarm_names]
            }
        return config

    def describe(self) -> str:
        final = self.bake_s if self.final_bake_s is None else self.final_bake_s
        if self.mode == "all-at-once":
            moves = "all the traffic at once"
        elif self.mode == "canary":
            moves = f"a {self.percent}% canary, baked {_minutes(self.bake_s)}, then the rest"
        else:
            moves = f"{self.percent}% more every {_minutes(self.bake_s)} ({self.steps} steps)"
        return f"{moves}; final bake {_minutes(final)}"


@dataclass(frozen=True)
class AlarmLimits:
    """When the new fleet is worse enough than the old one for SageMaker to roll back. The
    defaults are the local rollout's guardrails (GuardrailLimits). Each field is an option of
    ``critic sagemaker update`` (and of deploy)."""

    max_latency_ratio: float = setting(
        _LOCAL.max_latency_ratio,
        "Rollback alarm: the new fleet's p95 model latency over the old fleet's.",
    )
    latency_floor_ms: float = setting(
        _LOCAL.latency_floor_ms, "Rollback alarm: a p95 under this never trips the ratio."
    )
    max_error_increase: float = setting(
        _LOCAL.max_error_increase,
        "Rollback alarm: the new fleet's share of 5XX answers above the old fleet's.",
    )
    max_client_error_increase: float = setting(
        0.05, "Rollback alarm: the new fleet's share of 4XX answers above the old fleet's."
    )
    max_latency_ms: float | None = setting(
        None, "Rollback alarm: a ceiling on the new fleet's p95 model latency (none by default)."
    )

    def __post_init__(self) -> None:
        _positive("max_latency_ratio", self.max_latency_ratio, above=1.0)
        _positive("latency_floor_ms", self.latency_floor_ms, above=0.0, inclusive=True)
        for name in ("max_error_increase", "max_client_error_increase"):
            value = getattr(self, name)
            if not _number(value) or not 0 <= value < 1:
                raise CriticError(f"{name} must be a share from 0 to below 1, got {value!r}")
        if self.max_latency_ms is not None:
            _positive("max_latency_ms", self.max_latency_ms, above=0.0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReleaseOptions:
    """How ``critic sagemaker update`` (and deploy, onto an endpoint that exists) releases:
    each field is an option of both."""

    canary: int | None = setting(
        None, "Move this percent of the new fleet's capacity first (at most 50), then the rest."
    )
    linear: int | None = setting(None, "Move the traffic this percent at a time.")
    bake_minutes: float = setting(5.0, "How long each step is watched before the next.")
    final_bake_minutes: float | None = setting(
        None,
        "How long the new fleet is watched with all the traffic before the old one stops "
        "(default: --bake-minutes).",
    )
    rollback_alarms: bool = setting(
        False,
        "Create CloudWatch alarms on ModelLatency, Invocation5XXErrors and Invocation4XXErrors "
        "(new fleet against old) that roll the update back.",
    )

    @property
    def guarded(self) -> bool:
        """Whether these ask for a guarded release rather than a plain deploy."""
        return self.canary is not None or self.linear is not None or self.rollback_alarms

    def traffic(self) -> TrafficShift:
        if self.canary is not None and self.linear is not None:
            raise CriticError("give --canary or --linear, not both")
        for name in ("bake_minutes", "final_bake_minutes"):
            value = getattr(self, name)
            if value is not None and not (_number(value) and value >= 0):
                raise CriticError(f"--{name.replace('_', '-')} must be 0 or more, got {value!r}")
        final = None if self.final_bake_minutes is None else round(self.final_bake_minutes * 60)
        if self.canary is not None:
            mode, percent = "canary", self.canary
        elif self.linear is not None:
            mode, percent = "linear", self.linear
        else:
            mode, percent = "all-at-once", None
        return TrafficShift(mode, percent, round(self.bake_minutes * 60), final)


def alarm_name(endpoint_name: str, variant: str, kind: str) -> str:
    return f"{ALARM_PREFIX}{endpoint_name}-{variant}-{kind}"


def rollback_alarms(
    endpoint_name: str,
    variants: list[str],
    new_config: str,
    old_config: str,
    limits: AlarmLimits,
) -> list[dict]:
    """PutMetricAlarm's parameters for each alarm that rolls the update of ``endpoint_name``
    from ``old_config`` to ``new_config`` back, for each variant (SageMaker keeps the variants'
    names across a blue/green update)."""
    alarms = []
    for variant in variants:
        floor_us = limits.latency_floor_ms * 1000  # ModelLatency is in microseconds
        alarms.append(
            _alarm(
                endpoint_name,
                variant,
                "latency",
                f"p95 model latency of {variant}'s new fleet ({new_config}) over the old "
                f"fleet's ({old_config}), past {limits.max_latency_ratio:g}",
                limits.max_latency_ratio,
                [
                    _fleet_metric(endpoint_name, variant, "ModelLatency", new_config, "p95", "new"),
                    _fleet_metric(endpoint_name, variant, "ModelLatency", old_config, "p95", "old"),
                    _expression("ratio", f"IF(new > {floor_us:g}, new / old, 0)", "p95 ratio"),
                ],
            )
        )
        for kind, metric, allowance in (
            ("5xx", "Invocation5XXErrors", limits.max_error_increase),
            ("4xx", "Invocation4XXErrors", limits.max_client_error_increase),
        ):
            alarms.append(
                _alarm(
                    endpoint_name,
                    variant,
                    kind,
                    f"share of {kind.upper()} answers of {variant}'s new fleet ({new_config}) "
                    f"more than {allowance:g} above the old fleet's ({old_config})",
                    allowance,
                    [
                        _fleet_metric(endpoint_name, variant, metric, new_config, "Average", "new"),
                        _fleet_metric(endpoint_name, variant, metric, old_config, "Average", "old"),
                        _expression("increase", "new - FILL(old, 0)", f"{kind} share increase"),
                    ],
                )
            )
        if limits.max_latency_ms is not None:
            ceiling = _fleet_metric(
                endpoint_name, variant, "ModelLatency", new_config, "p95", "new"
            )
            ceiling["ReturnData"] = True
            alarms.append(
                _alarm(
                    endpoint_name,
                    variant,
                    "latency-ceiling",
                    f"p95 model latency of {variant}'s new fleet ({new_config}) above "
                    f"{limits.max_latency_ms:g} ms",
                    limits.max_latency_ms * 1000,
                    [ceiling],
                )
            )
    if len(alarms) > MAX_ROLLBACK_ALARMS:
        raise CriticError(
            f"{len(alarms)} rollback alarms ({len(alarms) // len(variants)} for each of "
            f"{len(variants)} variants); SageMaker watches at most {MAX_ROLLBACK_ALARMS} in one "
            "update: update fewer variants at a time, or drop the latency ceiling"
        )
    return alarms


def put_alarms(cloudwatch: Any, alarms: list[dict], log) -> list[str]:
    """Create (or replace: PutMetricAlarm overwrites by name) the alarms; their names."""
    from critic.sagemaker.aws import aws_errors

    for alarm in alarms:
        with aws_errors(f"creating CloudWatch alarm {alarm['AlarmName']}"):
            cloudwatch.put_metric_alarm(**alarm)
    names = [alarm["AlarmName"] for alarm in alarms]
    if names:
        log(f"rollback alarms: {', '.join(names)}")
    return names


def firing(cloudwatch: Any, names: list[str]) -> list[str]:
    """Which of the alarms are in ALARM now (why an update was rolled back)."""
    from critic.sagemaker.aws import aws_errors

    if not names:
        return []
    with aws_errors("looking up the rollback alarms"):
        answer = cloudwatch.describe_alarms(AlarmNames=names)
    return [
        alarm["AlarmName"]
        for alarm in answer.get("MetricAlarms", [])
        if alarm.get("StateValue") == "ALARM"
    ]


def delete_alarms(cloudwatch: Any, endpoint_name: str, variants: list[str], log) -> list[str]:
    """Delete the rollback alarms critic made for these variants of an endpoint (those that
    exist: an endpoint never updated with alarms has none)."""
    from critic.sagemaker.aws import aws_errors

    candidates = [
        alarm_name(endpoint_name, variant, kind) for variant in variants for kind in ALARM_KINDS
    ]
    if not candidates:
        return []
    with aws_errors(f"looking up the alarms of endpoint {endpoint_name}"):
        answer = cloudwatch.describe_alarms(AlarmNames=candidates)
    names = [alarm["AlarmName"] for alarm in answer.get("MetricAlarms", [])]
    if names:
        with aws_errors(f"deleting the alarms of endpoint {endpoint_name}"):
            cloudwatch.delete_alarms(AlarmNames=names)
        log(f"deleted alarms {', '.join(names)}")
    return names


def _fleet_metric(
    endpoint_name: str, variant: str, metric: str, config: str, stat: str, metric_id: str
) -> dict:
    """One fleet's metric: SageMaker publishes it per endpoint config as well."""
    return {
        "Id": metric_id,
        "ReturnData": False,
        "MetricStat": {
            "Metric": {
                "Namespace": NAMESPACE,
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint_name},
                    {"Name": "VariantName", "Value": variant},
                    {"Name": "EndpointConfigName", "Value": config},
                ],
            },
            "Period": PERIOD_S,
            "Stat": stat,
        },
    }


def _alarm(
    endpoint_name: str,
    variant: str,
    kind: str,
    description: str,
    threshold: float,
    metrics: list[dict],
) -> dict:
    return {
        "AlarmName": alarm_name(endpoint_name, variant, kind),
        "AlarmDescription": f"critic rolls back an update of endpoint {endpoint_name}: {description}",
        "ActionsEnabled": False,  # SageMaker reads the state; nothing else needs to act
        "Metrics": metrics,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": EVALUATION_PERIODS,
        "DatapointsToAlarm": DATAPOINTS_TO_ALARM,
        # No traffic is no evidence: a quiet minute must neither fire nor clear the alarm.
        "TreatMissingData": "missing",
        "Tags": [{"Key": "critic:endpoint", "Value": endpoint_name}],
    }


def _expression(metric_id: str, expression: str, label: str) -> dict:
    return {"Id": metric_id, "Expression": expression, "Label": label, "ReturnData": True}


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(name: str, value: object, above: float, inclusive: bool = False) -> None:
    if not _number(value) or not (value >= above if inclusive else value > above):
        bound = "at least" if inclusive else "above"
        raise CriticError(f"{name} must be a number {bound} {above:g}, got {value!r}")


def _minutes(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{seconds / 60:g} minutes"
