"""The page in front of a SageMaker endpoint: ``critic web --sagemaker-endpoint NAME``.

The same page, feedback and A/B view as ``critic serve`` (critic.web), answered by a deployed
endpoint instead of models loaded here::

    GET  /, /ab, /static/...          the page and the A/B view, unchanged
    POST /invocations                 forwarded to SageMaker's InvokeEndpoint (boto3)
    POST /api/feedback, GET /api/...  feedback and figures, kept here
    GET  /ping                        200 once started

The page keeps talking to ``/invocations`` as it does to a local endpoint. Each answer is the
endpoint's, with three things added that the page and the feedback need: the variant that
answered (SageMaker's ``InvokedProductionVariant``), its model, and an answer id issued here,
so that feedback can only be given on an answer this server passed on. An error of the
endpoint or of the way to it (a model error, throttling, a refused connection) is answered as
an HTTP error with a message, which the page shows as an error, never as a verdict.

The variants, their weights and models come from DescribeEndpoint at start-up (and again at
most every 30 s while the A/B view is open); a role that may only invoke the endpoint still
works, the variants then being learnt from the answers.

Composed here, beside critic.apps.endpoint, so that neither critic.web nor critic.sagemaker needs
the other.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from critic.apps.sagemaker_web_settings import ProxySettings
from critic.errors import CriticError
from critic.sagemaker.aws import Aws, aws_errors, client_error_message, connect, one_line
from critic.sagemaker.metrics import check_hours, endpoint_figures
from critic.sagemaker.runtime import model_error_message
from critic.serving.ab.answers import ID_HEADER, AnswerIds, new_key
from critic.serving.ab.feedback import open_feedback
from critic.serving.ab.votes import FeedbackBackend
from critic.serving.codec import (
    JSON,
    ClientError,
    media_type,
    wants_explanation,
)
from critic.serving.http import error_response, install_error_handlers, read_body
from critic.serving.invocations import (
    CUSTOM_ATTRIBUTES,
    INVOKED_VARIANT,
    TARGET_VARIANT,
    read_asked,
)
from critic.serving.metrics import NO_VARIANT, EndpointMetrics
from critic.web import routes as web

# What SageMaker's runtime answers when it throttles: the page should try again later.
THROTTLED = ("ThrottlingException", "ServiceUnavailable", "ServiceUnavailableException")


@dataclass
class RemoteModel:
    """What the page shows of the model behind a variant: its name."""

    name: str


@dataclass
class RemoteVariant:
    """A production variant of the endpoint, as the page's routes read a local one."""

    name: str
    weight: float | None
    """None when DescribeEndpoint could not be read: the traffic is SageMaker's to share."""
    predictor: RemoteModel  # the attribute name critic.serving.variants.Variant has


class RemoteVariants:
    """The endpoint's variants, read side of :class:`critic.serving.variants.VariantRouter`."""

    def __init__(self, variants: list[RemoteVariant] | None = None):
        self.variants = {variant.name: variant for variant in variants or []}

    @property
    def names(self) -> list[str]:
        return list(self.variants)

    def get(self, name: str) -> RemoteVariant:
        try:
            return self.variants[name]
        except KeyError:
            known = ", ".join(self.variants) or "none answered yet"
            raise CriticError(f"no variant {name!r}; variants: {known}") from None

    def learn(self, name: str, model: str | None) -> RemoteVariant:
        """The variant that just answered; a new one is added, a model name filled in."""
        variant = self.variants.get(name)
        if variant is None:
            variant = self.variants[name] = RemoteVariant(name, None, RemoteModel(model or name))
        elif model and variant.predictor.name != model:
            variant.predictor = RemoteModel(model)
        return variant

    def shares(self) -> dict[str, float | None]:
        weights = [v.weight for v in self.variants.values()]
        total = sum(w for w in weights if w is not None)
        if None in weights or total <= 0:
            return {name: None for name in self.variants}
        return {name: (v.weight or 0.0) / total for name, v in self.variants.items()}


@dataclass
class ProxyState:
    """What the page's routes read (as they read critic.serving.state.EndpointState), and the
    runtime client that answers the reviews."""

    settings: ProxySettings
    router: RemoteVariants
    runtime: Any
    metrics: EndpointMetrics = field(default_factory=EndpointMetrics)
    feedback: FeedbackBackend | None = None
    answers: AnswerIds = field(default_factory=lambda: AnswerIds(new_key()))
    ready: bool = False
    aws: Aws | None = None
    described_at: float | None = None
    """When DescribeEndpoint last answered (monotonic); None if it never has: no refresh."""
    refresh_s: float = 30.0
    _refreshing: bool = False
    cloudwatch_s: float = 60.0
    """How long CloudWatch's figures are kept before they are read again (they move by the
    minute, and each read is billed)."""
    _cloudwatch: dict = field(default_factory=dict)
    """hours -> (when read, monotonic; the figures)."""

    def cloudwatch_figures(self, hours: float) -> dict:
        """SageMaker's own per-variant figures over the last ``hours`` (critic.sagemaker.metrics),
        read at most every ``cloudwatch_s``."""
        kept = self._cloudwatch.get(hours)
        if kept is not None and time.monotonic() - kept[0] < self.cloudwatch_s:
            return kept[1]
        if self.aws is None:
            raise CriticError("no AWS session: SageMaker's figures cannot be read")
        figures = endpoint_figures(self.aws, self.settings.endpoint_name, self.router.names, hours)
        self._cloudwatch[hours] = (time.monotonic(), figures)
        return figures

    # In front of SageMaker there are no online counts kept across restarts (SageMaker's
    # CloudWatch metrics have them), no shadow variants and no capture here (SageMaker's own
    # shadow tests and DataCaptureConfig): the page's view of them is empty.
    def earlier_counts(self) -> None:
        return None

    def shadow_names(self) -> list[str]:
        return []  # SageMaker's shadow variants answer nobody here, so nothing can score them

    async def shadow_view(self) -> dict:
        return {"workers": 1, "shadows": [], "capture": None}

    def sync_weights(self) -> None:
        """Take up the weights SageMaker reports now (after an update-weights): read again at
        most every ``refresh_s``, in a thread, so that no request waits on DescribeEndpoint;
        the A/B view shows the change on its next refresh."""
        if self.described_at is None or self._refreshing or self.aws is None:
            return
        if time.monotonic() - self.described_at < self.refresh_s:
            return
        self._refreshing = True
        asyncio.get_running_loop().run_in_executor(None, self._refresh)

    def _refresh(self) -> None:
        try:
            fresh = describe_variants(self.aws, self.settings.endpoint_name, log=lambda _: None)
            for name, variant in fresh.variants.items():
                known = self.router.variants.get(name)
                if known is None:
                    self.router.variants[name] = variant
                else:  # keep the model name an answer gave (critic's own, e.g. "lstm")
                    known.weight = variant.weight
        finally:
            self.described_at = time.monotonic()
            self._refreshing = False


def _client_config(timeout_s: float, attempts: int) -> Any:
    from botocore.config import Config

    from critic import __version__

    return Config(
        connect_timeout=min(10.0, timeout_s),
        read_timeout=timeout_s,
        retries={"mode": "standard", "max_attempts": attempts},
        user_agent_extra=f"critic/{__version__}",
    )


def describe_variants(aws: Aws, endpoint_name: str, log=print) -> RemoteVariants:
    """The endpoint's variants with their weights and model names, from DescribeEndpoint and
    DescribeEndpointConfig; no variants (learnt later) when these cannot be read."""
    try:
        with aws_errors(f"describing endpoint {endpoint_name}"):
            sagemaker = aws.session.client(
                "sagemaker", region_name=aws.region, config=_client_config(10.0, 1)
            )
            endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
            config = sagemaker.describe_endpoint_config(
                EndpointConfigName=endpoint["EndpointConfigName"]
            )
    except CriticError as error:
        log(f"web: {error}; the variants will be learnt from the answers")
        return RemoteVariants()
    models = {v["VariantName"]: v.get("ModelName") for v in config.get("ProductionVariants", [])}
    return RemoteVariants(
        [
            RemoteVariant(
                variant["VariantName"],
                float(variant.get("CurrentWeight", variant.get("DesiredWeight", 0.0))),
                RemoteModel(models.get(variant["VariantName"]) or variant["VariantName"]),
            )
            for variant in endpoint.get("ProductionVariants", [])
        ]
    )


def start_proxy(settings: ProxySettings, log=print) -> ProxyState:
    """Connect to the endpoint's runtime, read its variants, open the feedback store."""
    aws = connect(settings.region)
    with aws_errors("creating the sagemaker-runtime client"):
        runtime = aws.session.client(
            "sagemaker-runtime",
            region_name=aws.region,
            endpoint_url=settings.endpoint_url,
            config=_client_config(settings.timeout_s, 2),
        )
    variants = describe_variants(aws, settings.endpoint_name, log)
    path = settings.feedback_path()
    feedback = open_feedback(path) if path is not None else None
    answers = AnswerIds(feedback.answer_key if feedback is not None else new_key())
    state = ProxyState(settings, variants, runtime, feedback=feedback, answers=answers, aws=aws)
    state.described_at = time.monotonic() if variants.variants else None
    state.ready = True
    return state


@dataclass
class Forwarded:
    """InvokeEndpoint's answer, or the error to answer instead (``message`` set)."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    variant: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def forward(runtime: Any, endpoint_name: str, params: dict[str, Any]) -> Forwarded:
    """One blocking InvokeEndpoint call; every failure becomes an HTTP status and one line."""
    from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

    try:
        response = runtime.invoke_endpoint(EndpointName=endpoint_name, **params)
        body = response["Body"].read()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 502
        if code == "ModelError":
            original = error.response.get("OriginalStatusCode")
            # The model's own 4xx (an empty review, say) is the client's; anything else is not.
            status = original if isinstance(original, int) and 400 <= original < 500 else 502
            return Forwarded(status, message=model_error_message(endpoint_name, error))
        message = client_error_message(f"invoking endpoint {endpoint_name}", error)
        if code in THROTTLED:
            return Forwarded(503, message=message, headers={"Retry-After": "1"})
        return Forwarded(status if 400 <= status < 500 else 502, message=message)
    except ReadTimeoutError:
        return Forwarded(504, message=f"endpoint {endpoint_name} did not answer in time")
    except BotoCoreError as error:
        return Forwarded(502, message=one_line(f"endpoint {endpoint_name}: {error}"))
    return Forwarded(
        200,
        body,
        response.get("ContentType") or JSON,
        variant=response.get("InvokedProductionVariant"),
    )


def _annotate(
    state: ProxyState, answer: Forwarded, shares: dict[str, float | None], pinned: bool
) -> tuple[bytes, list[dict]]:
    """The answer's body with the variant, its model and an answer id per prediction added,
    when it is critic's JSON; other answers pass as they came. Each id says how SageMaker
    chose the variant: by the weights it reported when the request left (``shares``), or as
    the client named it (``pinned``)."""
    if media_type(answer.content_type) != JSON or answer.variant is None:
        return answer.body, []
    try:
        payload = json.loads(answer.body)
    except ValueError:
        return answer.body, []
    predictions = payload.get("predictions") if isinstance(payload, dict) else None
    if not isinstance(predictions, list) or not all(isinstance(p, dict) for p in predictions):
        return answer.body, []
    variant = state.router.learn(answer.variant, payload.get("model"))
    for prediction in predictions:
        if prediction.get("label") in ("positive", "negative"):
            prediction["id"] = state.answers.issue(
                variant.name, prediction["label"], shares.get(variant.name), pinned
            )
    payload.update(variant=variant.name, model=variant.predictor.name)
    return json.dumps(payload, ensure_ascii=False).encode(), predictions


async def forward_invocation(request: Request) -> Response:
    """The page's ``POST /invocations``, answered by the SageMaker endpoint."""
    state: ProxyState = request.app.state.endpoint
    headers = request.headers
    started = time.perf_counter()
    try:
        body = await read_body(request)
        # The endpoint's own checks (critic.serving.invocations), before anything is sent on.
        asked = read_asked(
            headers.get(CUSTOM_ATTRIBUTES),
            headers.get(TARGET_VARIANT),
            request.query_params.get("explain"),
        )
    except ClientError as error:
        state.metrics.observe(NO_VARIANT, error.status, 0.0)
        return error_response(error.status, error.message)
    attributes, target = asked.attributes, asked.target_variant
    # SageMaker passes no query string to the container: explain travels as an attribute.
    if asked.explain and not wants_explanation(None, attributes):
        attributes = ";".join(filter(None, [attributes, "explain=true"]))
    params: dict[str, Any] = {
        "Body": body,
        "ContentType": headers.get("content-type") or JSON,
        "Accept": headers.get("accept") or JSON,
    }
    if target is not None:
        params["TargetVariant"] = target
    if attributes:
        params["CustomAttributes"] = attributes
    shares = state.router.shares()  # the weights as the request leaves, for its answer ids
    answer = await run_in_threadpool(forward, state.runtime, state.settings.endpoint_name, params)
    seconds = time.perf_counter() - started
    if answer.variant is not None and None not in shares.values():
        # What the sample-ratio check expects: SageMaker drew by these weights (or would have).
        state.metrics.routed(shares)
    if answer.message is not None:
        state.metrics.observe(answer.variant or NO_VARIANT, answer.status, seconds)
        return error_response(answer.status, answer.message, answer.headers)
    body_out, predictions = _annotate(state, answer, shares, target is not None)
    state.metrics.observe(answer.variant or NO_VARIANT, 200, seconds, predictions)
    out_headers = {INVOKED_VARIANT: answer.variant} if answer.variant else {}
    if len(predictions) == 1 and "id" in predictions[0]:
        out_headers[ID_HEADER] = predictions[0]["id"]
    return Response(body_out, media_type=answer.content_type, headers=out_headers)


def create_proxy_app(settings: ProxySettings, log=print) -> FastAPI:
    """The page, feedback and A/B view, with reviews answered by the SageMaker endpoint."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.endpoint = start_proxy(settings, log)
        yield

    app = FastAPI(
        title="critic page for a SageMaker endpoint",
        description=f"Movie-review sentiment, answered by endpoint {settings.endpoint_name}.",
        lifespan=lifespan,
        docs_url=None,  # critic.web serves /docs itself, offline
        redoc_url=None,
    )
    app.add_api_route("/invocations", forward_invocation, methods=["POST"])
    app.add_api_route("/ping", _ping, methods=["GET"])
    app.add_api_route("/api/ab/sagemaker", _sagemaker_figures, methods=["GET"])
    web.mount(app)
    install_error_handlers(app)

    return app


async def _sagemaker_figures(request: Request) -> Response:
    """``GET /api/ab/sagemaker?hours=3``: what SageMaker measured of each variant, from
    CloudWatch, beside what this server saw (``/api/ab``)."""
    state = request.app.state.endpoint
    try:
        hours = check_hours(float(request.query_params.get("hours", "3")))
    except ValueError:
        return error_response(400, "hours must be a number, e.g. ?hours=3")
    except CriticError as error:
        return error_response(400, str(error))
    try:
        figures = await run_in_threadpool(state.cloudwatch_figures, hours)
    except CriticError as error:  # no permission to read CloudWatch, say: the page says so
        return error_response(502, str(error))
    return Response(json.dumps(figures), media_type="application/json")


async def _ping(request: Request) -> Response:
    ready = getattr(request.app.state, "endpoint", None) is not None
    return Response(status_code=200) if ready else error_response(503, "starting")


def serve_proxy(settings: ProxySettings, log=print) -> None:
    """Serve the page until Ctrl-C or SIGTERM."""
    import uvicorn

    uvicorn.run(
        create_proxy_app(settings, log), host=settings.host, port=settings.port, log_level="warning"
    )
