"""Checks of what the user gave, made before any AWS call: a mistake costs nothing here.

Every check raises a :class:`CriticError` that names the value and the rule it breaks.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

from critic.errors import CriticError
from critic.fileio import check_members
from critic.sagemaker.images import INFERENCE_PROGRAM

# Names and weights follow one rule for the local endpoint and for SageMaker; it lives with the
# variants, which this package may import (serving must not import sagemaker).
from critic.serving.variants import MAX_NAME_LENGTH, NAME_PATTERN, check_name, check_weight

__all__ = [
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "bucket_name",
    "check_instance_type",
    "check_model_archive",
    "check_name",
    "check_positive_int",
    "check_role_arn",
    "check_weight",
    "parse_s3_uri",
]

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_role_arn(role_arn: object) -> str:
    """The ARN of the IAM role SageMaker assumes to read S3 and pull the image."""
    if not isinstance(role_arn, str) or not _ROLE_ARN.match(role_arn):
        raise CriticError(
            f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME): "
            "SageMaker needs a role it may assume, with AmazonSageMakerFullAccess or equivalent"
        )
    return role_arn


def check_instance_type(instance_type: object) -> str:
    """A SageMaker instance type such as ``ml.m5.large``."""
    if not isinstance(instance_type, str) or not _INSTANCE_TYPE.match(instance_type):
        raise CriticError(
            f"{instance_type!r} is not a SageMaker instance type (e.g. ml.m5.large, ml.g4dn.xlarge)"
        )
    return instance_type


def check_positive_int(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CriticError(f"{what} must be a whole number of at least 1, got {value!r}")
    return value


def bucket_name(bucket: object) -> str:
    """``"s3://my-bucket/"`` or ``"my-bucket"`` -> ``"my-bucket"``, checked against S3's rules."""
    if not isinstance(bucket, str):
        raise CriticError(f"the S3 bucket must be a name, got {bucket!r}")
    name = bucket.strip().removeprefix("s3://").rstrip("/")
    if "/" in name:
        raise CriticError(
            f"{bucket!r}: give the bucket name alone; critic chooses the keys (under critic/)"
        )
    if not _BUCKET.match(name):
        raise CriticError(
            f"{bucket!r} is not a valid S3 bucket name: 3-63 lower-case letters, digits, dots "
            "and hyphens"
        )
    return name


def parse_s3_uri(uri: object) -> tuple[str, str]:
    """``"s3://bucket/some/key"`` -> ``("bucket", "some/key")``."""
    match = re.match(r"^s3://([^/]+)/?(.*)$", uri) if isinstance(uri, str) else None
    if not match:
        raise CriticError(f"{uri!r} is not an S3 URI (s3://bucket/key)")
    return bucket_name(match.group(1)), match.group(2)


def check_model_archive(archive: Path, what: str) -> None:
    """The file exists, is a .tar.gz, and holds the handler SageMaker's container will run.
    ``what`` names it in the messages ("variant champion")."""
    program = f"code/{INFERENCE_PROGRAM}"
    archive = Path(archive)
    if not archive.exists():
        raise CriticError(f"{what}: {archive} does not exist")
    if not archive.is_file():
        raise CriticError(f"{what}: {archive} is not a file")
    try:
        with tarfile.open(archive, "r:gz") as opened:
            # SageMaker unpacks it on the instance: nothing in it may land outside model_dir.
            check_members(opened, archive)
            names = {name.removeprefix("./") for name in opened.getnames()}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise CriticError(
            f"{what}: {archive} is not a gzip-compressed tar file (model.tar.gz): {error}"
        ) from None
    if program not in names:
        raise CriticError(
            f"{what}: {archive} has no {program}, which SageMaker's PyTorch container runs; "
            "make the archive with critic's packaging (critic.inference.bundle.package_bundle)"
        )
