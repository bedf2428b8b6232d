"""Run ``critic transform``'s job on SageMaker: a Batch Transform job over S3.

The job runs on a model ``deploy`` made (``ENDPOINT-VARIANT``), named directly or through its
endpoint. SageMaker splits every input object into lines (``SplitType=Line``), sends them to
the model's container -- many lines a request (``MultiRecord``) for JSON lines and CSV, one a
request for plain text, whose body is always one review -- and writes one answer line per
input line to ``OUTPUT/<input name>.out``, only once that object is done:

    s3://BUCKET/in/reviews.jsonl   ->   s3://BUCKET/out/reviews.jsonl.out

A CSV input is one quoted review per line, without a header (SageMaker sends every line).
With ``join_input`` each JSON line comes back with its answer under ``SageMakerOutput``
(``DataProcessing.JoinSource=Input``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from critic.errors import CriticError
from critic.sagemaker.aws import aws_errors, connect, describe_or_none, wait_until
from critic.sagemaker.checks import (
    check_instance_type,
    check_name,
    check_positive_int,
    parse_s3_uri,
)
from critic.serving.codec import CSV, JSON_LINES, MAX_BODY_BYTES, TEXT, media_type

Log = Callable[[str], None]

CONTENT_TYPES = (JSON_LINES, CSV, TEXT)
WAIT_DELAY_S = 30
TAG_KEY = "critic:transform-job"
INSTANCE_TYPE = "ml.m5.large"
MAX_PAYLOAD_MB = MAX_BODY_BYTES // (1024 * 1024)
# A MultiRecord request holds as many lines as fit in MaxPayloadInMB; the container's handler
# must take them all in one request (each line is at least a character and its line break).
MAX_REVIEWS_PER_REQUEST = MAX_BODY_BYTES // 2


@dataclass(frozen=True)
class TransformJob:
    """What :func:`run_transform_job` started."""

    name: str
    arn: str
    region: str
    model_name: str
    status: str
    """``InProgress`` when not waiting; else ``Completed`` or ``Stopped``."""
    input_uri: str
    output_uri: str
    """Where the answers go: ``<output_uri>/<input object name>.out`` per input object."""


def run_transform_job(
    model_or_endpoint: str,
    input_uri: str,
    output_uri: str,
    *,
    content_type: str = JSON_LINES,
    join_input: bool = False,
    variant: str | None = None,
    instance_type: str = INSTANCE_TYPE,
    instance_count: int = 1,
    job_name: str | None = None,
    region: str | None = None,
    wait: bool = True,
    wait_timeout_s: float = 24 * 3600.0,
    log: Log = print,
    session: Any = None,
) -> TransformJob:
    """Create a SageMaker Batch Transform job over every object under ``input_uri`` with the
    model ``model_or_endpoint`` names (a model, or an endpoint whose variant's model to use:
    ``variant`` picks one when it has several), writing to ``output_uri``.

    Everything is checked before the job is created. With ``wait``, returns once the job has
    ended; a failed job is a CriticError with SageMaker's reason and where its logs are.
    """
    check_name("model or endpoint", model_or_endpoint)
    for uri in (input_uri, output_uri):
        parse_s3_uri(uri)
    kind = media_type(content_type)
    if kind not in CONTENT_TYPES:
        raise CriticError(f"a transform job reads {', '.join(CONTENT_TYPES)}, not {content_type!r}")
    if join_input and kind != JSON_LINES:
        raise CriticError(
            "joining the input to its answer needs JSON lines input: SageMaker joins a CSV "
            "row only to a CSV answer, and the model answers in JSON lines"
        )
    check_instance_type(instance_type)
    check_positive_int("instance_count", instance_count)
    name = job_name or f"critic-transform-{time.strftime('%Y%m%d-%H%M%S')}"
    check_name("transform job", name)

    aws = connect(region, session)
    sagemaker = aws.client("sagemaker")
    model = _model_of(sagemaker, model_or_endpoint, variant, aws.region)
    existing = describe_or_none(
        sagemaker.describe_transform_job, f"looking up transform job {name}", TransformJobName=name
    )
    if existing is not None:
        raise CriticError(
            f"transform job {name} already exists in {aws.region} "
            f"({existing.get('TransformJobStatus')}); job names are unique for good: pick another"
        )
    request = transform_job_request(
        name, model, input_uri, output_uri, kind, join_input, instance_type, instance_count
    )
    with aws_errors(f"creating transform job {name}"):
        created = sagemaker.create_transform_job(**request)
    log(
        f"started transform job {name} in {aws.region}: model {model}, {instance_count} x "
        f"{instance_type}, {request['BatchStrategy']} requests of {kind}"
    )
    log(f"the answers will be at {output_uri.rstrip('/')}/<input name>.out")
    status = "InProgress"
    if wait:
        status = _wait_until_done(sagemaker, name, aws.region, wait_timeout_s, log)
    return TransformJob(
        name, created["TransformJobArn"], aws.region, model, status, input_uri, output_uri
    )


def transform_job_request(
    name: str,
    model: str,
    input_uri: str,
    output_uri: str,
    content_type: str,
    join_input: bool,
    instance_type: str,
    instance_count: int,
) -> dict[str, Any]:
    """CreateTransformJob's request: lines in, a JSON lines answer per line out."""
    # A plain-text body is one review, so plain text goes a line a request.
    multi = content_type != TEXT
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model,
        "BatchStrategy": "MultiRecord" if multi else "SingleRecord",
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "Environment": {"CRITIC_MAX_REVIEWS": str(MAX_REVIEWS_PER_REQUEST)},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": content_type,
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": output_uri,
            "Accept": JSON_LINES,
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
        "Tags": [{"Key": TAG_KEY, "Value": name}],
    }
    if join_input:
        request["DataProcessing"] = {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$"}
    return request


def _model_of(sagemaker: Any, name: str, variant: str | None, region: str) -> str:
    """The model called ``name``, else the model of endpoint ``name``'s (only, or chosen)
    variant."""
    model = describe_or_none(sagemaker.describe_model, f"looking up model {name}", ModelName=name)
    if model is not None:
        if variant is not None:
            raise CriticError(f"{name} is a model: --variant applies to an endpoint's name")
        return name
    endpoint = describe_or_none(
        sagemaker.describe_endpoint, f"looking up endpoint {name}", EndpointName=name
    )
    if endpoint is None:
        raise CriticError(f"there is no model or endpoint named {name} in region {region}")
    config_name = endpoint.get("EndpointConfigName")
    config = describe_or_none(
        sagemaker.describe_endpoint_config,
        f"looking up endpoint config {config_name}",
        EndpointConfigName=config_name,
    )
    models = {
        v["VariantName"]: v["ModelName"] for v in (config or {}).get("ProductionVariants", [])
    }
    if variant is not None:
        if variant not in models:
            raise CriticError(
                f"endpoint {name} has no variant {variant}; its variants: "
                f"{', '.join(sorted(models)) or 'none'}"
            )
        return models[variant]
    if len(models) != 1:
        raise CriticError(
            f"endpoint {name} has {len(models)} variants ({', '.join(sorted(models)) or 'none'}): "
            "name the one whose model to use with --variant"
        )
    return next(iter(models.values()))


def _wait_until_done(sagemaker: Any, name: str, region: str, timeout_s: float, log: Log) -> str:
    """Wait with boto3's ``transform_job_completed_or_stopped`` waiter."""
    logs = (
        f"aws logs tail /aws/sagemaker/TransformJobs --log-stream-name-prefix {name} "
        f"--region {region}"
    )
    wait_until(
        sagemaker,
        "transform_job_completed_or_stopped",
        f"transform job {name}",
        delay_s=WAIT_DELAY_S,
        attempts=max(1, math.ceil(timeout_s / WAIT_DELAY_S)),
        status_key="TransformJobStatus",
        failed=lambda status, reason, error: (
            f"transform job {name} is {status or 'unknown'}: {reason or error}; its logs: {logs}"
        ),
        stopped_waiting=(
            f"stopped waiting; transform job {name} carries on (stop it with aws sagemaker "
            f"stop-transform-job --transform-job-name {name} --region {region})"
        ),
        log=log,
        TransformJobName=name,
    )
    with aws_errors(f"describing transform job {name}"):
        answer = sagemaker.describe_transform_job(TransformJobName=name)
    status = answer.get("TransformJobStatus", "unknown")
    log(f"transform job {name} is {status}")
    return status
