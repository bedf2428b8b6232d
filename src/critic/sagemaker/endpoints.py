"""Deploy model.tar.gz files as one SageMaker endpoint, shift its traffic, and delete it.

One endpoint serves one or more production variants that share its traffic by weight (A/B
testing: a champion and a challenger). For an endpoint NAME, :func:`deploy` makes

    s3://BUCKET/critic/NAME/VARIANT/model.tar.gz   each variant's model data
    model NAME-VARIANT                             the PyTorch inference image and that data
    endpoint config NAME                           the variants, instance type and weights
    endpoint NAME                                  billed per instance-hour until deleted

and :func:`delete_endpoint` removes the last three. The S3 objects stay: they cost little and
are what a second deploy would upload again.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.errors import CriticError
from critic.fileio import check_members
from critic.sagemaker.autoscaling import ScalingLimits, VariantScaling, set_autoscaling
from critic.sagemaker.aws import (
    Aws,
    aws_errors,
    check_bucket,
    connect,
    describe_or_none,
    is_not_found,
    upload_file,
    wait_until,
)
from critic.sagemaker.checks import (
    MAX_NAME_LENGTH,
    bucket_name,
    check_instance_type,
    check_name,
    check_positive_int,
    check_role_arn,
    check_weight,
)
from critic.sagemaker.images import check_image_uri, framework_image_uri
from critic.serving.variants import VariantSpec, check_distinct_names

Log = Callable[[str], None]

# What deploy prints so that the endpoint gets used, and deleted.
CLI_INVOKE = 'critic sagemaker invoke {name} "a review"'
CLI_DELETE = "critic sagemaker delete-endpoint {name}"

# Where SageMaker's PyTorch inference container finds the handler inside model.tar.gz.
INFERENCE_PROGRAM = "inference.py"
INFERENCE_CODE_DIR = "/opt/ml/model/code"
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
    """Variant name -> S3 URI of its model.tar.gz."""
    weights: dict[str, float] = field(default_factory=dict)
    autoscaling: list[VariantScaling] = field(default_factory=list)
    """Each variant's autoscaling, when deploy was given limits."""


@dataclass(frozen=True)
class DeletedEndpoint:
    """What :func:`delete_endpoint` removed."""

    endpoint_name: str
    endpoint_config_name: str | None
    models: list[str] = field(default_factory=list)


def model_environment(region: str) -> dict[str, str]:
    """The container environment of every critic model: run code/inference.py from the model."""
    return {
        "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
        "SAGEMAKER_SUBMIT_DIRECTORY": INFERENCE_CODE_DIR,
        "SAGEMAKER_REGION": region,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",  # logging.INFO
    }


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


def packaged_variants(specs: Sequence[VariantSpec], scratch: Path) -> list[VariantSpec]:
    """The variants with every bundle folder packaged into ``scratch`` as the model.tar.gz
    SageMaker's serving container loads (an archive already packaged is taken as it is)."""
    from critic.inference.bundle import package_bundle

    packaged = []
    for spec in specs:
        path = spec.bundle
        if path.is_dir():
            path = package_bundle(path, Path(scratch) / f"{spec.name}.tar.gz")
        packaged.append(VariantSpec(spec.name, path, spec.weight))
    return packaged


def deploy(
    variants: Sequence[VariantSpec | tuple[str, str | Path, float]],
    endpoint_name: str,
    role_arn: str,
    bucket: str,
    instance_type: str = INSTANCE_TYPE,
    instance_count: int = 1,
    image_uri: str | None = None,
    region: str | None = None,
    wait: bool = True,
    log: Log = print,
    *,
    autoscaling: ScalingLimits | None = None,
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

    Every input is checked before anything is uploaded or created. If creating a model or the
    endpoint config fails, what this call created is deleted again. With ``wait``, returns once
    the endpoint is InService (at most ``wait_timeout_s``); a failed endpoint is a CriticError
    with SageMaker's reason. ``session`` is an optional ``boto3.session.Session`` (a named
    profile, assumed-role credentials); the default reads the environment.

    ``autoscaling`` registers every variant with Application Auto Scaling once the endpoint is
    InService (so it needs ``wait``), between its limits, which must hold ``instance_count``.
    """
    check_name("endpoint", endpoint_name)
    specs = _check_variants(variants, endpoint_name)
    check_role_arn(role_arn)
    bucket = bucket_name(bucket)
    check_instance_type(instance_type)
    check_positive_int("instance_count", instance_count)
    if image_uri is not None:
        check_image_uri(image_uri)
    _check_timeout(wait_timeout_s)
    _check_autoscaling(autoscaling, instance_count, wait)

    aws = connect(region, session)
    image = image_uri or framework_image_uri("inference", aws.region, instance_type)
    s3, sagemaker = aws.client("s3"), aws.client("sagemaker")
    _refuse_existing_endpoint(aws, sagemaker, endpoint_name)
    check_bucket(aws, s3, bucket)

    model_data: dict[str, str] = {}
    for spec in specs:
        key = f"critic/{endpoint_name}/{spec.name}/model.tar.gz"
        log(f"uploading {spec.bundle} ({_megabytes(spec.bundle)}) to s3://{bucket}/{key}")
        model_data[spec.name] = upload_file(s3, spec.bundle, bucket, key)
    models = {spec.name: _model_name(endpoint_name, spec.name) for spec in specs}

    container = {"Image": image, "Environment": model_environment(aws.region)}
    created = _create_endpoint(
        sagemaker,
        endpoint_name,
        models=[
            {
                "ModelName": models[spec.name],
                "ExecutionRoleArn": role_arn,
                "PrimaryContainer": {**container, "ModelDataUrl": model_data[spec.name]},
            }
            for spec in specs
        ],
        variants=[
            {
                "VariantName": spec.name,
                "ModelName": models[spec.name],
                "InitialInstanceCount": instance_count,
                "InstanceType": instance_type,
                "InitialVariantWeight": spec.weight,
            }
            for spec in specs
        ],
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
        image_uri=image,
        models=models,
        model_data=model_data,
        weights=weights,
        autoscaling=scaling,
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


def delete_endpoint(
    endpoint_name: str,
    region: str | None = None,
    log: Log = print,
    *,
    session: Any = None,
) -> DeletedEndpoint:
    """Delete an endpoint, its endpoint config and the models of its variants.

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
    return DeletedEndpoint(endpoint_name, config_name if config is not None else None, models)


# --- helpers ----------------------------------------------------------------------------------


def _check_variants(
    variants: Sequence[VariantSpec | tuple[str, str | Path, float]], endpoint_name: str
) -> list[VariantSpec]:
    if isinstance(variants, str | bytes) or not isinstance(variants, Sequence) or not variants:
        raise CriticError(
            "give at least one variant to deploy: (name, path to model.tar.gz, weight)"
        )
    if len(variants) > MAX_VARIANTS:
        raise CriticError(f"an endpoint holds at most {MAX_VARIANTS} variants, got {len(variants)}")
    specs = []
    for item in variants:
        if isinstance(item, VariantSpec):
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
        specs.append(VariantSpec(name, Path(path), check_weight(name, weight)))
    check_distinct_names(specs)
    for spec in specs:
        _check_model_archive(spec)
    return specs


def _refuse_existing_endpoint(aws: Aws, sagemaker: Any, endpoint_name: str) -> None:
    existing = _find_endpoint(sagemaker, endpoint_name)
    if existing is not None:
        raise CriticError(
            f"endpoint {endpoint_name} already exists in {aws.region} "
            f"({existing.get('EndpointStatus')}): shift its traffic with update_weights, or "
            f"delete it first ({CLI_DELETE.format(name=endpoint_name)})"
        )


def _create_endpoint(
    sagemaker: Any, endpoint_name: str, *, models: list[dict], variants: list[dict], log: Log
) -> dict:
    """Create the models (CreateModel parameters), an endpoint config of the production
    ``variants`` and the endpoint, all tagged with the endpoint's name. Returns CreateEndpoint's
    answer; on any failure, deletes what it had created and re-raises."""
    tags = [{"Key": TAG_KEY, "Value": endpoint_name}]
    created_models: list[str] = []
    config_created = False
    try:
        for model in models:
            with aws_errors(f"creating model {model['ModelName']}"):
                sagemaker.create_model(**model, Tags=tags)
            created_models.append(model["ModelName"])
            log(f"created model {model['ModelName']} ({model['PrimaryContainer']['Image']})")
        with aws_errors(f"creating endpoint config {endpoint_name}"):
            sagemaker.create_endpoint_config(
                EndpointConfigName=endpoint_name,
                ProductionVariants=variants,
                Tags=tags,
            )
        config_created = True
        log(f"created endpoint config {endpoint_name}")
        with aws_errors(f"creating endpoint {endpoint_name}"):
            return sagemaker.create_endpoint(
                EndpointName=endpoint_name, EndpointConfigName=endpoint_name, Tags=tags
            )
    except BaseException:
        # No endpoint exists yet, so nothing bills; leave no orphaned config or models behind
        # to collide with the next attempt.
        _roll_back(sagemaker, created_models, endpoint_name if config_created else None, log)
        raise


def _check_model_archive(spec: VariantSpec) -> None:
    """The file exists, is a .tar.gz, and holds the handler SageMaker's container will run."""
    if not spec.bundle.exists():
        raise CriticError(f"variant {spec.name}: {spec.bundle} does not exist")
    if not spec.bundle.is_file():
        raise CriticError(f"variant {spec.name}: {spec.bundle} is not a file")
    try:
        with tarfile.open(spec.bundle, "r:gz") as archive:
            # SageMaker unpacks it on the instance: nothing in it may land outside model_dir.
            check_members(archive, spec.bundle)
            names = {name.removeprefix("./") for name in archive.getnames()}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise CriticError(
            f"variant {spec.name}: {spec.bundle} is not a gzip-compressed tar file "
            f"(model.tar.gz): {error}"
        ) from None
    program = f"code/{INFERENCE_PROGRAM}"
    if program not in names:
        raise CriticError(
            f"variant {spec.name}: {spec.bundle} has no {program}, which SageMaker's "
            "PyTorch container runs; make the archive with critic's packaging "
            "(critic.inference.bundle.package_bundle)"
        )


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


def _roll_back(sagemaker: Any, models: list[str], config_name: str | None, log: Log) -> None:
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
        log(f"deploy failed; removed what it had created: {', '.join(removed)}")


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
