"""SageMaker's data capture, on for an endpoint and brought down for ``critic monitor``.

An endpoint deployed with a ``DataCaptureConfig`` writes each sampled request and its answer to
S3, one JSON line per call, in the shape critic's own capture writes
(:mod:`critic.serving.sidecar.capture`), under
``DESTINATION/ENDPOINT/VARIANT/yyyy/mm/dd/hh/*.jsonl``. :func:`download_capture` copies those
files into a local folder with the same layout, so that ``critic monitor FOLDER`` (drift, and
quality with ``--ground-truth``) reads a SageMaker endpoint's traffic exactly as it reads the
local endpoint's.

JSON, JSON lines and CSV bodies are declared as such, so SageMaker keeps them as text; anything
else (text/plain reviews) it writes base64, which the reader decodes.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.errors import CriticError
from critic.sagemaker.aws import aws_errors, connect, describe_or_none
from critic.sagemaker.checks import check_name, parse_s3_uri

Log = Callable[[str], None]

# SageMaker keeps these bodies as text and base64-encodes any other (text/plain reviews).
CAPTURED_CONTENT_TYPES = {
    "JsonContentTypes": ["application/json", "application/jsonlines"],
    "CsvContentTypes": ["text/csv"],
}


@dataclass(frozen=True)
class DataCapture:
    """Capture ``percent`` of an endpoint's calls, requests and answers, to
    ``s3://BUCKET/critic/ENDPOINT/capture`` unless ``destination`` names another place."""

    percent: int = 100
    destination: str | None = None

    def __post_init__(self) -> None:
        whole = isinstance(self.percent, int) and not isinstance(self.percent, bool)
        if not whole or not 1 <= self.percent <= 100:
            raise CriticError(
                f"the data capture share must be a whole percent from 1 to 100, got "
                f"{self.percent!r}"
            )
        if self.destination is not None:
            parse_s3_uri(self.destination)

    def destination_for(self, bucket: str, endpoint_name: str) -> str:
        return self.destination or f"s3://{bucket}/critic/{endpoint_name}/capture"

    def config(self, bucket: str, endpoint_name: str) -> dict:
        """CreateEndpointConfig's ``DataCaptureConfig``."""
        return {
            "EnableCapture": True,
            "InitialSamplingPercentage": self.percent,
            "DestinationS3Uri": self.destination_for(bucket, endpoint_name),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": CAPTURED_CONTENT_TYPES,
        }


@dataclass(frozen=True)
class CaptureDownload:
    """What :func:`download_capture` brought down."""

    endpoint_name: str
    source: str
    """The S3 prefix the files came from."""
    folder: Path
    files: list[Path] = field(default_factory=list)
    """Files written this time."""
    unchanged: int = 0
    """Files already there, with the same size, not fetched again."""
    bytes: int = 0


def capture_destination(sagemaker: Any, endpoint_name: str, region: str) -> str:
    """Where an endpoint captures to: DescribeEndpoint's DataCaptureConfig, else its
    endpoint config's; a CriticError when capture is off."""
    endpoint = describe_or_none(
        sagemaker.describe_endpoint,
        f"looking up endpoint {endpoint_name}",
        EndpointName=endpoint_name,
    )
    if endpoint is None:
        raise CriticError(f"there is no endpoint named {endpoint_name} in region {region}")
    destination = (endpoint.get("DataCaptureConfig") or {}).get("DestinationS3Uri")
    if not destination and endpoint.get("EndpointConfigName"):
        config = describe_or_none(
            sagemaker.describe_endpoint_config,
            f"looking up endpoint config {endpoint['EndpointConfigName']}",
            EndpointConfigName=endpoint["EndpointConfigName"],
        )
        capture = (config or {}).get("DataCaptureConfig") or {}
        if capture.get("EnableCapture", True):
            destination = capture.get("DestinationS3Uri")
    if not destination:
        raise CriticError(
            f"endpoint {endpoint_name} does not capture its traffic: deploy it (or update it) "
            "with --data-capture PERCENT"
        )
    return destination


def download_capture(
    endpoint_name: str,
    folder: Path,
    *,
    hours: float | None = None,
    destination: str | None = None,
    region: str | None = None,
    log: Log = print,
    session: Any = None,
    now: dt.datetime | None = None,
) -> CaptureDownload:
    """Copy an endpoint's captured traffic from S3 into ``folder`` (``folder/ENDPOINT/VARIANT/
    yyyy/mm/dd/hh/*.jsonl``); with ``hours``, only the files of the last ``hours`` hours.

    Files already in ``folder`` with the size they have in S3 are skipped, so running it again
    fetches only what is new; each file is written under a temporary name and renamed, so
    ``critic monitor`` never reads half a file. ``destination`` (an S3 URI) reads from there
    instead of the endpoint's capture: a shadow test's data storage, say."""
    check_name("endpoint", endpoint_name)
    if hours is not None and not (isinstance(hours, int | float) and hours > 0):
        raise CriticError(f"hours must be a number above 0, got {hours!r}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CriticError(f"{folder} is not a folder")
    aws = connect(region, session)
    sagemaker, s3 = aws.client("sagemaker"), aws.client("s3")
    if destination is None:
        destination = capture_destination(sagemaker, endpoint_name, aws.region)
    bucket, key = parse_s3_uri(destination)
    prefix = f"{key.rstrip('/')}/{endpoint_name}/" if key else f"{endpoint_name}/"
    since = None
    if hours is not None:
        since = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=hours)

    written: list[Path] = []
    unchanged = size = 0
    with aws_errors(f"listing s3://{bucket}/{prefix}"):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        objects = [item for page in pages for item in page.get("Contents", [])]
    for item in objects:
        if not item["Key"].endswith(".jsonl"):
            continue
        if since is not None and item["LastModified"] < since:
            continue
        relative = item["Key"][len(prefix) :]
        parts = relative.split("/")
        if any(part in ("", ".", "..") for part in parts):
            continue  # a key that would land outside the folder
        target = folder / endpoint_name / Path(*parts)
        if target.is_file() and target.stat().st_size == item["Size"]:
            unchanged += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
        os.close(descriptor)
        try:
            with aws_errors(f"downloading s3://{bucket}/{item['Key']}"):
                s3.download_file(bucket, item["Key"], partial)
            os.replace(partial, target)
        finally:
            Path(partial).unlink(missing_ok=True)
        written.append(target)
        size += item["Size"]
    log(
        f"capture of endpoint {endpoint_name}: {len(written)} files ({size / 1e6:.1f} MB) from "
        f"s3://{bucket}/{prefix} into {folder / endpoint_name}"
        + (f", {unchanged} already there" if unchanged else "")
    )
    if not written and not unchanged:
        log("nothing captured yet: capture files appear in S3 a few minutes after the calls")
    return CaptureDownload(
        endpoint_name, f"s3://{bucket}/{prefix}", folder, written, unchanged, size
    )
