"""boto3 sessions and clients, and AWS failures turned into one-line CriticErrors.

boto3 is optional (``pip install 'critic[aws]'``), so it is imported here, when a client is
first needed, never when :mod:`critic.sagemaker` is imported.

Clients come from a plain boto3 session, so everything the AWS SDKs read from the environment
works unchanged: credentials (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, SSO, instance roles),
retries (``AWS_MAX_ATTEMPTS``, ``AWS_RETRY_MODE``) and endpoints (``AWS_ENDPOINT_URL`` and the
per-service ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_SAGEMAKER``,
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``), which botocore honours itself.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from critic import __version__
from critic.errors import CriticError

INSTALL_HINT = "pip install 'critic[aws]'"
CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE to a profile made with "
    "`aws configure` (or `aws configure sso` and `aws sso login`)"
)
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
# Extra advice for the AWS error codes people meet most; the code and AWS's message are
# always shown as well.
_HINTS = {
    "AccessDenied": "these credentials lack an IAM permission for it",
    "AccessDeniedException": "these credentials lack an IAM permission for it",
    "ExpiredToken": "the credentials have expired; refresh them (e.g. `aws sso login`)",
    "ExpiredTokenException": "the credentials have expired; refresh them (e.g. `aws sso login`)",
    "InvalidClientTokenId": "the access key is not valid in this account or partition",
    "UnrecognizedClientException": "the access key is not valid in this account or partition",
    "SignatureDoesNotMatch": "the secret access key does not match the access key",
    "ResourceLimitExceeded": (
        "an account quota is reached: ask for more in Service Quotas or use another instance type"
    ),
    "ThrottlingException": "AWS is throttling these requests; try again in a moment",
}


def one_line(text: object) -> str:
    """Collapse whitespace, newlines included, so a message prints as one line."""
    return " ".join(str(text).split())


def import_boto3() -> Any:
    """The boto3 module, or a CriticError that says how to install it."""
    try:
        import boto3
    except ImportError:
        raise CriticError(
            f"the AWS commands need boto3, which is not installed: {INSTALL_HINT}"
        ) from None
    return boto3


@dataclass
class Aws:
    """A boto3 session bound to one region; makes the clients the SageMaker functions use."""

    session: Any
    """A ``boto3.session.Session``."""
    region: str

    def client(self, service: str) -> Any:
        from botocore.config import Config

        with aws_errors(f"creating the {service} client"):
            return self.session.client(
                service,
                region_name=self.region,
                config=Config(user_agent_extra=f"critic/{__version__}"),
            )


def connect(region: str | None = None, session: Any = None) -> Aws:
    """A session and its region: ``region``, else ``AWS_REGION``, else the session's own
    (``AWS_DEFAULT_REGION`` or the profile's ``region``), else a CriticError."""
    boto3 = import_boto3()
    if session is None:
        with aws_errors("reading the AWS configuration"):
            session = boto3.session.Session()
    chosen = region or os.environ.get("AWS_REGION") or session.region_name
    if not chosen or not chosen.strip():
        raise CriticError(
            "no AWS region given: pass a region (e.g. --region us-east-1) "
            "or set AWS_REGION or AWS_DEFAULT_REGION"
        )
    chosen = chosen.strip()
    if not _REGION.match(chosen):
        raise CriticError(f"{chosen!r} is not an AWS region name (e.g. us-east-1, eu-west-1)")
    return Aws(session, chosen)


def client_error_message(action: str, error: Any) -> str:
    """``"creating model x failed: ValidationException: <AWS's message>"``, on one line."""
    details = error.response.get("Error", {})
    code = details.get("Code") or "UnknownError"
    message = details.get("Message") or error.response.get("message") or str(error)
    text = f"{action} failed: {code}: {message}"
    if code in _HINTS:
        text += f" ({_HINTS[code]})"
    return one_line(text)


def is_not_found(error: Any) -> bool:
    """Whether a SageMaker ClientError says the named resource does not exist."""
    details = error.response.get("Error", {})
    code, message = details.get("Code"), str(details.get("Message", "")).lower()
    if code in ("ResourceNotFound", "ResourceNotFoundException"):
        return True
    # A missing endpoint, config or model is a ValidationException "Could not find ...", a
    # missing training job one that says "Requested resource not found."
    return code == "ValidationException" and (
        "could not find" in message or "resource not found" in message
    )


@contextlib.contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn the failures of boto3 calls inside the block into one-line CriticErrors.

    ``action`` says what was being done ("creating model x"), so that the message reads as a
    sentence. CriticErrors raised inside the block pass through unchanged.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    try:
        yield
    except ClientError as error:
        raise CriticError(client_error_message(action, error)) from error
    except NoCredentialsError as error:
        raise CriticError(
            f"{action} failed: no AWS credentials found: {CREDENTIALS_HINT}"
        ) from error
    except PartialCredentialsError as error:
        raise CriticError(
            one_line(f"{action} failed: incomplete AWS credentials ({error}): {CREDENTIALS_HINT}")
        ) from error
    except EndpointConnectionError as error:
        # ConnectTimeoutError is one of these too.
        url = error.kwargs.get("endpoint_url", "AWS")
        overridden = [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]
        hint = f", or {', '.join(sorted(overridden))}" if overridden else ""
        raise CriticError(
            one_line(
                f"{action} failed: cannot connect to {url}: check the network connection, "
                f"the region{hint}"
            )
        ) from error
    except ReadTimeoutError as error:
        raise CriticError(
            one_line(f"{action} failed: AWS did not answer in time ({error})")
        ) from error
    except NoRegionError as error:
        raise CriticError(f"{action} failed: no AWS region given; set AWS_REGION") from error
    except ParamValidationError as error:
        raise CriticError(
            one_line(f"{action} failed: the request is not valid: {error}")
        ) from error
    except BotoCoreError as error:
        raise CriticError(one_line(f"{action} failed: {error}")) from error


def wait_until(
    client: Any,
    waiter_name: str,
    what: str,
    *,
    delay_s: float,
    attempts: int,
    status_key: str,
    failed: Callable[[str | None, str | None, Exception], str],
    stopped_waiting: str,
    log: Callable[[str], None],
    **params: Any,
) -> None:
    """Wait with one of boto3's SageMaker waiters (``delay_s`` apart, ``attempts`` looks).

    A wait that ends badly is one CriticError: ``failed(status, reason, error)`` says it, from
    the last answer's ``status_key`` (``EndpointStatus``...) and ``FailureReason`` (or the
    error's message). Ctrl-C logs ``stopped_waiting`` -- what carries on, and is billed, and
    how to stop it -- and stops the command."""
    from botocore.exceptions import WaiterError

    waiter = client.get_waiter(waiter_name)
    with aws_errors(f"waiting for {what}"):
        try:
            waiter.wait(**params, WaiterConfig={"Delay": delay_s, "MaxAttempts": attempts})
        except WaiterError as error:
            last = error.last_response or {}
            reason = last.get("FailureReason") or last.get("Error", {}).get("Message")
            raise CriticError(failed(last.get(status_key), reason, error)) from None
        except KeyboardInterrupt:
            log(stopped_waiting)
            raise


def check_bucket(aws: Aws, s3: Any, bucket: str) -> None:
    """The bucket exists, these credentials see it, and it lies in the session's region
    (SageMaker reads model data and training code only from its own region)."""
    from botocore.exceptions import ClientError

    with aws_errors(f"checking S3 bucket {bucket}"):
        try:
            answer = s3.head_bucket(Bucket=bucket)
        except ClientError as error:
            # HEAD answers carry no body, so S3's code is the bare HTTP status.
            status = str(error.response.get("Error", {}).get("Code"))
            if status in ("404", "NoSuchBucket"):
                raise CriticError(
                    f"S3 bucket {bucket} does not exist; create it with "
                    f"`aws s3 mb s3://{bucket} --region {aws.region}` or name another"
                ) from error
            if status in ("403", "AccessDenied"):
                raise CriticError(
                    f"S3 bucket {bucket} exists but these credentials may not use it "
                    "(403 Forbidden): check the bucket policy and IAM permissions"
                ) from error
            raise
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    location = answer.get("BucketRegion") or headers.get("x-amz-bucket-region")
    if location and location != aws.region:
        raise CriticError(
            f"S3 bucket {bucket} is in {location}, but SageMaker runs in {aws.region} and reads "
            f"only from buckets in its own region: use a bucket in {aws.region}, or region "
            f"{location}"
        )


def upload_file(s3: Any, path: Path, bucket: str, key: str) -> str:
    """Upload ``path`` to ``s3://bucket/key`` (multipart for large files); return the URI."""
    from boto3.exceptions import S3UploadFailedError

    uri = f"s3://{bucket}/{key}"
    with aws_errors(f"uploading {path} to {uri}"):
        try:
            s3.upload_file(str(path), bucket, key)
        except S3UploadFailedError as error:
            # boto3 wraps the ClientError of the failed part into this one's message.
            raise CriticError(one_line(f"uploading {path} to {uri} failed: {error}")) from error
    return uri


def describe_or_none(call: Any, action: str, **params: Any) -> dict | None:
    """``call(**params)``'s answer, or None when SageMaker says the resource does not exist."""
    from botocore.exceptions import ClientError

    with aws_errors(action):
        try:
            return call(**params)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise
