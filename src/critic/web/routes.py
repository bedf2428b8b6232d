"""The page, the A/B view and the feedback API, served by the endpoint itself.

    GET  /                        the page: write a review, see what the model thinks
    GET  /ab                      the A/B view: per variant traffic, latency, answers, feedback
    GET  /static/...              the page's script and style (no build step)
    POST /api/feedback            "right" / "wrong" on one answer, stored in SQLite
    GET  /api/feedback/summary    per variant: feedback counts, accuracy, 95% interval
    GET  /api/ab                  what the A/B view shows, as JSON

The page asks ``POST /invocations?explain=true`` like any other client: it has no API of its
own for predictions. The page sits above the endpoint: it reads the endpoint's state (its
variants, metrics and feedback store) through the same ``State`` dependency as the endpoint's
routes; nothing in critic.serving imports this package, and critic.endpoint composes both.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from critic.errors import CriticError
from critic.serving.codec import ClientError
from critic.serving.feedback import FeedbackError
from critic.serving.http import error_response, read_body
from critic.serving.state import State

STATIC = Path(__file__).with_name("static")
MAX_FEEDBACK_BYTES = 256 * 1024
MAX_REVIEW_CHARS = 100_000

# The pages load only their own script and style and talk only to this server: even if a
# review's text were ever put into the page as HTML, the browser would refuse to run it.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class Feedback(BaseModel):
    """One verdict on one answer, as the page (or any client) sends it."""

    review: str = Field(min_length=1, max_length=MAX_REVIEW_CHARS)
    variant: str = Field(min_length=1, max_length=63)
    label: Literal["positive", "negative"]
    feedback: Literal["right", "wrong"]
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    rating: int | None = Field(default=None, ge=1, le=10)

    @field_validator("review")
    @classmethod
    def not_blank(cls, review: str) -> str:
        if not review.strip():
            raise ValueError("the review is empty")
        return review


router = APIRouter()


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers=PAGE_HEADERS)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return _page("index.html")


@router.get("/ab", include_in_schema=False)
async def ab_page() -> FileResponse:
    return _page("ab.html")


@router.post("/api/feedback", status_code=201)
async def post_feedback(request: Request, state: State) -> Response:
    if state.feedback is None:
        return error_response(503, "feedback is off on this endpoint")
    try:
        body = await read_body(request, MAX_FEEDBACK_BYTES)
    except ClientError as error:
        return error_response(error.status, error.message)
    try:
        feedback = Feedback.model_validate_json(body or b"null")
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        return error_response(422, f"invalid feedback: {where}: {first.get('msg', 'invalid')}")
    try:
        variant = state.router.get(feedback.variant)
    except CriticError as error:
        return error_response(400, str(error))
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
        )
    except FeedbackError as error:
        return error_response(503, f"feedback could not be stored: {error}")
    return JSONResponse({"id": row, "variant": variant.name}, status_code=201)


@router.get("/api/feedback/summary")
async def feedback_summary(state: State) -> Response:
    if state.feedback is None:
        return error_response(503, "feedback is off on this endpoint")
    summary = await run_in_threadpool(state.feedback.summary, state.router.names)
    return JSONResponse({"confidence": 0.95, "variants": summary})


@router.get("/api/ab")
async def ab_stats(state: State) -> Response:
    shares = state.router.shares()
    feedback = {}
    if state.feedback is not None:
        for entry in await run_in_threadpool(state.feedback.summary, state.router.names):
            feedback[entry["variant"]] = entry
    variants = []
    for name, variant in state.router.variants.items():
        variants.append(
            {
                "name": name,
                "model": variant.predictor.name,
                "weight": variant.weight,
                "share": shares[name],
                **state.metrics.snapshot(name),
                "feedback": feedback.get(name),
            }
        )
    return JSONResponse(
        {
            "endpoint": state.settings.endpoint_name,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "feedback_enabled": state.feedback is not None,
            "variants": variants,
        }
    )


def mount(app) -> None:
    """Add the page, the A/B view, their assets and the feedback API to an app."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
