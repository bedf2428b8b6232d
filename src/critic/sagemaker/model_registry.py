"""SageMaker Model Registry: versions of a model in a model package group, approved before
they are deployed.

:func:`register_model` uploads a model.tar.gz and makes it the next version of a group
(created when missing), with what the bundle recorded about itself:

    s3://BUCKET/critic/model-packages/GROUP/SHA/model.tar.gz      the model data
    s3://BUCKET/critic/model-packages/GROUP/SHA/model-quality.json its test figures, in Model
                                                                  Monitor's statistics shape
    model package GROUP/N   the same container deploy creates (the PyTorch inference image,
                            that model data, code/inference.py), ModelMetrics pointing at the
                            statistics, and the figures as CustomerMetadataProperties, which the
                            SageMaker console shows beside each version

``SHA`` is the archive's SHA-256 (16 hex digits): registering the same archive twice uploads
the same objects. A version starts ``PendingManualApproval`` (or ``Approved``);
:func:`approve_model` changes that, and :func:`critic.sagemaker.deploy` serves a
:class:`ModelPackageVariant` only once its version is Approved, which is the registry's point:
someone looked at the figures before the model took traffic.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.errors import CriticError
from critic.fileio import sha256_file
from critic.sagemaker.aws import aws_errors, check_bucket, connect, upload_file
from critic.sagemaker.checks import (
    bucket_name,
    check_instance_type,
    check_model_archive,
    check_name,
)
from critic.sagemaker.images import check_image_uri, framework_image_uri, model_environment
from critic.serving.codec import REQUEST_TYPES, RESPONSE_TYPES
from critic.serving.variants import check_weight

Log = Callable[[str], None]

APPROVED = "Approved"
PENDING = "PendingManualApproval"
REJECTED = "Rejected"
APPROVAL_STATUSES = (PENDING, APPROVED, REJECTED)
INSTANCE_TYPE = "ml.m5.large"
CLI_APPROVE = "critic sagemaker approve {arn}"
# SageMaker's own pattern (the service model's ModelPackageArn), narrowed to what a version of
# a group or an unversioned package is named.
_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]{9,16}):(?P<account>\d{12}):"
    r"model-package/(?P<name>[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62})(/(?P<version>\d+))?$"
)
# The bundle's figures worth seeing beside a version, in this order (metrics.json's names).
FIGURES = (
    "test_accuracy",
    "test_loss",
    "test_ece_after",
    "test_ece_before",
    "val_accuracy",
    "val_loss",
    "val_ece_after",
    "test_reviews",
    "train_reviews",
    "epochs",
    "train_seconds",
    "temperature",
)
# CustomerMetadataProperties values: SageMaker's pattern, 1-256 characters.
_METADATA_UNSAFE = re.compile(r"[^\w\s.:/=+\-@]")


@dataclass(frozen=True)
class ModelPackageVariant:
    """A production variant served from a version in the registry (a model package ARN),
    for :func:`critic.sagemaker.deploy` beside or instead of model.tar.gz files."""

    name: str
    model_package_arn: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        check_name("variant", self.name)
        check_model_package_arn(self.model_package_arn)
        object.__setattr__(self, "weight", check_weight(self.name, self.weight))


@dataclass(frozen=True)
class ModelVersion:
    """One version of a model package group, as DescribeModelPackage tells it."""

    arn: str
    group: str | None
    version: int | None
    approval: str
    created: str
    """ISO 8601, UTC."""
    figures: dict[str, str] = field(default_factory=dict)
    """The bundle's recorded figures (CustomerMetadataProperties)."""
    image: str | None = None
    model_data: str | None = None
    statistics: str | None = None
    """S3 URI of the model-quality statistics (ModelMetrics)."""
    description: str | None = None

    def to_dict(self) -> dict:
        answer = {
            "arn": self.arn,
            "group": self.group,
            "version": self.version,
            "approval": self.approval,
            "created": self.created,
            "figures": self.figures,
        }
        for key, value in (
            ("image", self.image),
            ("model_data", self.model_data),
            ("statistics", self.statistics),
            ("description", self.description),
        ):
            if value:
                answer[key] = value
        return answer


def check_model_package_arn(arn: object) -> str:
    """A model package's ARN, ``arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/N``."""
    if not isinstance(arn, str) or not _ARN.match(arn):
        raise CriticError(
            f"{arn!r} is not a SageMaker model package ARN "
            "(arn:aws:sagemaker:us-east-1:123456789012:model-package/GROUP/VERSION); "
            "critic sagemaker versions GROUP lists them"
        )
    return arn


def check_approval(status: object, allowed: tuple[str, ...] = APPROVAL_STATUSES) -> str:
    if status not in allowed:
        raise CriticError(f"approval must be one of {', '.join(allowed)}, got {status!r}")
    return status  # type: ignore[return-value]


def archive_metrics(path: Path) -> dict:
    """The metrics a bundle recorded (metrics.json), from a bundle folder or a model.tar.gz
    critic packaged (its files at the top). JSON only: nothing is unpacked or run."""
    path = Path(path)
    if path.is_dir():
        from critic.inference.bundle import verify_bundle

        verify_bundle(path)  # a damaged bundle is refused before it is registered
        text = (path / "metrics.json").read_bytes()
    else:
        check_model_archive(path, "the model")
        with tarfile.open(path, "r:gz") as archive:
            member = next(
                (m for m in archive.getmembers() if m.name.removeprefix("./") == "metrics.json"),
                None,
            )
            opened = archive.extractfile(member) if member is not None and member.isfile() else None
            if opened is None:
                raise CriticError(
                    f"{path} holds no metrics.json: package a trained bundle with critic package"
                )
            text = opened.read()
    try:
        metrics = json.loads(text)
    except ValueError as error:
        raise CriticError(f"{path}: metrics.json is not valid JSON ({error})") from None
    if not isinstance(metrics, dict):
        raise CriticError(f"{path}: metrics.json is not a JSON object")
    return metrics


def metadata_properties(metrics: dict) -> dict[str, str]:
    """The figures worth seeing beside a version, as CustomerMetadataProperties (text)."""
    properties = {"critic:model": _metadata_value(metrics.get("model", "unknown"))}
    for name in FIGURES:
        value = metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            continue
        properties[name] = str(value) if isinstance(value, int) else f"{value:.6g}"
    return properties


def model_quality_statistics(metrics: dict) -> dict:
    """The test figures in the shape of Model Monitor's model-quality statistics (binary
    classification), which SageMaker Studio shows under a version's model quality; critic's
    own figures follow under ``critic``."""
    statistics: dict[str, Any] = {"version": 0.0}
    reviews = metrics.get("test_reviews")
    if isinstance(reviews, int) and reviews > 0:
        statistics["dataset"] = {"item_count": reviews}
    accuracy = metrics.get("test_accuracy")
    classification: dict[str, Any] = {}
    if isinstance(accuracy, int | float) and math.isfinite(accuracy):
        classification["accuracy"] = {"value": accuracy}
        if isinstance(reviews, int) and reviews > 0:
            classification["accuracy"]["standard_deviation"] = math.sqrt(
                max(accuracy * (1 - accuracy), 0.0) / reviews
            )
    statistics["binary_classification_metrics"] = classification
    statistics["critic"] = {
        name: metrics[name]
        for name in FIGURES
        if isinstance(metrics.get(name), int | float) and not isinstance(metrics.get(name), bool)
    }
    return statistics


def register_model(
    artifact: Path,
    group: str,
    bucket: str,
    *,
    approval: str = PENDING,
    description: str | None = None,
    metrics: dict | None = None,
    instance_type: str = INSTANCE_TYPE,
    image_uri: str | None = None,
    region: str | None = None,
    log: Log = print,
    session: Any = None,
) -> ModelVersion:
    """Make ``artifact`` (a model.tar.gz critic packaged) the next version of model package
    group ``group``, created when missing, with ``approval`` PendingManualApproval or Approved.

    The container is the one :func:`critic.sagemaker.deploy` creates for a model.tar.gz: the
    SageMaker PyTorch inference image for ``instance_type`` (or ``image_uri``), the uploaded
    model data, and the environment that runs code/inference.py. ``metrics`` defaults to the
    archive's own metrics.json. Everything is checked before anything is uploaded.
    """
    check_name("model package group", group)
    checked_bucket = bucket_name(bucket)
    check_approval(approval, (PENDING, APPROVED))
    check_instance_type(instance_type)
    if image_uri is not None:
        check_image_uri(image_uri)
    if description is not None and (not isinstance(description, str) or len(description) > 1024):
        raise CriticError("the description must be text of at most 1,024 characters")
    archive = Path(artifact)
    check_model_archive(archive, "the model")
    figures = archive_metrics(archive) if metrics is None else metrics

    aws = connect(region, session)
    s3, sagemaker = aws.client("s3"), aws.client("sagemaker")
    image = image_uri or framework_image_uri("inference", aws.region, instance_type)
    check_bucket(aws, s3, checked_bucket)
    _ensure_group(sagemaker, group, log)

    prefix = f"critic/model-packages/{group}/{sha256_file(archive)[:16]}"
    log(f"uploading {archive} to s3://{checked_bucket}/{prefix}/model.tar.gz")
    model_data = upload_file(s3, archive, checked_bucket, f"{prefix}/model.tar.gz")
    statistics_key = f"{prefix}/model-quality.json"
    body = json.dumps(model_quality_statistics(figures), indent=2).encode()
    with aws_errors(f"uploading s3://{checked_bucket}/{statistics_key}"):
        s3.put_object(
            Bucket=checked_bucket, Key=statistics_key, Body=body, ContentType="application/json"
        )
    statistics = f"s3://{checked_bucket}/{statistics_key}"

    request = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": description or _describe_figures(figures),
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": image,
                    "ModelDataUrl": model_data,
                    "Environment": model_environment(aws.region),
                }
            ],
            "SupportedContentTypes": list(REQUEST_TYPES),
            "SupportedResponseMIMETypes": list(RESPONSE_TYPES),
        },
        "ModelApprovalStatus": approval,
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": statistics,
                    "ContentDigest": "sha256:" + hashlib.sha256(body).hexdigest(),
                }
            }
        },
        "CustomerMetadataProperties": metadata_properties(figures),
    }
    with aws_errors(f"registering {archive} in model package group {group}"):
        arn = sagemaker.create_model_package(**request)["ModelPackageArn"]
    version = _describe(sagemaker, arn, aws.region)
    log(
        f"registered {arn} ({approval})"
        + ("" if approval == APPROVED else f"; approve it with {CLI_APPROVE.format(arn=arn)}")
    )
    return version


def approve_model(
    arn: str,
    *,
    status: str = APPROVED,
    note: str | None = None,
    region: str | None = None,
    log: Log = print,
    session: Any = None,
) -> ModelVersion:
    """Set a version's approval (Approved by default; Rejected or PendingManualApproval too),
    with an optional note (ApprovalDescription). Returns the version as it then is."""
    check_model_package_arn(arn)
    check_approval(status)
    aws = connect(region, session)
    sagemaker = aws.client("sagemaker")
    before = _describe(sagemaker, arn, aws.region)
    extra = {"ApprovalDescription": note} if note else {}
    with aws_errors(f"setting the approval of {arn}"):
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status, **extra)
    log(f"{arn}: {before.approval} -> {status}")
    return _describe(sagemaker, arn, aws.region)


def describe_model_version(
    arn: str, region: str | None = None, *, session: Any = None
) -> ModelVersion:
    """A version of the registry; a CriticError when there is none by that ARN."""
    check_model_package_arn(arn)
    aws = connect(region, session)
    return _describe(aws.client("sagemaker"), arn, aws.region)


def list_model_versions(
    group: str, region: str | None = None, *, session: Any = None
) -> list[ModelVersion]:
    """Every version of ``group``, oldest first, with its approval and figures; a CriticError
    when the group does not exist."""
    check_name("model package group", group)
    aws = connect(region, session)
    sagemaker = aws.client("sagemaker")
    if not _group_exists(sagemaker, group):
        raise CriticError(
            f"there is no model package group {group} in region {aws.region}: "
            f"critic sagemaker register ARTIFACT --group {group} --bucket BUCKET creates it"
        )
    arns = []
    with aws_errors(f"listing the versions of model package group {group}"):
        for page in sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Ascending"
        ):
            arns.extend(item["ModelPackageArn"] for item in page["ModelPackageSummaryList"])
    return [_describe(sagemaker, arn, aws.region) for arn in arns]


def approved_package(sagemaker: Any, arn: str, region: str) -> ModelVersion:
    """The version at ``arn``, which must be Approved: what deploy checks before it creates a
    model from it. A version pending or rejected is a CriticError that says how to approve it."""
    version = _describe(sagemaker, arn, region)
    if version.approval != APPROVED:
        raise CriticError(
            f"model package {arn} is {version.approval}, not Approved: only an approved version "
            f"is deployed; approve it with {CLI_APPROVE.format(arn=arn)}"
        )
    return version


# --- helpers ----------------------------------------------------------------------------------


def _describe(sagemaker: Any, arn: str, region: str) -> ModelVersion:
    from botocore.exceptions import ClientError

    arn_region = _ARN.match(arn).group("region")  # type: ignore[union-attr]
    if arn_region != region:
        raise CriticError(
            f"model package {arn} is in region {arn_region}, not {region}: SageMaker serves a "
            f"version only in its own region (use --region {arn_region})"
        )
    with aws_errors(f"looking up model package {arn}"):
        try:
            described = sagemaker.describe_model_package(ModelPackageName=arn)
        except ClientError as error:
            if _missing(error):
                raise CriticError(
                    f"there is no model package {arn} in region {region}: critic sagemaker "
                    "versions GROUP lists the versions of a group"
                ) from None
            raise
    containers = described.get("InferenceSpecification", {}).get("Containers") or [{}]
    statistics = (
        described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
    ).get("S3Uri")
    created = described.get("CreationTime")
    return ModelVersion(
        arn=described.get("ModelPackageArn", arn),
        group=described.get("ModelPackageGroupName"),
        version=described.get("ModelPackageVersion"),
        approval=described.get("ModelApprovalStatus") or PENDING,
        created=created.isoformat() if hasattr(created, "isoformat") else str(created or ""),
        figures=dict(described.get("CustomerMetadataProperties") or {}),
        image=containers[0].get("Image"),
        model_data=containers[0].get("ModelDataUrl"),
        statistics=statistics,
        description=described.get("ModelPackageDescription"),
    )


def _missing(error: Any) -> bool:
    details = error.response.get("Error", {})
    message = str(details.get("Message", "")).lower()
    return details.get("Code") in ("ResourceNotFound", "ValidationException") and (
        "not found" in message or "does not exist" in message or "could not find" in message
    )


def _group_exists(sagemaker: Any, group: str) -> bool:
    from botocore.exceptions import ClientError

    with aws_errors(f"looking up model package group {group}"):
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        except ClientError as error:
            if _missing(error):
                return False
            raise
    return True


def _ensure_group(sagemaker: Any, group: str, log: Log) -> None:
    if _group_exists(sagemaker, group):
        return
    with aws_errors(f"creating model package group {group}"):
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription="critic sentiment models (critic sagemaker register)",
        )
    log(f"created model package group {group}")


def _describe_figures(metrics: dict) -> str:
    model = metrics.get("model", "a critic model")
    accuracy = metrics.get("test_accuracy")
    ece = metrics.get("test_ece_after")
    parts = [f"critic {model}"]
    if isinstance(accuracy, int | float):
        parts.append(f"test accuracy {accuracy:.4f}")
    if isinstance(ece, int | float):
        parts.append(f"test ECE {ece:.4f}")
    return ", ".join(parts)


def _metadata_value(value: object) -> str:
    text = _METADATA_UNSAFE.sub("_", str(value)).strip() or "unknown"
    return text[:256]


__all__ = [
    "APPROVAL_STATUSES",
    "ModelPackageVariant",
    "ModelVersion",
    "approve_model",
    "approved_package",
    "archive_metrics",
    "check_model_package_arn",
    "describe_model_version",
    "list_model_versions",
    "metadata_properties",
    "model_quality_statistics",
    "register_model",
]
