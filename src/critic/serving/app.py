"""The local endpoint: SageMaker's hosting contract on FastAPI.

    GET  /ping                              200 once every variant's model is loaded
    POST /invocations                       the container contract (what SageMaker calls);
                                            ?explain=true adds each review's word weights
    POST /endpoints/{name}/invocations      the SageMaker Runtime API (what boto3 calls)
    GET  /metrics                           Prometheus text format
    GET  /variants                          variants, weights and traffic shares
    POST /admin/weights                     change weights at run time (bearer token)
    GET  /, /ab, /api/feedback...           the page, the A/B view, feedback (critic.web)

Models are loaded once, at start-up (lifespan). Each request is decoded and checked on the
event loop, then its reviews go to the chosen variant's micro-batcher, which runs the model in
a thread of its own. Every client mistake is a 4xx with a JSON ``message``; never a 500.
"""

from __future__ import annotations

import hmac
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from critic.errors import CriticError
from critic.serving.batching import MicroBatcher
from critic.serving.codec import (
    ClientError,
    decode_reviews,
    encode_error,
    encode_predictions,
    negotiate,
    wants_explanation,
)
from critic.serving.http import error_response, read_body
from critic.serving.metrics import NO_VARIANT, EndpointMetrics
from critic.serving.settings import ServerSettings
from critic.serving.variants import VariantRouter, VariantSpec, load_variants
from critic.web import routes as web
from critic.web.feedback import FEEDBACK_FILE, FeedbackStore

TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"


@dataclass
class EndpointState:
    """What every request needs: made once at start-up, injected into the routes."""

    settings: ServerSettings
    router: VariantRouter
    batchers: dict[str, MicroBatcher]
    metrics: EndpointMetrics
    feedback: FeedbackStore | None = None
    ready: bool = False
    started: float = field(default_factory=time.time)


@dataclass
class Invocation:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]


async def invocations(
    state: EndpointState,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    target_variant: str | None = None,
    custom_attributes: str | None = None,
    explain: bool = False,
) -> Invocation:
    """Answer one invocation: decode, route, predict (micro-batched), encode."""
    started = time.perf_counter()
    variant_name = NO_VARIANT
    echo = {CUSTOM_ATTRIBUTES: custom_attributes} if custom_attributes else {}
    try:
        response_type = negotiate(accept)
        reviews = decode_reviews(body, content_type, state.settings.max_reviews)
        try:
            variant = state.router.choose(target_variant)
        except CriticError as error:
            raise ClientError(400, str(error)) from None
        variant_name = variant.name
        predictions = await state.batchers[variant.name].submit(reviews, explain=explain)
    except ClientError as error:
        state.metrics.observe(variant_name, error.status, time.perf_counter() - started)
        headers = {
            **echo,
            **({INVOKED_VARIANT: variant_name} if variant_name != NO_VARIANT else {}),
        }
        return Invocation(
            error.status, encode_error(error.status, error.message), "application/json", headers
        )
    state.metrics.observe(variant_name, 200, time.perf_counter() - started, predictions)
    extra = {"variant": variant_name, "model": variant.predictor.name}
    body_out = encode_predictions(predictions, response_type, extra)
    return Invocation(200, body_out, response_type, {INVOKED_VARIANT: variant_name, **echo})


# --- routes -------------------------------------------------------------------------------


def get_state(request: Request) -> EndpointState:
    return request.app.state.endpoint


State = Annotated[EndpointState, Depends(get_state)]
router = APIRouter()


async def _invoke(
    request: Request, state: EndpointState, target: str | None, attributes: str | None
) -> Response:
    try:
        body = await read_body(request)
        explain = wants_explanation(request.query_params.get("explain"), attributes)
    except ClientError as error:
        state.metrics.observe(NO_VARIANT, error.status, 0.0)
        return error_response(error.status, error.message)
    result = await invocations(
        state,
        body,
        request.headers.get("content-type"),
        request.headers.get("accept"),
        target,
        attributes,
        explain=explain,
    )
    if result.status >= 400:
        return error_response(result.status, json.loads(result.body)["message"], result.headers)
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


@router.post("/invocations")
async def invoke_container(
    request: Request,
    state: State,
    target: Annotated[str | None, Header(alias=TARGET_VARIANT)] = None,
    attributes: Annotated[str | None, Header(alias=CUSTOM_ATTRIBUTES)] = None,
) -> Response:
    return await _invoke(request, state, target, attributes)


@router.post("/endpoints/{endpoint_name}/invocations")
async def invoke_runtime(
    endpoint_name: str,
    request: Request,
    state: State,
    target: Annotated[str | None, Header(alias=TARGET_VARIANT)] = None,
    attributes: Annotated[str | None, Header(alias=CUSTOM_ATTRIBUTES)] = None,
) -> Response:
    if endpoint_name != state.settings.endpoint_name:
        return error_response(
            400,
            f"Endpoint {endpoint_name} not found; this server is endpoint {state.settings.endpoint_name}",
        )
    return await _invoke(request, state, target, attributes)


@router.get("/metrics")
async def metrics(state: State) -> Response:
    for name, variant in state.router.variants.items():
        state.metrics.weight.labels(name).set(variant.weight)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


@router.get("/variants")
async def variants(state: State) -> dict:
    shares = state.router.shares()
    return {
        "endpoint": state.settings.endpoint_name,
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
        payload = json.loads(await read_body(request, 64 * 1024) or b"null")
    except ClientError as error:
        return error_response(error.status, error.message)
    except ValueError as error:
        return error_response(400, f"the body is not valid JSON ({error})")
    # Either {"champion": 0.5, ...} or SageMaker's UpdateEndpointWeightsAndCapacities shape.
    if isinstance(payload, dict) and "DesiredWeightsAndCapacities" in payload:
        entries = payload["DesiredWeightsAndCapacities"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            return error_response(400, "DesiredWeightsAndCapacities must be a list of objects")
        payload = {e.get("VariantName"): e.get("DesiredWeight") for e in entries}
    if not isinstance(payload, dict) or not payload:
        return error_response(400, 'send {"variant name": weight, ...}')
    try:
        state.router.set_weights(payload)
    except CriticError as error:
        return error_response(400, str(error))
    return JSONResponse(
        {
            "weights": {n: v.weight for n, v in state.router.variants.items()},
            "shares": state.router.shares(),
        }
    )


# --- the application ----------------------------------------------------------------------


def feedback_path(specs: list[VariantSpec], settings: ServerSettings) -> Path | None:
    """Where feedback is kept: the setting, else beside the first variant's bundle."""
    if settings.feedback_db == "off":
        return None
    if settings.feedback_db:
        return Path(settings.feedback_db)
    return specs[0].bundle.resolve().parent / FEEDBACK_FILE


def create_app(specs: list[VariantSpec], settings: ServerSettings | None = None) -> FastAPI:
    """The endpoint for these variants; models load when the app starts (lifespan)."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        variant_router = load_variants(specs, device=settings.device, seed=settings.seed)
        metrics_ = EndpointMetrics()
        batchers = {}
        for name, variant in variant_router.variants.items():
            batchers[name] = MicroBatcher(
                variant.predictor.predict,
                max_batch=settings.max_batch,
                max_wait_ms=settings.batch_wait_ms,
                name=name,
                on_batch=metrics_.batch_size.labels(name).observe,
            )
            batchers[name].start()
            metrics_.weight.labels(name).set(variant.weight)
        path = feedback_path(specs, settings)
        feedback = FeedbackStore(path) if path is not None else None
        app.state.endpoint = EndpointState(
            settings, variant_router, batchers, metrics_, feedback=feedback, ready=True
        )
        try:
            yield
        finally:
            app.state.endpoint.ready = False
            for batcher in batchers.values():
                await batcher.stop()

    app = FastAPI(
        title="critic endpoint",
        description="Movie-review sentiment with Amazon SageMaker's hosting contract.",
        lifespan=lifespan,
    )
    app.include_router(router)
    web.mount(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        return error_response(422, f"invalid request: {first.get('msg', 'bad parameters')}")

    return app
