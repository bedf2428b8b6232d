"""One invocation, without HTTP: body and headers in, a response (or an error) out.

The seam STYLE.md asks for: the routes only read the request and write what this returns,
so everything an invocation can answer -- predictions, every client mistake -- is decided
here and tested without a server.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from critic.errors import CriticError
from critic.serving.ab.answers import ID_HEADER
from critic.serving.batching import ClientGone, DeadlineExceeded, Overloaded, Stopping
from critic.serving.codec import (
    JSON,
    ClientError,
    decode_reviews,
    encode_error,
    encode_predictions,
    negotiate,
)
from critic.serving.metrics import NO_VARIANT
from critic.serving.state import EndpointState
from critic.serving.variants import check_name

TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"


@dataclass
class Invocation:
    """An answer to one invocation; ``message`` is set exactly when it is an error."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None

    @classmethod
    def error(cls, status: int, message: str, headers: dict[str, str]) -> Invocation:
        return cls(status, encode_error(status, message), JSON, headers, message)


async def invocations(
    state: EndpointState,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    target_variant: str | None = None,
    custom_attributes: str | None = None,
    explain: bool = False,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> Invocation:
    """Answer one invocation: decode, route, predict (micro-batched), encode."""
    started = time.perf_counter()
    variant_name = NO_VARIANT
    echo = {CUSTOM_ATTRIBUTES: custom_attributes} if custom_attributes else {}
    try:
        response_type = negotiate(accept)
        reviews = decode_reviews(body, content_type, state.settings.max_reviews)
        state.sync_weights()
        try:
            if target_variant is not None:
                check_name("target variant", target_variant)
            variant = state.router.choose(target_variant)
        except CriticError as error:
            raise ClientError(400, str(error)) from None
        variant_name = variant.name
        batcher = state.batchers[variant.name]
        try:
            predictions = await batcher.submit(reviews, explain, is_disconnected)
        except Overloaded as error:
            echo = {**echo, "Retry-After": str(error.retry_after)}
            raise ClientError(503, str(error)) from None
        except Stopping as error:
            echo = {**echo, "Retry-After": "1"}
            raise ClientError(503, str(error)) from None
        except DeadlineExceeded as error:
            raise ClientError(504, f"{error}; the model is slower than the traffic") from None
        except ClientGone as error:
            # Nobody reads this answer; the status is nginx's "client closed request".
            raise ClientError(499, str(error)) from None
    except ClientError as error:
        state.metrics.observe(variant_name, error.status, time.perf_counter() - started)
        if variant_name != NO_VARIANT:
            echo = {**echo, INVOKED_VARIANT: variant_name}
        return Invocation.error(error.status, error.message, echo)
    state.metrics.observe(variant_name, 200, time.perf_counter() - started, predictions)
    for prediction in predictions:
        prediction["id"] = state.answers.issue(variant_name, prediction["label"])
    headers = {INVOKED_VARIANT: variant_name, **echo}
    if len(predictions) == 1:  # a text/plain answer ("1" or "0") has no room for it
        headers[ID_HEADER] = predictions[0]["id"]
    extra = {"variant": variant_name, "model": variant.predictor.name}
    body_out = encode_predictions(predictions, response_type, extra)
    if state.shadows is not None or state.capture is not None:
        state.answered(
            variant_name, reviews, predictions, (body, content_type), (body_out, response_type)
        )
    return Invocation(200, body_out, response_type, headers)
