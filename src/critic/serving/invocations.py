"""The one request path: an invocation, from what the client sent to what it gets back.

Every ``POST /invocations`` (SageMaker's container contract) and ``POST
/endpoints/NAME/invocations`` (its runtime API, what boto3 calls) goes through
:func:`invocations`, and every check -- the custom attributes, ``explain``, the endpoint's name,
the content types, the body, the variant, the model's queue -- is made there, so what an
invocation can answer is decided and tested without a server.

The runtime API's path answers as SageMaker's runtime does in front of a container that
answers as ``/invocations``: what the runtime refuses itself (another endpoint, an unknown
variant, headers past its rules) is a ``ValidationError``; an error the container answers is
quoted in a 424 ``ModelError``, so that boto3 raises against critic what it raises against
SageMaker.

:class:`EndpointApp` is the HTTP side: the FastAPI app, whose ``__call__`` reads an
invocation's body (at most 6 MB) and headers, calls :func:`invocations` and writes its answer,
ahead of Starlette's middleware, routing and FastAPI's route machinery. Matching the path against every route (the page's and the A/B
view's too), the request's AsyncExitStack and the exception middleware's wrapping cost the
n-gram model's endpoint half its requests/s at 64 clients (1,163 against 2,377). The
OpenAPI description of both paths, which the fuzzing tests read, is made here too
(:func:`add_to_openapi`): no FastAPI route is declared for them.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from critic.errors import CriticError
from critic.inference.predictor import ModelOutputError
from critic.serving.ab.answers import ID_HEADER
from critic.serving.batching import ClientGone, DeadlineExceeded, Overloaded, Stopping
from critic.serving.codec import (
    JSON,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    TEXT,
    ClientError,
    check_custom_attributes,
    decode_reviews,
    encode_error,
    encode_predictions,
    negotiate,
    wants_explanation,
)
from critic.serving.http import ERROR_TYPE, MODEL_ERROR_STATUS, error_type, read_asgi_body
from critic.serving.metrics import NO_VARIANT
from critic.serving.state import EndpointState
from critic.serving.variants import check_name

TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"
CONTAINER_PATH = "/invocations"
RUNTIME_PREFIX, RUNTIME_SUFFIX = "/endpoints/", "/invocations"
REQUEST_ID = "x-amzn-RequestId"  # on every answer of the runtime API; boto3 shows it
SERVER_ERROR = "Internal Server Error"  # what Starlette answers /invocations when a request fails

# Where uvicorn logs a request that failed (Starlette's 500): the server's own log.
logger = logging.getLogger("uvicorn.error")


@dataclass
class Answer:
    """What one invocation answers; ``message`` is set exactly when it is an error."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None

    @classmethod
    def error(cls, status: int, message: str, headers: dict[str, str]) -> Answer:
        return cls(status, encode_error(status, message), JSON, headers, message)


@dataclass(frozen=True)
class Asked:
    """What a request asks for beside its reviews, checked: the custom attributes (echoed
    back), the variant it names, and whether it wants each word's weight."""

    attributes: str | None
    target_variant: str | None
    explain: bool


def _check_headers(custom_attributes: str | None, target_variant: str | None) -> str | None:
    """The custom attributes (returned once checked) and the target variant's name against
    SageMaker's rules for them: a ClientError (400) naming what is wrong."""
    attributes = check_custom_attributes(custom_attributes)
    if target_variant is not None:
        try:
            check_name("target variant", target_variant)
        except CriticError as error:
            raise ClientError(400, str(error)) from None
    return attributes


def read_asked(
    custom_attributes: str | None, target_variant: str | None, explain_query: str | None
) -> Asked:
    """The request's headers and ``?explain=`` checked, or a ClientError (400) naming what is
    wrong. The page in front of SageMaker forwards requests after the same checks."""
    attributes = _check_headers(custom_attributes, target_variant)
    return Asked(attributes, target_variant, wants_explanation(explain_query, attributes))


def check_runtime(
    state: EndpointState,
    endpoint_name: str,
    custom_attributes: str | None,
    target_variant: str | None,
) -> None:
    """What SageMaker's runtime refuses itself, before any container sees the request: custom
    attributes or a target variant's name past its rules, another endpoint's name, a variant
    the endpoint does not have. A ClientError (400): boto3's ValidationError, on SageMaker as
    here. (So is a body over 6 MB, refused while it is read.)"""
    _check_headers(custom_attributes, target_variant)
    if endpoint_name != state.settings.endpoint_name:
        raise ClientError(
            400,
            f"Endpoint {endpoint_name} not found; this server is endpoint "
            f"{state.settings.endpoint_name}",
        )
    if target_variant:
        try:
            state.router.get(target_variant)
        except CriticError as error:
            raise ClientError(400, str(error)) from None


def model_error(refusal: Answer, endpoint_name: str) -> Answer:
    """The container's error answer as SageMaker's runtime answers it: 424, a ``ModelError``
    whose ``OriginalStatusCode`` and ``OriginalMessage`` are the status and the body the
    container answered (with the container's headers). boto3 raises
    ``runtime.exceptions.ModelError`` with them, against critic as against SageMaker."""
    original = refusal.body.decode(errors="replace")
    side = "client" if refusal.status < 500 else "server"
    # "primary": the container's name in SageMaker's message, for a model of one container.
    message = (
        f'Received {side} error ({refusal.status}) from primary with message "{original}". '
        f"See the log of critic serve (endpoint {endpoint_name}) for more information."
    )
    # SageMaker adds the LogStreamArn of the container's CloudWatch logs; critic serve's log
    # is its own output, with no ARN to name, so the member is left out (boto3 allows it).
    code = "CLIENT_ERROR_FROM_MODEL" if side == "client" else "INTERNAL_FAILURE_FROM_MODEL"
    body = {
        "ErrorCode": code,
        "Message": message,
        "OriginalMessage": original,
        "OriginalStatusCode": refusal.status,
    }
    encoded = json.dumps(body, ensure_ascii=False).encode()
    return Answer(MODEL_ERROR_STATUS, encoded, JSON, dict(refusal.headers), message)


async def invocations(
    state: EndpointState,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    *,
    endpoint_name: str | None = None,
    target_variant: str | None = None,
    custom_attributes: str | None = None,
    explain_query: str | None = None,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> Answer:
    """Answer one invocation: check what it asks, decode, route, predict (micro-batched),
    encode. ``endpoint_name``: the name in the runtime API's path (None on the container's
    ``/invocations``); ``explain_query``: the ``explain`` query parameter, if any.

    On the runtime API's path :func:`check_runtime` comes first; then an error the container
    answers, or a failure that ``/invocations`` leaves to Starlette (a 500), becomes
    :func:`model_error`'s 424."""
    started = time.perf_counter()
    request = (body, content_type, accept, custom_attributes, target_variant, explain_query)
    if endpoint_name is None:
        return await _as_container(state, *request, is_disconnected, started)
    try:
        check_runtime(state, endpoint_name, custom_attributes, target_variant)
    except ClientError as error:
        return refused(state, error, started=started)
    try:
        answer = await _as_container(state, *request, is_disconnected, started)
    except Exception:
        logger.exception("an invocation of endpoint %s failed: a ModelError (500)", endpoint_name)
        answer = Answer(500, SERVER_ERROR.encode(), TEXT, {}, SERVER_ERROR)
    return answer if answer.message is None else model_error(answer, endpoint_name)


async def _as_container(
    state: EndpointState,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    custom_attributes: str | None,
    target_variant: str | None,
    explain_query: str | None,
    is_disconnected: Callable[[], Awaitable[bool]] | None,
    started: float,
) -> Answer:
    """What the container answers (``POST /invocations``): every answer and refusal counted."""
    variant_name = NO_VARIANT
    echo: dict[str, str] = {}
    try:
        asked = read_asked(custom_attributes, target_variant, explain_query)
        if asked.attributes:
            echo[CUSTOM_ATTRIBUTES] = asked.attributes
        response_type = negotiate(accept)
        reviews = decode_reviews(body, content_type, state.settings.max_reviews)
        state.sync_weights()
        try:
            variant, shares, pinned = state.router.route(asked.target_variant)
        except CriticError as error:
            raise ClientError(400, str(error)) from None
        variant_name = variant.name
        # What the sample-ratio check expects of each variant, and what each answer's id
        # says of how its variant was chosen (critic.evaluation.abtest).
        state.metrics.routed(shares)
        share = shares[variant_name]
        batcher = state.batchers[variant.name]
        try:
            predictions = await batcher.submit(reviews, asked.explain, is_disconnected)
        except Overloaded as error:
            echo["Retry-After"] = str(error.retry_after)
            raise ClientError(503, str(error)) from None
        except Stopping as error:
            echo["Retry-After"] = "1"
            raise ClientError(503, str(error)) from None
        except DeadlineExceeded as error:
            raise ClientError(504, f"{error}; the model is slower than the traffic") from None
        except ClientGone as error:
            # Nobody reads this answer; the status is nginx's "client closed request".
            raise ClientError(499, str(error)) from None
        except ModelOutputError as error:
            # The model's fault, not the review's: a 500 counted against the variant (a
            # rollout's guardrail sees it), said in one line rather than a traceback.
            logger.error("variant %s gave no answer: %s", variant_name, error)
            raise ClientError(500, f"variant {variant_name} gave no answer: {error}") from None
        except Exception:
            logger.exception("variant %s failed on a request", variant_name)
            raise ClientError(
                500, f"variant {variant_name} failed on this request (see the server's log)"
            ) from None
    except ClientError as error:
        return refused(state, error, echo, variant_name, started)
    state.metrics.observe(variant_name, 200, time.perf_counter() - started, predictions)
    for prediction in predictions:
        prediction["id"] = state.answers.issue(variant_name, prediction["label"], share, pinned)
    headers = {INVOKED_VARIANT: variant_name, **echo}
    if len(predictions) == 1:  # a text/plain answer ("1" or "0") has no room for it
        headers[ID_HEADER] = predictions[0]["id"]
    extra = {"variant": variant_name, "model": variant.predictor.name}
    body_out = encode_predictions(predictions, response_type, extra)
    if state.shadows is not None or state.capture is not None:
        state.answered(
            variant_name, reviews, predictions, (body, content_type), (body_out, response_type)
        )
    return Answer(200, body_out, response_type, headers)


def refused(
    state: EndpointState,
    error: ClientError,
    echo: dict[str, str] | None = None,
    variant_name: str = NO_VARIANT,
    started: float | None = None,
) -> Answer:
    """The answer to an invocation refused, counted in the metrics like every other answer:
    also for a body refused while it was read (413), before :func:`invocations` could run."""
    seconds = time.perf_counter() - started if started is not None else 0.0
    state.metrics.observe(variant_name, error.status, seconds)
    headers = dict(echo or {})
    if variant_name != NO_VARIANT:
        headers[INVOKED_VARIANT] = variant_name
    return Answer.error(error.status, error.message, headers)


def invocation_path(path: str) -> tuple[bool, str | None]:
    """Whether ``path`` is an invocation, and the endpoint name the runtime API's path names
    (None for the container's ``/invocations``)."""
    if path == CONTAINER_PATH:
        return True, None
    if path.startswith(RUNTIME_PREFIX) and path.endswith(RUNTIME_SUFFIX):
        name = path[len(RUNTIME_PREFIX) : -len(RUNTIME_SUFFIX)]
        if name and "/" not in name:
            return True, name
    return False, None


class EndpointApp(FastAPI):
    """The endpoint's FastAPI app, whose ``POST`` to an invocation path is answered by
    :func:`invocations` before Starlette's middleware stack; every other request goes through
    FastAPI as usual.

    Ahead of the stack, not inside it as a middleware: its three layers (the server-error
    handler, FastAPI's telemetry check and its body limit) cost a lone request of the n-gram
    model about a tenth of its time (issue 25), and an invocation needs none of them -- its
    errors are answered by :func:`invocations` itself, its body is bounded by
    :func:`critic.serving.http.read_asgi_body`. One object still answers both uvicorn and the tests' TestClient."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            matched, endpoint_name = invocation_path(scope["path"])
            if matched:
                scope["app"] = self
                answer = await self._respond(scope, receive, endpoint_name)
                await _response(answer, endpoint_name)(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _respond(self, scope, receive, endpoint_name: str | None) -> Answer:
        if scope["method"] != "POST":
            return Answer.error(405, "Method Not Allowed", {"Allow": "POST"})
        state: EndpointState | None = getattr(self.state, "endpoint", None)
        if state is None:  # only while the lifespan has not finished starting
            loading = Answer.error(503, "models are still loading", {})
            return loading if endpoint_name is None else model_error(loading, endpoint_name)
        headers = _wanted_headers(scope["headers"])
        try:
            body = await read_asgi_body(receive, headers.get(b"content-length"))
        except ClientError as error:  # 413: SageMaker's runtime refuses it itself, too
            return refused(state, error)
        request = Request(scope, receive)
        # Parsing the query string costs more than looking whether there is one.
        query = request.query_params.get("explain") if scope["query_string"] else None
        return await invocations(
            state,
            body,
            headers.get(b"content-type"),
            headers.get(b"accept"),
            endpoint_name=endpoint_name,
            target_variant=headers.get(_TARGET_VARIANT),
            custom_attributes=headers.get(_CUSTOM_ATTRIBUTES),
            explain_query=query,
            is_disconnected=request.is_disconnected,
        )


# The request headers an invocation reads, by their lower-case names as ASGI gives them.
_TARGET_VARIANT = TARGET_VARIANT.lower().encode()
_CUSTOM_ATTRIBUTES = CUSTOM_ATTRIBUTES.lower().encode()
_WANTED = frozenset(
    {b"content-type", b"content-length", b"accept", _TARGET_VARIANT, _CUSTOM_ATTRIBUTES}
)


def _wanted_headers(raw: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The headers an invocation reads, in one pass over the raw list (the first of a
    repeated one, as Starlette's ``Headers.get`` answers)."""
    found: dict[bytes, str] = {}
    for name, value in raw:
        if name in _WANTED and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _response(answer: Answer, endpoint_name: str | None) -> Response:
    """The answer over HTTP: an error names its type for AWS SDKs (critic.serving.http), and
    every answer of the runtime API's path has a request id, as SageMaker's have."""
    headers = answer.headers
    if answer.message is not None:
        headers = {ERROR_TYPE: error_type(answer.status), **headers}
    if endpoint_name is not None:
        headers = {**headers, REQUEST_ID: str(uuid.uuid4())}
    return Response(
        answer.body, status_code=answer.status, media_type=answer.content_type, headers=headers
    )


def _parameter(name: str, where: str, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required, "schema": {"type": "string"}}


CONTAINER_ERRORS = {
    "4XX": {"description": "A client mistake, as JSON with a message"},
    "503": {"description": "Loading, or the model's queue is full (Retry-After)"},
}
RUNTIME_ERRORS = {
    "400": {"description": "A ValidationError: another endpoint, an unknown target variant, or "
            "custom attributes or a variant's name past SageMaker's rules"},
    "413": {"description": "A ValidationError: the body is over 6 MB"},
    "424": {"description": "A ModelError: what /invocations answered instead, its status in "
            "OriginalStatusCode and its body in OriginalMessage, as SageMaker's runtime answers"},
}  # fmt: skip


def _operation(summary: str, parameters: list[dict], responses: dict) -> dict:
    text_body = {"schema": {"type": "string"}}
    headers = [_parameter(name, "header") for name in (TARGET_VARIANT, CUSTOM_ATTRIBUTES, "Accept")]
    return {
        "post": {
            "summary": summary,
            "parameters": [*parameters, _parameter("explain", "query"), *headers],
            "requestBody": {
                "required": True,
                "content": {content_type: text_body for content_type in REQUEST_TYPES},
            },
            "responses": {
                "200": {
                    "description": "One answer per review",
                    "content": {content_type: text_body for content_type in RESPONSE_TYPES},
                },
                **responses,
            },
        }
    }


def add_to_openapi(app) -> None:
    """Describe both invocation paths in the app's OpenAPI schema (``/openapi.json``, the API
    page, the fuzzing tests): they have no route for FastAPI to describe."""
    describe = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = describe()
            schema["paths"][CONTAINER_PATH] = _operation(
                "Answer reviews (SageMaker's container contract)", [], CONTAINER_ERRORS
            )
            schema["paths"]["/endpoints/{endpoint_name}/invocations"] = _operation(
                "Answer reviews (the SageMaker Runtime API, as boto3 calls it)",
                [_parameter("endpoint_name", "path", required=True)],
                RUNTIME_ERRORS,
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
