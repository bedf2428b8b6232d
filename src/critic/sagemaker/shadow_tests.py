"""Shadow tests: a new model answers a copy of an endpoint's live traffic, unseen by callers.

A SageMaker shadow test (an inference experiment of type ShadowMode) runs a *shadow* variant
beside one production variant of an endpoint, the *source*: a share of the requests the source
answers is copied to the shadow, whose answers are only recorded (in S3, beside the source's)
and never returned. It is how a challenger is judged on real traffic before it takes any. For
an endpoint NAME, :func:`start_shadow_test` makes

    s3://BUCKET/critic/NAME/VARIANT/STAMP/model.tar.gz  the shadow's model data
    model NAME-VARIANT-STAMP                            the PyTorch inference image and that data
    inference experiment NAME-shadow-STAMP              the test, from now for DAYS days
    s3://BUCKET/critic/NAME/shadow-capture              the requests and both variants' answers

STAMP is the UTC time it started (20261203-094500). The shadow's instances are billed while the
test runs; :func:`stop_shadow_test` ends it, either removing the shadow or promoting it to be
the endpoint's production variant in the source's place.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from critic.errors import CriticError
from critic.sagemaker.aws import (
    Aws,
    aws_errors,
    check_bucket,
    connect,
    describe_or_none,
    upload_file,
)
from critic.sagemaker.capture import CAPTURED_CONTENT_TYPES
from critic.sagemaker.checks import (
    MAX_NAME_LENGTH,
    bucket_name,
    check_instance_type,
    check_name,
    check_positive_int,
    check_role_arn,
)
from critic.sagemaker.endpoints import (
    TAG_KEY,
    _check_model_archive,
    _describe_endpoint,
    _megabytes,
    _model_name,
    _shares,
    model_environment,
)
from critic.sagemaker.images import check_image_uri, framework_image_uri
from critic.serving.variants import VariantSpec

Log = Callable[[str], None]

CLI_STOP = "critic sagemaker shadow {name} --stop"
CLI_STATUS = "critic sagemaker shadow {name} --status"
SHADOW_VARIANT = "shadow"
MAX_DAYS = 30  # SageMaker's longest inference experiment
MAX_LIST_FILTER = 63  # ListInferenceExperiments' NameContains
STAMP_FORMAT = "%Y%m%d-%H%M%S"
# A test in one of these holds the endpoint: SageMaker allows one experiment per endpoint.
ACTIVE = ("Creating", "Created", "Starting", "Running", "Updating")
STOPPING = "Stopping"


@dataclass(frozen=True)
class ShadowTest:
    """One shadow test of an endpoint, as started, stopped or described."""

    name: str
    endpoint_name: str
    source_variant: str
    """The production variant whose requests are copied."""
    shadow_variant: str
    shadow_model: str
    percent: int
    """The share of the source's requests the shadow also answers."""
    starts: datetime | None
    ends: datetime | None
    status: str
    """SageMaker's: Creating, Created, Starting, Running, Stopping, Completed, Cancelled..."""
    data_destination: str | None
    """Where SageMaker writes the captured requests and answers."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the times as ISO 8601 text."""
        return {
            "name": self.name,
            "endpoint": self.endpoint_name,
            "source_variant": self.source_variant,
            "shadow_variant": self.shadow_variant,
            "shadow_model": self.shadow_model,
            "percent": self.percent,
            "starts": self.starts.isoformat() if self.starts else None,
            "ends": self.ends.isoformat() if self.ends else None,
            "status": self.status,
            "data_destination": self.data_destination,
        }


def start_shadow_test(
    endpoint_name: str,
    artifact: Path,
    role_arn: str,
    bucket: str,
    *,
    variant: str = SHADOW_VARIANT,
    percent: int = 100,
    duration_days: float = 7.0,
    instance_type: str | None = None,
    instance_count: int | None = None,
    image_uri: str | None = None,
    region: str | None = None,
    log: Log = print,
    session: Any = None,
    now: datetime | None = None,
) -> ShadowTest:
    """Run ``artifact`` (a model.tar.gz) as a shadow of an InService endpoint's production
    variant for ``duration_days`` (at most 30), answering a copy of ``percent`` % of its requests.

    The source is the endpoint's variant with the largest weight. The shadow runs on the
    source's instance type and count unless ``instance_type`` / ``instance_count`` say
    otherwise, with the SageMaker PyTorch image unless ``image_uri`` names another;
    ``role_arn`` is the role SageMaker assumes to run the test and write to ``bucket``.

    Every input is checked before any AWS call; an endpoint that already has a shadow test is
    refused before anything is uploaded. If the experiment cannot be created, the model made for
    it is deleted again. ``now`` (UTC) is when the test starts, and names what it makes.
    """
    check_name("endpoint", endpoint_name)
    check_name("variant", variant)
    archive = Path(artifact)
    _check_model_archive(VariantSpec(variant, archive))
    check_role_arn(role_arn)
    bucket = bucket_name(bucket)
    percent = _check_percent(percent)
    duration_days = _check_days(duration_days)
    if instance_type is not None:
        check_instance_type(instance_type)
    if instance_count is not None:
        check_positive_int("instance_count", instance_count)
    if image_uri is not None:
        check_image_uri(image_uri)
    starts = _utc(now)
    ends = starts + timedelta(days=duration_days)
    stamp = starts.strftime(STAMP_FORMAT)
    model_name = _model_name(endpoint_name, f"{variant}-{stamp}")
    if len(model_name) > MAX_NAME_LENGTH:
        raise CriticError(
            f"the shadow's model would be named {model_name} (endpoint-variant-time), "
            f"{len(model_name)} characters; SageMaker allows {MAX_NAME_LENGTH}: shorten the "
            "variant name"
        )
    test_name = f"{endpoint_name}-shadow-{stamp}"

    aws = connect(region, session)
    s3, sagemaker = aws.client("s3"), aws.client("sagemaker")
    source = _source_variant(aws, sagemaker, endpoint_name, variant, log)
    running = _active_test(sagemaker, endpoint_name, (*ACTIVE, STOPPING))
    if running is not None:
        status = running["Status"]
        how = (
            f"wait until it has stopped ({CLI_STATUS.format(name=endpoint_name)})"
            if status == STOPPING
            else f"stop it first: {CLI_STOP.format(name=endpoint_name)}"
        )
        raise CriticError(
            f"endpoint {endpoint_name} already has a shadow test, {running['Name']} ({status}); "
            f"an endpoint runs one at a time: {how}"
        )
    shadow_type = instance_type or source["InstanceType"]
    shadow_count = instance_count or source["InstanceCount"]
    image = image_uri or framework_image_uri("inference", aws.region, shadow_type)
    check_bucket(aws, s3, bucket)

    key = f"critic/{endpoint_name}/{variant}/{stamp}/model.tar.gz"
    log(f"uploading {archive} ({_megabytes(archive)}) to s3://{bucket}/{key}")
    model_data = upload_file(s3, archive, bucket, key)
    tags = [{"Key": TAG_KEY, "Value": endpoint_name}]
    with aws_errors(f"creating model {model_name}"):
        sagemaker.create_model(
            ModelName=model_name,
            ExecutionRoleArn=role_arn,
            PrimaryContainer={
                "Image": image,
                "Environment": model_environment(aws.region),
                "ModelDataUrl": model_data,
            },
            Tags=tags,
        )
    log(f"created model {model_name} ({image})")

    destination = f"s3://{bucket}/critic/{endpoint_name}/shadow-capture"
    try:
        with aws_errors(f"creating shadow test {test_name}"):
            sagemaker.create_inference_experiment(
                Name=test_name,
                Type="ShadowMode",
                Schedule={"StartTime": starts, "EndTime": ends},
                RoleArn=role_arn,
                EndpointName=endpoint_name,
                ModelVariants=[
                    _variant_config(
                        source["ModelName"],
                        source["VariantName"],
                        source["InstanceType"],
                        source["InstanceCount"],
                    ),
                    _variant_config(model_name, variant, shadow_type, shadow_count),
                ],
                ShadowModeConfig={
                    "SourceModelVariantName": source["VariantName"],
                    "ShadowModelVariants": [
                        {"ShadowModelVariantName": variant, "SamplingPercentage": percent}
                    ],
                },
                DataStorageConfig={
                    "Destination": destination,
                    "ContentType": CAPTURED_CONTENT_TYPES,  # what critic monitor reads as text
                },
                Tags=tags,
            )
    except BaseException:
        # Nothing runs yet, so nothing bills; leave no model behind to puzzle over.
        with contextlib.suppress(Exception):
            sagemaker.delete_model(ModelName=model_name)
            log(f"the shadow test was not created; deleted model {model_name} again")
        raise

    log(
        f"started shadow test {test_name}: variant {variant} answers a copy of {percent}% of "
        f"the requests to {source['VariantName']} (callers get only {source['VariantName']}'s "
        f"answers) until {ends:%Y-%m-%d %H:%M} UTC; both answers are captured to {destination}"
    )
    log(
        f"the shadow's {shadow_count} x {shadow_type} instance(s) are billed while the test "
        "runs, on top of the endpoint's own"
    )
    log(
        f"stop it: {CLI_STOP.format(name=endpoint_name)} (add --promote to make {variant} the "
        f"endpoint's production variant in {source['VariantName']}'s place); see it: "
        f"{CLI_STATUS.format(name=endpoint_name)}"
    )
    return ShadowTest(
        name=test_name,
        endpoint_name=endpoint_name,
        source_variant=source["VariantName"],
        shadow_variant=variant,
        shadow_model=model_name,
        percent=percent,
        starts=starts,
        ends=ends,
        status="Creating",
        data_destination=destination,
    )


def stop_shadow_test(
    endpoint_name: str,
    *,
    promote: bool = False,
    region: str | None = None,
    log: Log = print,
    session: Any = None,
) -> ShadowTest:
    """End the endpoint's shadow test, which stops its billing.

    Without ``promote`` the source variant stays as it is and the shadow is removed; with it
    the shadow takes the source's place as the endpoint's production variant, on the shadow's
    instances. An endpoint with no shadow test running is a CriticError.
    """
    check_name("endpoint", endpoint_name)
    aws = connect(region, session)
    sagemaker = aws.client("sagemaker")
    described = _active_test(sagemaker, endpoint_name, ACTIVE)
    if described is None:
        raise CriticError(
            f"endpoint {endpoint_name} has no shadow test running in {aws.region}; start one "
            f"with critic sagemaker shadow {endpoint_name} ARTIFACT --role ROLE --bucket BUCKET"
        )
    test = _shadow_test(described)
    shadow_config = next(
        (
            {key: value for key, value in entry.items() if key != "Status"}
            for entry in described.get("ModelVariants", [])
            if entry.get("VariantName") == test.shadow_variant
        ),
        None,
    )
    if promote and shadow_config is None:
        raise CriticError(
            f"shadow test {test.name} reports no model for its shadow variant "
            f"{test.shadow_variant}, so it cannot be promoted; stop it without --promote"
        )
    if promote:
        actions = {test.source_variant: "Remove", test.shadow_variant: "Promote"}
        reason = f"critic: promote {test.shadow_variant} in place of {test.source_variant}"
        extra: dict[str, Any] = {"DesiredModelVariants": [shadow_config]}
    else:
        actions = {test.source_variant: "Retain", test.shadow_variant: "Remove"}
        reason = f"critic: stop; keep {test.source_variant}, remove {test.shadow_variant}"
        extra = {}
    with aws_errors(f"stopping shadow test {test.name}"):
        sagemaker.stop_inference_experiment(
            Name=test.name,
            ModelVariantActions=actions,
            DesiredState="Completed",
            Reason=reason,
            **extra,
        )
    if promote:
        log(
            f"stopping shadow test {test.name}: {test.shadow_variant} ({test.shadow_model}) "
            f"becomes the production variant of endpoint {endpoint_name} in place of "
            f"{test.source_variant}"
        )
    else:
        log(
            f"stopping shadow test {test.name}: {test.shadow_variant} is removed, "
            f"{test.source_variant} serves on as before; model {test.shadow_model} stays (it "
            f"costs nothing): aws sagemaker delete-model --model-name {test.shadow_model}"
        )
    log(f"what it captured is under {test.data_destination}")
    return replace(test, status=STOPPING)


def describe_shadow_test(
    endpoint_name: str, region: str | None = None, session: Any = None
) -> ShadowTest | None:
    """The endpoint's latest shadow test, whatever its status; None when it has had none."""
    check_name("endpoint", endpoint_name)
    aws = connect(region, session)
    sagemaker = aws.client("sagemaker")
    for summary in _listed_tests(sagemaker, endpoint_name):
        described = _describe_test(sagemaker, summary["Name"])
        if described is not None and _belongs_to(described, endpoint_name):
            return _shadow_test(described)
    return None


# --- helpers ----------------------------------------------------------------------------------


def _check_percent(percent: object) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise CriticError(
            f"the shadow's share of the requests must be a whole percentage from 1 to 100, "
            f"got {percent!r}"
        )
    return percent


def _check_days(days: object) -> float:
    if (
        isinstance(days, bool)
        or not isinstance(days, int | float)
        or not math.isfinite(days)
        or not 0 < days <= MAX_DAYS
    ):
        raise CriticError(
            f"a shadow test runs for more than 0 and at most {MAX_DAYS} days (SageMaker's "
            f"limit), got {days!r}"
        )
    return float(days)


def _utc(now: datetime | None) -> datetime:
    """``now`` in UTC (a naive time is taken as UTC), to the second; the present by default."""
    moment = now or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _variant_config(model: str, variant: str, instance_type: str, count: int) -> dict:
    return {
        "ModelName": model,
        "VariantName": variant,
        "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": instance_type, "InstanceCount": count},
        },
    }


def _source_variant(aws: Aws, sagemaker: Any, endpoint_name: str, shadow: str, log: Log) -> dict:
    """The production variant to shadow (the largest weight): its VariantName, ModelName,
    InstanceType and InstanceCount (the instances it runs now)."""
    endpoint = _describe_endpoint(aws, sagemaker, endpoint_name)
    status = endpoint.get("EndpointStatus")
    if status != "InService":
        raise CriticError(
            f"endpoint {endpoint_name} is {status}; a shadow test can start once it is InService"
        )
    variants = endpoint.get("ProductionVariants", [])
    names = [entry["VariantName"] for entry in variants]
    if shadow in names:
        raise CriticError(
            f"endpoint {endpoint_name} already has a production variant named {shadow}: "
            "give the shadow another name (--variant)"
        )
    if not variants:
        raise CriticError(f"endpoint {endpoint_name} has no production variant to shadow")
    weights = {
        entry["VariantName"]: float(entry.get("CurrentWeight", entry.get("DesiredWeight", 0)))
        for entry in variants
    }
    chosen = max(variants, key=lambda entry: weights[entry["VariantName"]])
    if len(variants) > 1:
        log(
            f"endpoint {endpoint_name} has {len(variants)} production variants "
            f"({_shares(weights)}); a shadow test copies one: {chosen['VariantName']}, the one "
            "with the largest weight"
        )
    config_name = endpoint.get("EndpointConfigName")
    config = describe_or_none(
        sagemaker.describe_endpoint_config,
        f"looking up endpoint config {config_name}",
        EndpointConfigName=config_name,
    )
    configured = next(
        (
            entry
            for entry in (config or {}).get("ProductionVariants", [])
            if entry.get("VariantName") == chosen["VariantName"]
        ),
        None,
    )
    if configured is None:
        raise CriticError(
            f"endpoint config {config_name} of endpoint {endpoint_name} does not describe "
            f"variant {chosen['VariantName']}, so its model cannot be found"
        )
    if not configured.get("InstanceType"):
        raise CriticError(
            f"variant {chosen['VariantName']} of endpoint {endpoint_name} is serverless; "
            "SageMaker runs shadow tests only beside variants on instances"
        )
    return {
        "VariantName": chosen["VariantName"],
        "ModelName": configured["ModelName"],
        "InstanceType": configured["InstanceType"],
        # Autoscaling may have moved it from the config's initial count: keep what runs.
        "InstanceCount": chosen.get("CurrentInstanceCount")
        or configured.get("InitialInstanceCount", 1),
    }


def _listed_tests(sagemaker: Any, endpoint_name: str) -> list[dict]:
    """The summaries of the shadow tests named after the endpoint, newest first."""
    prefix = f"{endpoint_name}-shadow-"
    params: dict[str, Any] = {
        "NameContains": prefix.rstrip("-")[:MAX_LIST_FILTER],
        "Type": "ShadowMode",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
    }
    found: list[dict] = []
    with aws_errors(f"listing the shadow tests of endpoint {endpoint_name}"):
        while True:
            page = sagemaker.list_inference_experiments(**params)
            found += [
                entry
                for entry in page.get("InferenceExperiments", [])
                if entry.get("Name", "").startswith(prefix)
            ]
            if not page.get("NextToken"):
                return found
            params["NextToken"] = page["NextToken"]


def _describe_test(sagemaker: Any, name: str) -> dict | None:
    return describe_or_none(
        sagemaker.describe_inference_experiment, f"looking up shadow test {name}", Name=name
    )


def _belongs_to(described: dict, endpoint_name: str) -> bool:
    # The name only suggests it: endpoint a-shadow-x's tests start with "a-shadow-" too.
    return described.get("EndpointMetadata", {}).get("EndpointName") == endpoint_name


def _active_test(sagemaker: Any, endpoint_name: str, statuses: tuple[str, ...]) -> dict | None:
    """DescribeInferenceExperiment's answer for the endpoint's test in one of ``statuses``."""
    for summary in _listed_tests(sagemaker, endpoint_name):
        if summary.get("Status") not in statuses:
            continue
        described = _describe_test(sagemaker, summary["Name"])
        if described is not None and _belongs_to(described, endpoint_name):
            return described
    return None


def _shadow_test(described: dict) -> ShadowTest:
    shadow_mode = described.get("ShadowModeConfig", {})
    shadows = shadow_mode.get("ShadowModelVariants") or [{}]
    shadow_variant = shadows[0].get("ShadowModelVariantName", "")
    models = {
        entry.get("VariantName"): entry.get("ModelName")
        for entry in described.get("ModelVariants", [])
    }
    schedule = described.get("Schedule", {})
    return ShadowTest(
        name=described["Name"],
        endpoint_name=described.get("EndpointMetadata", {}).get("EndpointName", ""),
        source_variant=shadow_mode.get("SourceModelVariantName", ""),
        shadow_variant=shadow_variant,
        shadow_model=models.get(shadow_variant) or "",
        percent=int(shadows[0].get("SamplingPercentage", 0)),
        starts=schedule.get("StartTime"),
        ends=schedule.get("EndTime"),
        status=described.get("Status", ""),
        data_destination=described.get("DataStorageConfig", {}).get("Destination"),
    )
