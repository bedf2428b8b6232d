"""Ask a deployed endpoint about reviews: SageMaker's runtime ``InvokeEndpoint`` call.

The bodies follow critic's hosting contract, which the model's handler (and ``critic serve``)
reads: ``text/plain`` is one review, ``application/json`` is ``{"instances": [...]}``,
``text/csv`` one quoted review per row, ``application/jsonlines`` one JSON string per line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from critic.errors import CriticError
from critic.sagemaker.aws import aws_errors, connect, one_line
from critic.sagemaker.checks import check_name

# The hosting contract has one home, serving/codec.py: its content types, its size limit, the
# request encoder beside the endpoint's decoder, the answer decoder beside its encoder. They
# are named here too for this module's callers.
from critic.serving.codec import (
    CSV,
    JSON,
    JSON_LINES,
    MAX_BODY_BYTES,
    REQUEST_TYPES,
    TEXT,
    encode_reviews,
)
from critic.serving.codec import decode_predictions as decode_answer

__all__ = [
    "CSV",
    "JSON",
    "JSON_LINES",
    "MAX_BODY_BYTES",
    "MAX_CUSTOM_ATTRIBUTES",
    "REQUEST_TYPES",
    "TEXT",
    "InvokeResult",
    "decode_answer",
    "encode_reviews",
    "invoke",
    "model_error_message",
]

MAX_CUSTOM_ATTRIBUTES = 1024


@dataclass(frozen=True)
class InvokeResult:
    """An endpoint's answer and which variant gave it."""

    answer: Any
    """The parsed body: JSON as Python objects, JSON lines as a list, text as str, else bytes."""
    variant: str | None
    """``InvokedProductionVariant``: the variant SageMaker routed the request to."""
    content_type: str | None
    custom_attributes: str | None = None


def model_error_message(endpoint_name: str, error: Any) -> str:
    """A ``ModelError`` (the container itself answered an error) as one line."""
    response = error.response
    status = response.get("OriginalStatusCode", "an error")
    message = response.get("OriginalMessage") or response.get("Error", {}).get("Message", "")
    # critic's handler answers {"status": ..., "message": ...}; show the message alone.
    try:
        parsed = json.loads(message)
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            message = parsed["message"]
    except (TypeError, ValueError):
        pass
    text = f"the model behind endpoint {endpoint_name} answered {status}: {message}"
    if response.get("LogStreamArn"):
        text += f" (container logs: {response['LogStreamArn']})"
    return one_line(text)


def invoke(
    endpoint_name: str,
    reviews: str | Sequence[str],
    target_variant: str | None = None,
    content_type: str | None = None,
    accept: str = JSON,
    custom_attributes: str | None = None,
    region: str | None = None,
    *,
    session: Any = None,
) -> InvokeResult:
    """Send one review (a str) or several (a list) to an endpoint; return its parsed answer.

    ``content_type`` defaults to ``text/plain`` for one review and ``application/json``
    (``{"instances": [...]}``) for a list; ``text/csv`` and ``application/jsonlines`` work too.
    ``target_variant`` skips the weighted routing and asks that variant;
    ``custom_attributes`` travels to the container as ``X-Amzn-SageMaker-Custom-Attributes``.
    An error answered by the model itself is a CriticError with its status and message.
    """
    check_name("endpoint", endpoint_name)
    if target_variant is not None:
        check_name("variant", target_variant)
    body, kind = encode_reviews(reviews, content_type)
    if not isinstance(accept, str) or not accept.strip():
        raise CriticError(f"accept must be a media type such as {JSON}, got {accept!r}")
    if custom_attributes is not None and (
        not isinstance(custom_attributes, str)
        or len(custom_attributes) > MAX_CUSTOM_ATTRIBUTES
        or not all(32 <= ord(c) < 127 for c in custom_attributes)
    ):
        raise CriticError(
            f"custom_attributes must be printable ASCII of at most {MAX_CUSTOM_ATTRIBUTES} characters"
        )

    aws = connect(region, session)  # first: it says how to install boto3 when it is missing
    runtime = aws.client("sagemaker-runtime")
    from botocore.exceptions import ClientError

    params: dict[str, Any] = {
        "EndpointName": endpoint_name,
        "Body": body,
        "ContentType": content_type or kind,
        "Accept": accept,
    }
    if target_variant is not None:
        params["TargetVariant"] = target_variant
    if custom_attributes is not None:
        params["CustomAttributes"] = custom_attributes
    with aws_errors(f"invoking endpoint {endpoint_name}"):
        try:
            response = runtime.invoke_endpoint(**params)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ModelError":
                raise CriticError(model_error_message(endpoint_name, error)) from error
            raise
        payload = response["Body"].read()
    answer_type = response.get("ContentType")
    return InvokeResult(
        answer=decode_answer(payload, answer_type),
        variant=response.get("InvokedProductionVariant"),
        content_type=answer_type,
        custom_attributes=response.get("CustomAttributes"),
    )
