"""The page, the A/B view and the feedback API, served by the endpoint itself.

    GET  /                        the page: write a review, see what the model thinks
    GET  /ab                      the A/B view: per variant traffic, latency, answers, feedback
    GET  /static/...              the page's script and style (no build step)
    POST /api/feedback            "right" / "wrong" on one answer the endpoint gave (its id),
                                  once, from this site only; stored in SQLite
    GET  /api/feedback/summary    per variant: feedback counts, accuracy, 95% interval
    GET  /api/ab                  what the A/B view shows, as JSON (with the decision)
    GET  /api/ab/decision         each challenger against the champion: the always-valid
                                  test, the votes still needed, the verdict
                                  (?min_difference=0.05&alpha=0.05&power=0.8)
    GET  /api/ab/shadows          its shadow variants and data capture (critic.web.shadows)

The page asks ``POST /invocations?explain=true`` like any other client: it has no API of its
own for predictions. The page sits above the endpoint: it reads the endpoint's state (its
variants, metrics and feedback store) through the same ``State`` dependency as the endpoint's
routes; nothing in critic.serving imports this package, and critic.apps.endpoint composes both.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from critic.errors import CriticError
from critic.evaluation.abtest import DecisionParameters, champion_of, decide
from critic.serving.ab.answers import allocation
from critic.serving.ab.counts import added, live_totals, summary
from critic.serving.ab.feedback import DuplicateFeedback, FeedbackError
from critic.serving.codec import JSON, ClientError, media_type, parse_json
from critic.serving.http import error_response, read_body
from critic.web import docs, shadows
from critic.web.pages import STATIC, html_page
from critic.web.state import Page, PageState

MAX_FEEDBACK_BYTES = 256 * 1024
MAX_REVIEW_CHARS = 100_000


class Feedback(BaseModel):
    """One verdict on one answer, as the page (or any client) sends it."""

    review: str = Field(min_length=1, max_length=MAX_REVIEW_CHARS)
    variant: str = Field(min_length=1, max_length=63)
    label: Literal["positive", "negative"]
    feedback: Literal["right", "wrong"]
    answer_id: str = Field(min_length=1, max_length=64)
    """The ``id`` of the answer judged, as the endpoint gave it."""
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    rating: int | None = Field(default=None, ge=1, le=10)

    @field_validator("review")
    @classmethod
    def not_blank(cls, review: str) -> str:
        if not review.strip():
            raise ValueError("the review is empty")
        return review


router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return html_page("index.html")


@router.get("/ab", include_in_schema=False)
async def ab_page() -> FileResponse:
    return html_page("ab.html")


def _cross_site(request: Request) -> str | None:
    """Why a request comes from another site, if it does.

    A browser names the requesting site in Sec-Fetch-Site (and Origin on every POST): any
    page a user visits could otherwise post feedback through the user's browser. A client
    that is not a browser (curl, a script) sends neither and is let through; only the page's
    own origin, or no browser at all, may vote.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site!r}"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin in ("null", "") or urlsplit(origin).netloc != host:
            return f"Origin {origin!r} is not this endpoint ({host})"
    return None


async def _read_feedback(request: Request) -> Feedback:
    """The feedback in the body, or a ClientError: JSON only, so that a browser on another
    site must ask first (a CORS preflight this server never grants)."""
    if media_type(request.headers.get("content-type")) != JSON:
        raise ClientError(415, "feedback must be sent as application/json")
    payload = parse_json(await read_body(request, MAX_FEEDBACK_BYTES) or b"null")
    try:
        return Feedback.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        raise ClientError(
            422, f"invalid feedback: {where}: {first.get('msg', 'invalid')}"
        ) from None


@router.post("/api/feedback", status_code=201)
async def post_feedback(request: Request, state: Page) -> Response:
    if state.feedback is None:
        return error_response(503, "feedback is off on this endpoint")
    refused = _cross_site(request)
    if refused is not None:
        return error_response(403, f"feedback from another site is refused: {refused}")
    try:
        feedback = await _read_feedback(request)
        variant = state.router.get(feedback.variant)
    except ClientError as error:
        return error_response(error.status, error.message)
    except CriticError as error:
        return error_response(400, str(error))
    if not state.answers.check(feedback.answer_id, variant.name, feedback.label):
        return error_response(
            403, "answer_id is not an answer this endpoint gave for that variant and label"
        )
    share, pinned = allocation(feedback.answer_id)
    try:
        row = await run_in_threadpool(
            state.feedback.record,
            review=feedback.review,
            variant=variant.name,
            model=variant.predictor.name,
            label=feedback.label,
            probability=feedback.probability,
            rating=feedback.rating,
            feedback=feedback.feedback,
            answer_id=feedback.answer_id,
            share=share,
            pinned=pinned,
        )
    except DuplicateFeedback as error:
        return error_response(409, str(error))
    except FeedbackError as error:
        return error_response(503, f"feedback could not be stored: {error}")
    return JSONResponse({"id": row, "variant": variant.name}, status_code=201)


@router.get("/api/feedback/summary")
async def feedback_summary(state: Page) -> Response:
    if state.feedback is None:
        return error_response(503, "feedback is off on this endpoint")
    summary = await run_in_threadpool(state.feedback.summary, state.router.names)
    return JSONResponse({"confidence": 0.95, "variants": summary})


@router.get("/api/ab")
async def ab_stats(request: Request, state: Page) -> Response:
    try:
        parameters = _decision_parameters(request)
    except ClientError as error:
        return error_response(error.status, error.message)
    state.sync_weights()
    shares = state.router.shares()
    feedback = {}
    if state.feedback is not None:
        for entry in await run_in_threadpool(state.feedback.summary, state.router.names):
            feedback[entry["variant"]] = entry
    counts = await run_in_threadpool(_all_runs, state)
    variants = []
    for name, variant in state.router.variants.items():
        variants.append(
            {
                "name": name,
                "model": variant.predictor.name,
                "weight": variant.weight,
                "share": shares[name],
                **state.metrics.snapshot(name),
                **_counts_of(counts, name),
                "feedback": feedback.get(name),
            }
        )
    decision = None
    if state.feedback is not None:
        decision = await run_in_threadpool(_decision, state, parameters)
    return JSONResponse(
        {
            "endpoint": state.settings.endpoint_name,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "feedback_enabled": state.feedback is not None,
            "variants": variants,
            "decision": decision,
        }
    )


# --- Counts across restarts: earlier runs from the SQLite file, this one live ---------------


def _all_runs(state: PageState) -> dict | None:
    earlier = state.earlier_counts()
    if earlier is None:
        return None
    return added(earlier, live_totals(state.metrics))


def _counts_of(counts: dict | None, variant: str) -> dict:
    """The variant's counts over every run of the endpoint (the live window's latency
    percentiles stay as they are: they describe the recent requests)."""
    if counts is None:
        return {}
    total = summary(counts.get(variant, {}))
    return {
        "requests": total["requests"],
        "errors": total["errors"],
        "reviews": total["reviews"],
        "positive_share": total["positive_share"],
        "all_runs_latency_ms": total["latency_ms"],
    }


# --- The decision: each challenger against the champion -----------------------------------


def _decision_parameters(request: Request) -> DecisionParameters:
    """The test's parameters from the query string (defaults where absent), or a 422."""
    values = {}
    for name in ("min_difference", "alpha", "power"):
        raw = request.query_params.get(name)
        if raw is None:
            continue
        try:
            values[name] = float(raw)
        except ValueError:
            raise ClientError(422, f"{name} must be a number, got {raw!r}") from None
    try:
        return DecisionParameters(**values)
    except ValueError as error:
        raise ClientError(422, str(error)) from None


def _decision(state: PageState, parameters: DecisionParameters) -> dict:
    weights = {name: variant.weight for name, variant in state.router.variants.items()}
    votes = state.feedback.votes(list(weights))
    # Votes on answers a client asked a variant for by name are no part of the experiment.
    kept = [i for i, pinned in enumerate(votes.pinned) if not pinned]
    live = live_totals(state.metrics)  # this start of the endpoint: requests and expected
    every_run = _all_runs(state) or live  # the span of the votes, where counts are kept
    requests = {
        "observed": {name: live.get(name, {}).get("requests", 0.0) for name in weights},
        "expected": {name: live.get(name, {}).get("expected", 0.0) for name in weights},
        "voted_on": {name: every_run.get(name, {}).get("requests", 0.0) for name in weights},
    }
    champion = champion_of(weights) if weights else None
    paired = {
        shadow: state.feedback.shadow_pairs(shadow, champion)
        for shadow in (state.shadow_names() if champion else [])
    }
    return decide(
        weights,
        [votes.variants[i] for i in kept],
        [votes.right[i] for i in kept],
        parameters,
        shares=[votes.shares[i] for i in kept],
        requests=requests,
        left_out=len(votes.variants) - len(kept),
        paired=paired,
    )


@router.get("/api/ab/decision")
async def ab_decision(request: Request, state: Page) -> Response:
    if state.feedback is None:
        return error_response(
            503, "feedback is off on this endpoint: there is nothing to decide on"
        )
    try:
        parameters = _decision_parameters(request)
    except ClientError as error:
        return error_response(error.status, error.message)
    state.sync_weights()
    return JSONResponse(await run_in_threadpool(_decision, state, parameters))


def mount(app) -> None:
    """Add the page, the A/B view, their assets and the feedback API to an app."""
    app.include_router(router)
    app.include_router(shadows.router)
    docs.mount(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
