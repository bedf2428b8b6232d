"""The local endpoint: SageMaker's hosting contract on FastAPI.

    GET  /ping                              200 once every variant's model is loaded
    POST /invocations                       the container contract (what SageMaker calls);
                                            ?explain=true adds each review's word weights
    POST /endpoints/{name}/invocations      the SageMaker Runtime API (what boto3 calls)
    GET  /metrics                           Prometheus text format
    GET  /execution-parameters              how SageMaker Batch Transform should call us
    GET  /variants                          variants, weights and traffic shares
    POST /admin/weights                     change weights at run time (bearer token)

The page and the A/B view (critic.web) are served beside these; critic.apps.endpoint composes
both into one app. Each request is decoded and checked on the event loop (critic.serving.
invocations), then its reviews go to the chosen variant's micro-batcher, which runs the model
in a thread of its own. Every client mistake is a 4xx with a JSON ``message``; never a 500.
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from critic.errors import CriticError
from critic.serving.codec import (
    MAX_BODY_BYTES,
    ClientError,
    check_custom_attributes,
    parse_json,
    wants_explanation,
)
from critic.serving.http import error_response, read_body
from critic.serving.invocations import CUSTOM_ATTRIBUTES, TARGET_VARIANT, invocations
from critic.serving.metrics import NO_VARIANT
from critic.serving.state import EndpointState, State

router = APIRouter()


async def _invoke(request: Request, state: EndpointState) -> Response:
    headers = request.headers
    attributes = None  # echoed back only once they pass SageMaker's limits
    try:
        attributes = check_custom_attributes(headers.get(CUSTOM_ATTRIBUTES))
        body = await read_body(request)
        # Parsing the query string costs more than looking whether there is one.
        query = request.query_params.get("explain") if request.scope["query_string"] else None
        explain = wants_explanation(query, attributes)
    except ClientError as error:
        state.metrics.observe(NO_VARIANT, error.status, 0.0)
        echo = {CUSTOM_ATTRIBUTES: attributes} if attributes else {}
        return error_response(error.status, error.message, echo)
    result = await invocations(
        state,
        body,
        headers.get("content-type"),
        headers.get("accept"),
        headers.get(TARGET_VARIANT),
        attributes,
        explain=explain,
        is_disconnected=request.is_disconnected,
    )
    if result.message is not None:
        return error_response(result.status, result.message, result.headers)
    return Response(
        result.body,
        status_code=result.status,
        media_type=result.content_type,
        headers=result.headers,
    )


@router.get("/ping")
async def ping(state: State) -> Response:
    if not state.ready:
        return error_response(503, "models are still loading")
    return Response(status_code=200)


# The two invocation routes take the bare Request and read their headers themselves: FastAPI's
# dependency solving (the State dependency, two Header parameters) cost about 100 us a
# request, a third of a lone review's whole forward pass through the n-gram model.
_INVOCATION_HEADERS = {
    "parameters": [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
        for name in (TARGET_VARIANT, CUSTOM_ATTRIBUTES)
    ]
}


class InvocationsFastPath:
    """ASGI middleware that answers ``POST /invocations`` (and the runtime API's path) itself,
    with the routes' own :func:`_invoke`, before Starlette's routing and FastAPI's route
    machinery: matching the path against every route (the page's and the A/B view's too),
    the request's AsyncExitStack and the exception middleware's wrapping. At 64 clients the
    n-gram model's endpoint answered 1,163 requests/s through them and 2,377 without (the
    naive server 1,024 and 1,198 in the same runs). Every other request, and the OpenAPI schema
    (the two routes stay declared below), go through FastAPI as before."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            state: EndpointState | None = getattr(scope["app"].state, "endpoint", None)
            if state is not None and path in (
                "/invocations",
                f"/endpoints/{state.settings.endpoint_name}/invocations",
            ):
                response = await _invoke(Request(scope, receive), state)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@router.post("/invocations", openapi_extra=_INVOCATION_HEADERS)
async def invoke_container(request: Request) -> Response:
    return await _invoke(request, request.app.state.endpoint)


@router.post("/endpoints/{endpoint_name}/invocations", openapi_extra=_INVOCATION_HEADERS)
async def invoke_runtime(endpoint_name: str, request: Request) -> Response:
    state: EndpointState = request.app.state.endpoint
    if endpoint_name != state.settings.endpoint_name:
        return error_response(
            400,
            f"Endpoint {endpoint_name} not found; this server is endpoint {state.settings.endpoint_name}",
        )
    return await _invoke(request, state)


@router.get("/execution-parameters")
async def execution_parameters(state: State) -> dict:
    """What a SageMaker Batch Transform job asks the container before it sends any work (when
    the job leaves these unset): several records per request, up to the body size the codec
    reads, and as many requests at once as there are worker processes -- each worker's
    micro-batcher computes one at a time, so more would only queue."""
    return {
        "MaxConcurrentTransforms": state.settings.workers,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": MAX_BODY_BYTES // (1024 * 1024),
    }


@router.get("/metrics")
async def metrics(state: State) -> Response:
    state.sync_weights()
    for name, variant in state.router.variants.items():
        state.metrics.weight.labels(name).set(variant.weight)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


@router.get("/variants")
async def variants(state: State) -> dict:
    state.sync_weights()
    shares = state.router.shares()
    return {
        "endpoint": state.settings.endpoint_name,
        # Which worker process answered (critic serve --workers N): whoever reads this page
        # can see that a weight change reached each of them.
        "worker": os.getpid(),
        "variants": [
            {**v.describe(), "share": shares[v.name]} for v in state.router.variants.values()
        ],
    }


@router.post("/admin/weights")
async def update_weights(
    request: Request, state: State, authorization: Annotated[str | None, Header()] = None
) -> Response:
    token = state.settings.admin_token
    if token is None:
        return error_response(
            403, "weights cannot change: the endpoint was started without --admin-token"
        )
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return error_response(
            401, "a valid 'Authorization: Bearer <admin token>' header is required"
        )
    try:
        payload = parse_json(await read_body(request, 64 * 1024) or b"null")
    except ClientError as error:
        return error_response(error.status, error.message)
    # Either {"champion": 0.5, ...} or SageMaker's UpdateEndpointWeightsAndCapacities shape.
    if isinstance(payload, dict) and "DesiredWeightsAndCapacities" in payload:
        entries = payload["DesiredWeightsAndCapacities"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            return error_response(400, "DesiredWeightsAndCapacities must be a list of objects")
        payload = {e.get("VariantName"): e.get("DesiredWeight") for e in entries}
    if not isinstance(payload, dict) or not payload:
        return error_response(400, 'send {"variant name": weight, ...}')
    try:
        state.set_weights(payload)
    except CriticError as error:
        return error_response(400, str(error))
    return JSONResponse(
        {
            "weights": {n: v.weight for n, v in state.router.variants.items()},
            "shares": state.router.shares(),
        }
    )
