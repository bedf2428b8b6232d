"""Deploy model.tar.gz files as one SageMaker endpoint, shift its traffic, and delete it.

One endpoint serves one or more production variants that share its traffic by weight (A/B
testing: a champion and a challenger). For an endpoint NAME, :func:`deploy` makes

    s3://BUCKET/critic/NAME/VARIANT/model.tar.gz   each variant's model data
    model NAME-VARIANT                             the PyTorch inference image and that data
    endpoint config NAME                           the variants, instance type and weights
    endpoint NAME                                  billed per instance-hour until deleted

:func:`update_endpoint` puts new models on a running endpoint the way SageMaker releases
them, blue/green: a new config ``NAME-rSTAMP`` (models ``NAME-VARIANT-rSTAMP``, data under
``VARIANT/rSTAMP/``), the traffic moved over all at once, as a canary or in linear steps, each
step baked under CloudWatch alarms that roll it back (:mod:`critic.sagemaker.deployment`).

:func:`delete_endpoint` removes the endpoint, its config, its models and its alarms. The S3
objects stay: they cost little and are what a second deploy would upload again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.errors import CriticError
from critic.sagemaker.autoscaling import ScalingLimits, VariantScaling, set_autoscaling
from critic.sagemaker.aws import (
    Aws,
    aws_errors,
    check_bucket,
    connect,
    describe_or_none,
    is_not_found,
    one_line,
    upload_file,
    wait_until,
)
from critic.sagemaker.capture import DataCapture
from critic.sagemaker.checks import (
    MAX_NAME_LENGTH,
    bucket_name,
    check_instance_type,
    check_model_archive,
    check_name,
    check_positive_int,
    check_role_arn,
    check_weight,
)
from critic.sagemaker.deployment import (
    AlarmLimits,
    TrafficShift,
    delete_alarms,
    firing,
    put_alarms,
    rollback_alarms,
)
from critic.sagemaker.images import (
    check_image_uri,
    framework_image_uri,
    model_environment,
)
from critic.sagemaker.model_registry import ModelPackageVariant, ModelVersion, approved_package
from critic.serving.variants import VariantSpec, check_distinct_names

Log = Callable[[str], None]
# What deploy and update take as one variant: a model.tar.gz, or a version of the registry.
Variant = VariantSpec | ModelPackageVariant

# What deploy prints so that the endpoint gets used, and deleted.
CLI_INVOKE = 'critic sagemaker invoke {name} "a review"'
CLI_DELETE = "critic sagemaker delete-endpoint {name}"

MAX_VARIANTS = 10  # SageMaker's limit of production variants per endpoint config
INSTANCE_TYPE = "ml.m5.large"
WAIT_DELAY_S = 15
TAG_KEY = "critic:endpoint"


@dataclass(frozen=True)
class Deployment:
    """What :func:`deploy` made."""

    endpoint_name: str
    endpoint_arn: str
    endpoint_config_name: str
    region: str
    status: str
    """``InService`` after waiting, ``Creating`` when deploy did not wait."""
    image_uri: str
    models: dict[str, str] = field(default_factory=dict)
    """Variant name -> SageMaker model name."""
    model_data: dict[str, str] = field(default_factory=dict)
    """Variant name -> S3 URI of its model.tar.gz (a registry version's, for those)."""
    weights: dict[str, float] = field(default_factory=dict)
    autoscaling: list[VariantScaling] = field(default_factory=list)
    """Each variant's autoscaling, when deploy was given limits."""
    data_capture: str | None = None
    """Where the endpoint captures its traffic (an S3 URI), when it does."""


@dataclass(frozen=True)
class Release:
    """What :func:`update_endpoint` did."""

    endpoint_name: str
    endpoint_config_name: str
    """The new config (``NAME-rSTAMP``)."""
    previous_config_name: str
    region: str
    status: str
    """``InService`` (the new config serves all the traffic), ``RolledBack`` (the old one
    still does), or ``Updating`` when the update was not waited for."""
    traffic: str
    """How the traffic moved, in words."""
    alarms: list[str] = field(default_factory=list)
    firing: list[str] = field(default_factory=list)
    """The alarms in ALARM once it rolled back."""
    reason: str | None = None
    """SageMaker's FailureReason once it rolled back."""
    models: dict[str, str] = field(default_factory=dict)
    model_data: dict[str, str] = field(default_factory=dict)
    data_capture: str | None = None

    def to_dict(self) -> dict:
        answer = {
            "endpoint": self.endpoint_name,
            "status": self.status,
            "endpoint_config": self.endpoint_config_name,
            "previous_config": self.previous_config_name,
            "traffic": self.traffic,
            "alarms": self.alarms,
            "models": self.models,
        }
        if self.status == "RolledBack":
            answer["firing"] = self.firing
            answer["reason"] = self.reason
        if self.data_capture:
            answer["data_capture"] = self.data_capture
        return answer


@dataclass(frozen=True)
class DeletedEndpoint:
    """What :func:`delete_endpoint` removed."""

    endpoint_name: str
    endpoint_config_name: str | None
    models: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    """The rollback alarms of its updates."""


def invocation_hints(endpoint_name: str, region: str) -> list[str]:
    """How to call the endpoint: with critic, the AWS CLI and boto3; and how to delete it."""
    body = json.dumps({"instances": ["a review"]})
    aws_cli = shlex.join(
        [
            "aws",
            "sagemaker-runtime",
            "invoke-endpoint",
            "--region",
            region,
            "--endpoint-name",
            endpoint_name,
            "--content-type",
            "application/json",
            "--cli-binary-format",
            "raw-in-base64-out",
            "--body",
            body,
            "/dev/stdout",
        ]
    )
    boto3_code = (
        f'import boto3, json; print(boto3.client("sagemaker-runtime", region_name="{region}")'
        f'.invoke_endpoint(EndpointName="{endpoint_name}", ContentType="application/json", '
        f'Body=json.dumps({{"instances": ["a review"]}}))["Body"].read().decode())'
    )
    return [
        "invoke it:",
        f"  {CLI_INVOKE.format(name=endpoint_name)}",
        f"  {aws_cli}",
        f"  python -c {shlex.quote(boto3_code)}",
        "it is billed per instance-hour until deleted; when done: "
        + CLI_DELETE.format(name=endpoint_name),
    ]


def packaged_variants(specs: Sequence[Variant], scratch: Path) -> list[Variant]:
    """The variants with every bundle folder packaged into ``scratch`` as the model.tar.gz
    SageMaker's serving container loads (an archive already packaged, or a registry version,
    is taken as it is)."""
    from critic.inference.bundle import package_bundle

    packaged: list[Variant] = []
    for spec in specs:
        if not isinstance(spec, VariantSpec):
            packaged.append(spec)
            continue
        path = spec.bundle
        if path.is_dir():
            path = package_bundle(path, Path(scratch) / f"{spec.name}.tar.gz")
        packaged.append(VariantSpec(spec.name, path, spec.weight))
    return packaged


def deploy(
    variants: Sequence[Variant | tuple[str, str | Path, float]],
    endpoint_name: str,
    role_arn: str,
    bucket: str | None,
    instance_type: str = INSTANCE_TYPE,
    instance_count: int = 1,
    image_uri: str | None = None,
    region: str | None = None,
    wait: bool = True,
    log: Log = print,
    *,
    autoscaling: ScalingLimits | None = None,
    data_capture: DataCapture | None = None,
    wait_timeout_s: float = 1800.0,
    session: Any = None,
) -> Deployment:
    """Upload each variant's model.tar.gz and serve them all from one endpoint.

    ``variants`` holds ``VariantSpec`` objects (``bundle`` being a model.tar.gz) or
    ``(name, path to model.tar.gz, initial weight)`` triples; traffic is shared in proportion
    to the weights. Every variant runs ``instance_count`` instances of ``instance_type`` with
    the SageMaker PyTorch inference image (GPU or CPU as the instance type needs; see
    :mod:`critic.sagemaker.images`) unless ``image_uri`` names another.
    ``role_arn`` is the IAM role SageMaker assumes to read ``bucket`` and pull the image.

    A :class:`~critic.sagemaker.model_registry.ModelPackageVariant` serves a version of the
    Model Registry instead: its model is created from the package
    (``PrimaryContainer={"ModelPackageName": ARN}``, the image and model data the version
    names), nothing is uploaded for it, and a version that is not Approved is refused before
    anything is created. ``bucket`` may then be None, unless ``data_capture`` needs it.

    Every input is checked before anything is uploaded or created. If creating a model or the
    endpoint config fails, what this call created is deleted again. With ``wait``, returns once
    the endpoint is InService (at most ``wait_timeout_s``); a failed endpoint is a CriticError
    with SageMaker's reason. ``session`` is an optional ``boto3.session.Session`` (a named
    profile, assumed-role credentials); the default reads the environment.

    ``autoscaling`` registers every variant with Application Auto Scaling once the endpoint is
    InService (so it needs ``wait``), between its limits, which must hold ``instance_count``.
    ``data_capture`` has SageMaker write a share of the calls to S3 (see
    :mod:`critic.sagemaker.capture`; ``critic sagemaker capture`` brings them down).

    Later releases onto the endpoint go through :func:`update_endpoint`.
    """
    specs, bucket = _check_models(
        variants, endpoint_name, role_arn, bucket, instance_type, instance_count, image_uri
    )
    _check_timeout(wait_timeout_s)
    _check_autoscaling(autoscaling, instance_count, wait)
    if data_capture is not None and not isinstance(data_capture, DataCapture):
        raise CriticError(f"data_capture must be DataCapture, got {data_capture!r}")

    _check_bucket_needed(specs, bucket, data_capture is not None)

    aws = connect(region, session)
    image = _archive_image(image_uri, aws.region, instance_type, specs)
    s3, sagemaker = aws.client("s3"), aws.client("sagemaker")
    _refuse_existing_endpoint(aws, sagemaker, endpoint_name)
    packages = _approved_packages(sagemaker, specs, aws.region)
    model_data = _upload_archives(
        aws, s3, specs, bucket, lambda spec: f"critic/{endpoint_name}/{spec.name}/model.tar.gz", log
    )
    models = {spec.name: _model_name(endpoint_name, spec.name) for spec in specs}

    capture = data_capture.config(bucket, endpoint_name) if data_capture else None
    created = _create_endpoint(
        sagemaker,
        endpoint_name,
        models=_model_requests(specs, models, model_data, role_arn, image, aws.region),
        variants=_variant_requests(specs, models, instance_type, instance_count),
        data_capture=capture,
        log=log,
    )

    weights = {spec.name: spec.weight for spec in specs}
    log(
        f"creating endpoint {endpoint_name} in {aws.region} ({_shares(weights)}; "
        f"{instance_count} x {instance_type} per variant); this usually takes 5-10 minutes and "
        "is billed from now until the endpoint is deleted"
    )
    status = _wait_or_say_how(sagemaker, endpoint_name, aws.region, wait, wait_timeout_s, log)
    scaling = (
        set_autoscaling(endpoint_name, autoscaling, aws.region, log=log, session=aws.session)
        if autoscaling is not None
        else []
    )
    return Deployment(
        endpoint_name=endpoint_name,
        endpoint_arn=created["EndpointArn"],
        endpoint_config_name=endpoint_name,
        region=aws.region,
        status=status,
        image_uri=image or next((v.image for v in packages.values() if v.image), ""),
        models=models,
        model_data={
            **{name: v.model_data for name, v in packages.items() if v.model_data},
            **model_data,
        },
        weights=weights,
        autoscaling=scaling,
        data_capture=capture["DestinationS3Uri"] if capture else None,
    )


def update_weights(
    endpoint_name: str,
    weights: Mapping[str, float],
    region: str | None = None,
    *,
    wait: bool = True,
    wait_timeout_s: float = 1800.0,
    log: Log = print,
    session: Any = None,
) -> dict[str, float]:
    """Change how an endpoint's traffic is shared between its variants, without redeploying.

    ``weights`` maps variant names to new weights (zero takes a variant out of rotation; the
    variants not named keep theirs). Unknown variants are a CriticError that names the
    endpoint's variants. With ``wait``, returns once the endpoint is InService again. Returns
    every variant's weight as SageMaker then reports it (``CurrentWeight``).
    """
    check_name("endpoint", endpoint_name)
    if not isinstance(weights, Mapping) or not weights:
        raise CriticError("give at least one variant and its new weight")
    checked = {
        check_name("variant", name): check_weight(name, weight, allow_zero=True)
        for name, weight in weights.items()
    }
    _check_timeout(wait_timeout_s)

    aws = connect(region, session)
    sagemaker = aws.client("sagemaker")
    endpoint = _describe_endpoint(aws, sagemaker, endpoint_name)
    current = _current_weights(endpoint)
    unknown = sorted(set(checked) - set(current))
    if unknown:
        raise CriticError(
            f"endpoint {endpoint_name} has no variant {', '.join(unknown)}; "
            f"its variants: {', '.join(sorted(current)) or 'none'}"
        )
    if not any({**current, **checked}.values()):
        raise CriticError(
            f"these weights would leave endpoint {endpoint_name} no variant to send traffic to; "
            "keep at least one weight above zero"
        )
    status = endpoint.get("EndpointStatus")
    if status != "InService":
        raise CriticError(
            f"endpoint {endpoint_name} is {status}; its weights can change once it is InService"
        )
    with aws_errors(f"updating the weights of endpoint {endpoint_name}"):
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=endpoint_name,
            DesiredWeightsAndCapacities=[
                {"VariantName": name, "DesiredWeight": weight} for name, weight in checked.items()
            ],
        )
    if wait:
        _wait_in_service(sagemaker, endpoint_name, wait_timeout_s, log)
    result = _current_weights(_describe_endpoint(aws, sagemaker, endpoint_name))
    log(f"endpoint {endpoint_name}: {_shares(result)}")
    return result


def update_endpoint(
    variants: Sequence[Variant | tuple[str, str | Path, float]],
    endpoint_name: str,
    role_arn: str,
    bucket: str | None,
    instance_type: str = INSTANCE_TYPE,
    instance_count: int = 1,
    image_uri: str | None = None,
    region: str | None = None,
    wait: bool = True,
    log: Log = print,
    *,
    traffic: TrafficShift | None = None,
    alarms: AlarmLimits | None = None,
    data_capture: DataCapture | None = None,
    wait_timeout_s: float | None = None,
    session: Any = None,
    now: dt.datetime | None = None,
) -> Release:
    """Release new models onto a running endpoint, blue/green, guarded by rollback alarms.

    The new models take the endpoint's variants' names (SageMaker's rule for a blue/green
    update; a lone archive takes the endpoint's lone variant's name) and go into a new config
    ``NAME-rSTAMP``. ``traffic`` says how the traffic moves to them (all at once by default);
    with ``alarms``, CloudWatch alarms compare the new fleet with the old one through every
    step and SageMaker sends the traffic back to the old fleet when one fires. The endpoint's
    data capture carries over unless ``data_capture`` sets another.

    With ``wait``, returns once the update ended: ``InService`` on the new config (the old
    config and its models are then deleted), or ``RolledBack`` with the alarms that fired and
    SageMaker's reason (the new config and models are deleted). Everything is checked before
    anything is uploaded; a failure half-way removes what this call made.
    """
    specs, bucket = _check_models(
        variants, endpoint_name, role_arn, bucket, instance_type, instance_count, image_uri
    )
    for value, kind in (
        (traffic, TrafficShift),
        (alarms, AlarmLimits),
        (data_capture, DataCapture),
    ):
        if value is not None and not isinstance(value, kind):
            raise CriticError(f"expected {kind.__name__}, got {value!r}")
    if traffic is None:
        traffic = TrafficShift()
    if wait_timeout_s is None:
        # Starting the new fleet takes 5-10 minutes, then every step bakes.
        wait_timeout_s = 1800.0 + traffic.expected_s()
    _check_timeout(wait_timeout_s)
    stamp = "r" + (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H%M%S")
    config_name = f"{endpoint_name}-{stamp}"
    if len(config_name) > MAX_NAME_LENGTH:
        raise CriticError(
            f"the new endpoint config would be named {config_name}, {len(config_name)} "
            f"characters; SageMaker allows {MAX_NAME_LENGTH}: use a shorter endpoint name"
        )

    _check_bucket_needed(specs, bucket, data_capture is not None)
    aws = connect(region, session)
    image = _archive_image(image_uri, aws.region, instance_type, specs)
    s3, sagemaker, cloudwatch = aws.client("s3"), aws.client("sagemaker"), aws.client("cloudwatch")
    endpoint = _describe_endpoint(aws, sagemaker, endpoint_name)
    status = endpoint.get("EndpointStatus")
    if status != "InService":
        raise CriticError(
            f"endpoint {endpoint_name} is {status}; it can take an update once it is InService"
        )
    previous = endpoint["EndpointConfigName"]
    old_config = describe_or_none(
        sagemaker.describe_endpoint_config,
        f"looking up endpoint config {previous}",
        EndpointConfigName=previous,
    )
    if old_config is None:
        raise CriticError(f"endpoint {endpoint_name}'s config {previous} is gone; redeploy it")
    old_variants = [variant["VariantName"] for variant in old_config["ProductionVariants"]]
    specs = _same_variant_names(specs, old_variants, endpoint_name)
    models = {spec.name: f"{_model_name(endpoint_name, spec.name)}-{stamp}" for spec in specs}
    too_long = [name for name in models.values() if len(name) > MAX_NAME_LENGTH]
    if too_long:
        raise CriticError(
            f"model {too_long[0]} (endpoint-variant-release) would be {len(too_long[0])} "
            f"characters; SageMaker allows {MAX_NAME_LENGTH}: shorten the endpoint or variant name"
        )
    if data_capture is not None:
        capture = data_capture.config(bucket, endpoint_name)
    else:
        capture = old_config.get("DataCaptureConfig")  # an update must not stop the capture
    _approved_packages(sagemaker, specs, aws.region)
    model_data = _upload_archives(
        aws,
        s3,
        specs,
        bucket,
        lambda spec: f"critic/{endpoint_name}/{spec.name}/{stamp}/model.tar.gz",
        log,
    )
    created = _create_config(
        sagemaker,
        endpoint_name,
        config_name,
        _model_requests(specs, models, model_data, role_arn, image, aws.region),
        _variant_requests(specs, models, instance_type, instance_count),
        capture,
        log,
    )
    try:
        alarm_names = (
            put_alarms(
                cloudwatch,
                rollback_alarms(endpoint_name, old_variants, config_name, previous, alarms),
                log,
            )
            if alarms is not None
            else []
        )
        if not alarm_names and traffic.mode != "all-at-once":
            log(
                "no rollback alarms: each step bakes, but nothing sends the traffic back when "
                "the new models misbehave (add --rollback-alarms)"
            )
        if traffic.mode == "canary" and instance_count == 1:
            log(
                "with 1 instance per variant the canary is the whole new fleet: use "
                "--instance-count 2 or more for a canary smaller than all the traffic"
            )
        with aws_errors(f"updating endpoint {endpoint_name}"):
            sagemaker.update_endpoint(
                EndpointName=endpoint_name,
                EndpointConfigName=config_name,
                DeploymentConfig=traffic.deployment_config(alarm_names),
            )
    except BaseException:
        _roll_back(sagemaker, created, config_name, log, "the update failed")
        raise
    log(
        f"updating endpoint {endpoint_name} from {previous} to {config_name}: "
        f"{traffic.describe()}"
        + (f", rolled back if {len(alarm_names)} alarms fire" if alarm_names else "")
        + "; the old fleet keeps serving, and billing, until the update ends"
    )
    release = Release(
        endpoint_name=endpoint_name,
        endpoint_config_name=config_name,
        previous_config_name=previous,
        region=aws.region,
        status="Updating",
        traffic=traffic.describe(),
        alarms=alarm_names,
        models=models,
        model_data=model_data,
        data_capture=capture["DestinationS3Uri"] if capture else None,
    )
    if not wait:
        log(
            "not waiting; follow it with `aws sagemaker describe-endpoint --endpoint-name "
            f"{endpoint_name} --region {aws.region}`"
        )
        return release
    _wait_in_service(sagemaker, endpoint_name, wait_timeout_s, log)
    after = _describe_endpoint(aws, sagemaker, endpoint_name)
    if after.get("EndpointConfigName") == config_name:
        log(f"endpoint {endpoint_name} serves {config_name}; removing the old config")
        _remove_config(sagemaker, old_config, previous, log)
        return dataclasses.replace(release, status="InService")
    fired = firing(cloudwatch, alarm_names)
    reason = after.get("FailureReason")
    log(
        f"the update was rolled back: endpoint {endpoint_name} still serves {previous}"
        + (f"; alarms in ALARM: {', '.join(fired)}" if fired else "")
        + (f"; SageMaker: {one_line(reason)}" if reason else "")
    )
    _roll_back(sagemaker, created, config_name, log, "the new models serve nothing")
    return dataclasses.replace(release, status="RolledBack", firing=fired, reason=reason)


def find_endpoint(
    endpoint_name: str, region: str | None = None, *, session: Any = None
) -> dict | None:
    """DescribeEndpoint's answer, or None when there is no such endpoint."""
    check_name("endpoint", endpoint_name)
    aws = connect(region, session)
    return _find_endpoint(aws.client("sagemaker"), endpoint_name)


def delete_endpoint(
    endpoint_name: str,
    region: str | None = None,
    log: Log = print,
    *,
    session: Any = None,
) -> DeletedEndpoint:
    """Delete an endpoint, its endpoint config, the models of its variants and the rollback
    alarms of its updates.

    An endpoint bills per instance-hour until it is deleted; this stops that. An endpoint that
    does not exist is a CriticError; a config or model already gone is noted and skipped.
    """
    check_name("endpoint", endpoint_name)
    aws = connect(region, session)
    sagemaker = aws.client("sagemaker")
    endpoint = _describe_endpoint(aws, sagemaker, endpoint_name)
    config_name = endpoint.get("EndpointConfigName")
    config = (
        describe_or_none(
            sagemaker.describe_endpoint_config,
            f"looking up endpoint config {config_name}",
            EndpointConfigName=config_name,
        )
        if config_name
        else None
    )
    models: list[str] = []
    if config is None:
        log(f"endpoint config {config_name} is already gone; its models cannot be found from it")
    else:
        for variant in [
            *config.get("ProductionVariants", []),
            *config.get("ShadowProductionVariants", []),
        ]:
            name = variant.get("ModelName")
            if name and name not in models:
                models.append(name)

    _delete(sagemaker.delete_endpoint, "endpoint", endpoint_name, log, EndpointName=endpoint_name)
    if config is not None:
        _delete(
            sagemaker.delete_endpoint_config,
            "endpoint config",
            config_name,
            log,
            EndpointConfigName=config_name,
        )
    for model in models:
        _delete(sagemaker.delete_model, "model", model, log, ModelName=model)
    alarms = []
    if config is not None:
        variants = [v["VariantName"] for v in config.get("ProductionVariants", [])]
        alarms = delete_alarms(aws.client("cloudwatch"), endpoint_name, variants, log)
    return DeletedEndpoint(
        endpoint_name, config_name if config is not None else None, models, alarms
    )


# --- helpers ----------------------------------------------------------------------------------


def _check_variants(
    variants: Sequence[Variant | tuple[str, str | Path, float]], endpoint_name: str
) -> list[Variant]:
    if isinstance(variants, str | bytes) or not isinstance(variants, Sequence) or not variants:
        raise CriticError(
            "give at least one variant to deploy: (name, path to model.tar.gz, weight)"
        )
    if len(variants) > MAX_VARIANTS:
        raise CriticError(f"an endpoint holds at most {MAX_VARIANTS} variants, got {len(variants)}")
    specs: list[Variant] = []
    for item in variants:
        if isinstance(item, ModelPackageVariant):
            name, path, weight = item.name, None, item.weight
        elif isinstance(item, VariantSpec):
            name, path, weight = item.name, item.bundle, item.weight
        else:
            try:
                name, path, weight = item
            except (TypeError, ValueError):
                raise CriticError(
                    f"each variant is (name, path to model.tar.gz, weight), got {item!r}"
                ) from None
        check_name("variant", name)
        model_name = _model_name(endpoint_name, name)
        if len(model_name) > MAX_NAME_LENGTH:
            raise CriticError(
                f"the model of variant {name} would be named {model_name} (endpoint-variant), "
                f"{len(model_name)} characters; SageMaker allows {MAX_NAME_LENGTH}: shorten the "
                "endpoint or variant name"
            )
        # A spec may carry weight 0 (out of the draw, locally); an endpoint starts with each
        # variant taking some traffic.
        weight = check_weight(name, weight)
        specs.append(
            dataclasses.replace(item, weight=weight)
            if isinstance(item, ModelPackageVariant)
            else VariantSpec(name, Path(path), weight)
        )
    check_distinct_names(specs)
    for spec in specs:
        if isinstance(spec, VariantSpec):
            _check_model_archive(spec)
    return specs


def _check_models(
    variants: Sequence[Variant | tuple[str, str | Path, float]],
    endpoint_name: str,
    role_arn: str,
    bucket: str | None,
    instance_type: str,
    instance_count: int,
    image_uri: str | None,
) -> tuple[list[Variant], str | None]:
    """What deploy and update check before any AWS call: the variants and their archives, the
    role, the bucket (its bare name is returned), the instances and the image."""
    check_name("endpoint", endpoint_name)
    specs = _check_variants(variants, endpoint_name)
    check_role_arn(role_arn)
    checked_bucket = None if bucket is None else bucket_name(bucket)
    check_instance_type(instance_type)
    check_positive_int("instance_count", instance_count)
    if image_uri is not None:
        check_image_uri(image_uri)
    return specs, checked_bucket


def _same_variant_names(
    specs: list[Variant], old_variants: list[str], endpoint_name: str
) -> list[Variant]:
    """The new variants, named as the endpoint's: SageMaker moves traffic blue/green only
    between configs whose variants have the same names."""
    if len(specs) == 1 == len(old_variants) and specs[0].name != old_variants[0]:
        return [dataclasses.replace(specs[0], name=old_variants[0])]
    if sorted(spec.name for spec in specs) != sorted(old_variants):
        raise CriticError(
            f"endpoint {endpoint_name} has variants {', '.join(old_variants)}; an update gives "
            f"new models to the same variants (SageMaker's blue/green rule), got "
            f"{', '.join(spec.name for spec in specs)}: use --variant NAME=ARTIFACT for each"
        )
    return specs


def _remove_config(sagemaker: Any, config: dict, config_name: str, log: Log) -> None:
    """Delete an endpoint config no endpoint serves any more, and its models."""
    _delete(
        sagemaker.delete_endpoint_config,
        "endpoint config",
        config_name,
        log,
        EndpointConfigName=config_name,
    )
    for name in dict.fromkeys(v.get("ModelName") for v in config.get("ProductionVariants", [])):
        if name:
            _delete(sagemaker.delete_model, "model", name, log, ModelName=name)


def _refuse_existing_endpoint(aws: Aws, sagemaker: Any, endpoint_name: str) -> None:
    existing = _find_endpoint(sagemaker, endpoint_name)
    if existing is not None:
        raise CriticError(
            f"endpoint {endpoint_name} already exists in {aws.region} "
            f"({existing.get('EndpointStatus')}): release new models onto it with "
            f"`critic sagemaker update` (or deploy with --canary, --linear or "
            f"--rollback-alarms), shift its traffic with update-weights, or delete it first "
            f"({CLI_DELETE.format(name=endpoint_name)})"
        )


def _create_endpoint(
    sagemaker: Any,
    endpoint_name: str,
    *,
    models: list[dict],
    variants: list[dict],
    data_capture: dict | None,
    log: Log,
) -> dict:
    """Create the models (CreateModel parameters), an endpoint config of the production
    ``variants`` and the endpoint, all tagged with the endpoint's name. Returns CreateEndpoint's
    answer; on any failure, deletes what it had created and re-raises."""
    created_models = _create_config(
        sagemaker, endpoint_name, endpoint_name, models, variants, data_capture, log
    )
    try:
        with aws_errors(f"creating endpoint {endpoint_name}"):
            return sagemaker.create_endpoint(
                EndpointName=endpoint_name,
                EndpointConfigName=endpoint_name,
                Tags=_tags(endpoint_name),
            )
    except BaseException:
        # No endpoint exists yet, so nothing bills; leave no orphaned config or models behind
        # to collide with the next attempt.
        _roll_back(sagemaker, created_models, endpoint_name, log)
        raise


def _create_config(
    sagemaker: Any,
    endpoint_name: str,
    config_name: str,
    models: list[dict],
    variants: list[dict],
    data_capture: dict | None,
    log: Log,
) -> list[str]:
    """Create the models and an endpoint config of them; the models' names. On any failure,
    deletes what it had created and re-raises."""
    tags = _tags(endpoint_name)
    created_models: list[str] = []
    try:
        for model in models:
            with aws_errors(f"creating model {model['ModelName']}"):
                sagemaker.create_model(**model, Tags=tags)
            created_models.append(model["ModelName"])
            container = model["PrimaryContainer"]
            source = container.get("Image") or f"model package {container.get('ModelPackageName')}"
            log(f"created model {model['ModelName']} ({source})")
        extra = {"DataCaptureConfig": data_capture} if data_capture else {}
        with aws_errors(f"creating endpoint config {config_name}"):
            sagemaker.create_endpoint_config(
                EndpointConfigName=config_name, ProductionVariants=variants, Tags=tags, **extra
            )
        log(
            f"created endpoint config {config_name}"
            + (
                f" (capturing {data_capture['InitialSamplingPercentage']}% of calls to "
                f"{data_capture['DestinationS3Uri']})"
                if data_capture
                else ""
            )
        )
    except BaseException:
        _roll_back(sagemaker, created_models, None, log)
        raise
    return created_models


def _tags(endpoint_name: str) -> list[dict]:
    return [{"Key": TAG_KEY, "Value": endpoint_name}]


def _model_requests(
    specs: Sequence[Variant],
    models: Mapping[str, str],
    model_data: Mapping[str, str],
    role_arn: str,
    image: str | None,
    region: str,
) -> list[dict]:
    """CreateModel's parameters per variant: the one place a model from a model.tar.gz and one
    from a registry version differ."""

    def container(spec: Variant) -> dict:
        if isinstance(spec, ModelPackageVariant):
            return {"ModelPackageName": spec.model_package_arn}
        return {
            "Image": image,
            "Environment": model_environment(region),
            "ModelDataUrl": model_data[spec.name],
        }

    return [
        {
            "ModelName": models[spec.name],
            "ExecutionRoleArn": role_arn,
            "PrimaryContainer": container(spec),
        }
        for spec in specs
    ]


def _archives(specs: Sequence[Variant]) -> list[VariantSpec]:
    return [spec for spec in specs if isinstance(spec, VariantSpec)]


def _check_bucket_needed(specs: Sequence[Variant], bucket: str | None, capture: bool) -> None:
    if bucket is None and (_archives(specs) or capture):
        raise CriticError(
            "give a bucket (--bucket): "
            + ("the model.tar.gz files are uploaded to it" if _archives(specs) else "")
            + (" and " if _archives(specs) and capture else "")
            + ("the data capture is written to it" if capture else "")
        )


def _approved_packages(
    sagemaker: Any, specs: Sequence[Variant], region: str
) -> dict[str, ModelVersion]:
    """Each registry variant's version, which must be Approved (checked before anything is
    uploaded or created)."""
    return {
        spec.name: approved_package(sagemaker, spec.model_package_arn, region)
        for spec in specs
        if isinstance(spec, ModelPackageVariant)
    }


def _archive_image(
    image_uri: str | None, region: str, instance_type: str, specs: Sequence[Variant]
) -> str | None:
    """The image the model.tar.gz variants run in (None when every variant is a registry
    version, which names its own)."""
    if not _archives(specs):
        return None
    return image_uri or framework_image_uri("inference", region, instance_type)


def _upload_archives(
    aws: Aws,
    s3: Any,
    specs: Sequence[Variant],
    bucket: str | None,
    key_of: Callable[[VariantSpec], str],
    log: Log,
) -> dict[str, str]:
    """Upload every archive variant's model.tar.gz; the S3 URI of each, by variant."""
    archives = _archives(specs)
    if not archives:
        return {}
    assert bucket is not None  # _check_bucket_needed
    check_bucket(aws, s3, bucket)
    model_data: dict[str, str] = {}
    for spec in archives:
        key = key_of(spec)
        log(f"uploading {spec.bundle} ({_megabytes(spec.bundle)}) to s3://{bucket}/{key}")
        model_data[spec.name] = upload_file(s3, spec.bundle, bucket, key)
    return model_data


def _variant_requests(
    specs: Sequence[Variant],
    models: Mapping[str, str],
    instance_type: str,
    instance_count: int,
) -> list[dict]:
    return [
        {
            "VariantName": spec.name,
            "ModelName": models[spec.name],
            "InitialInstanceCount": instance_count,
            "InstanceType": instance_type,
            "InitialVariantWeight": spec.weight,
        }
        for spec in specs
    ]


def _check_model_archive(spec: VariantSpec) -> None:
    check_model_archive(spec.bundle, f"variant {spec.name}")


def _check_autoscaling(limits: ScalingLimits | None, instance_count: int, wait: bool) -> None:
    if limits is None:
        return
    if not isinstance(limits, ScalingLimits):
        raise CriticError(f"autoscaling must be ScalingLimits, got {limits!r}")
    if not wait:
        raise CriticError(
            "autoscaling is set once the endpoint is InService: deploy with wait (or set it "
            "later with critic sagemaker autoscale)"
        )
    if not limits.min_instances <= instance_count <= limits.max_instances:
        raise CriticError(
            f"the instance count ({instance_count}) must lie within the autoscaling limits "
            f"({limits.min_instances}-{limits.max_instances})"
        )


def _check_timeout(wait_timeout_s: float) -> None:
    if not isinstance(wait_timeout_s, int | float) or not wait_timeout_s > 0:
        raise CriticError(f"wait_timeout_s must be a positive number, got {wait_timeout_s!r}")


def _model_name(endpoint_name: str, variant: str) -> str:
    return f"{endpoint_name}-{variant}"


def _current_weights(endpoint: dict) -> dict[str, float]:
    """Each variant's weight as DescribeEndpoint reports it (the desired one while it moves)."""
    return {
        variant["VariantName"]: float(variant.get("CurrentWeight", variant.get("DesiredWeight", 0)))
        for variant in endpoint.get("ProductionVariants", [])
    }


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"


def _shares(weights: Mapping[str, float]) -> str:
    total = sum(weights.values())
    return ", ".join(
        f"{name} {100 * weight / total:.0f}%" if total else f"{name} 0%"
        for name, weight in weights.items()
    )


def _find_endpoint(sagemaker: Any, endpoint_name: str) -> dict | None:
    """DescribeEndpoint's answer, or None when there is no such endpoint."""
    return describe_or_none(
        sagemaker.describe_endpoint,
        f"looking up endpoint {endpoint_name}",
        EndpointName=endpoint_name,
    )


def _describe_endpoint(aws: Aws, sagemaker: Any, endpoint_name: str) -> dict:
    endpoint = _find_endpoint(sagemaker, endpoint_name)
    if endpoint is None:
        raise CriticError(f"there is no endpoint named {endpoint_name} in region {aws.region}")
    return endpoint


def _wait_or_say_how(
    sagemaker: Any, endpoint_name: str, region: str, wait: bool, timeout_s: float, log: Log
) -> str:
    """The endpoint's status once waited for (or "Creating"); then how to use and delete it."""
    status = "Creating"
    if wait:
        status = _wait_in_service(sagemaker, endpoint_name, timeout_s, log)
        log(f"endpoint {endpoint_name} is {status}")
    else:
        log(
            "not waiting; to wait: aws sagemaker wait endpoint-in-service "
            f"--endpoint-name {endpoint_name} --region {region}"
        )
    for line in invocation_hints(endpoint_name, region):
        log(line)
    return status


def _wait_in_service(sagemaker: Any, endpoint_name: str, timeout_s: float, log: Log) -> str:
    """Wait with boto3's ``endpoint_in_service`` waiter, at most ``timeout_s``."""

    def failed(status: str | None, reason: str | None, error: Exception) -> str:
        if status == "Failed":
            return (
                f"endpoint {endpoint_name} failed: {reason or 'no reason given'}; the "
                f"container's logs are in CloudWatch log group "
                f"/aws/sagemaker/Endpoints/{endpoint_name}; remove what is left with "
                f"{CLI_DELETE.format(name=endpoint_name)}"
            )
        if status is None:
            return f"waiting for endpoint {endpoint_name} failed: {reason or error}"
        return (
            f"endpoint {endpoint_name} is still {status} after {_duration(timeout_s)} "
            "and is billed while it runs: check it with `aws sagemaker describe-endpoint "
            f"--endpoint-name {endpoint_name}`, or delete it with "
            f"{CLI_DELETE.format(name=endpoint_name)}"
        )

    wait_until(
        sagemaker,
        "endpoint_in_service",
        f"endpoint {endpoint_name}",
        delay_s=WAIT_DELAY_S,
        attempts=max(1, math.ceil(timeout_s / WAIT_DELAY_S)),
        status_key="EndpointStatus",
        failed=failed,
        stopped_waiting=(
            f"stopped waiting; endpoint {endpoint_name} carries on starting and is billed "
            f"until deleted: {CLI_DELETE.format(name=endpoint_name)}"
        ),
        log=log,
        EndpointName=endpoint_name,
    )
    return "InService"


def _roll_back(
    sagemaker: Any,
    models: list[str],
    config_name: str | None,
    log: Log,
    why: str = "deploy failed",
) -> None:
    """Best effort: the error that brought us here is the one worth reporting."""
    removed = []
    if config_name is not None:
        with contextlib.suppress(Exception):
            sagemaker.delete_endpoint_config(EndpointConfigName=config_name)
            removed.append(f"endpoint config {config_name}")
    for model in models:
        with contextlib.suppress(Exception):
            sagemaker.delete_model(ModelName=model)
            removed.append(f"model {model}")
    if removed:
        log(f"{why}; removed what it had created: {', '.join(removed)}")


def _delete(call: Any, kind: str, name: str, log: Log, **params: Any) -> None:
    from botocore.exceptions import ClientError

    with aws_errors(f"deleting {kind} {name}"):
        try:
            call(**params)
        except ClientError as error:
            if not is_not_found(error):
                raise
            log(f"{kind} {name} was already gone")
            return
    log(f"deleted {kind} {name}")
