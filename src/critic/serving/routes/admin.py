"""Changing the endpoint while it runs (bearer token):

POST /admin/weights                  the variants' traffic weights, ``{"name": weight}`` or
                                     SageMaker's UpdateEndpointWeightsAndCapacities shape
POST /admin/shadows/{name}/promote   a shadow becomes a live variant in every worker, without
                                     a restart (``{"weight": w}``, the champion's by default)
POST /admin/rollout                  a variant's share raised in steps under guardrails
                                     (``{"variant": ..., "steps": [...], "bake_s": ...}``)
POST /admin/rollout/stop             stop the running rollout (``{"roll_back": true}``)
GET  /rollout                        the running rollout (or the latest), no token needed
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from critic.errors import CriticError
from critic.serving.ab.rollouts import RolloutError, RolloutPlan
from critic.serving.codec import ClientError, parse_json
from critic.serving.http import error_response, read_body
from critic.serving.state import State

router = APIRouter()


def refused(state, authorization: str | None, what: str) -> Response | None:
    """The answer to a request without the admin token; None when it has it."""
    token = state.settings.admin_token
    if token is None:
        return error_response(
            403, f"{what} cannot change: the endpoint was started without --admin-token"
        )
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return error_response(
            401, "a valid 'Authorization: Bearer <admin token>' header is required"
        )
    return None


async def admin_request(
    request: Request, state, authorization: str | None, what: str, empty: bytes
) -> tuple[object, Response | None]:
    """An admin request's JSON body (``empty`` standing for no body), or the answer refusing
    it: no token, the wrong token, a body that is not JSON."""
    denied = refused(state, authorization, what)
    if denied is not None:
        return None, denied
    try:
        return parse_json(await read_body(request, 64 * 1024) or empty), None
    except ClientError as error:
        return None, error_response(error.status, error.message)


@router.post("/admin/weights")
async def update_weights(
    request: Request, state: State, authorization: Annotated[str | None, Header()] = None
) -> Response:
    payload, denied = await admin_request(request, state, authorization, "weights", b"null")
    if denied is not None:
        return denied
    # Either {"champion": 0.5, ...} or SageMaker's UpdateEndpointWeightsAndCapacities shape.
    if isinstance(payload, dict) and "DesiredWeightsAndCapacities" in payload:
        entries = payload["DesiredWeightsAndCapacities"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            return error_response(400, "DesiredWeightsAndCapacities must be a list of objects")
        payload = {e.get("VariantName"): e.get("DesiredWeight") for e in entries}
    if not isinstance(payload, dict) or not payload:
        return error_response(400, 'send {"variant name": weight, ...}')
    if state.rollouts is not None:
        running = await asyncio.to_thread(state.rollouts.store.running)
        if running is not None:
            return error_response(
                409,
                f"a rollout of {running.variant} is moving the weights: stop it first "
                "(POST /admin/rollout/stop)",
            )
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


@router.post("/admin/shadows/{name}/promote")
async def promote_shadow(
    name: str, request: Request, state: State, authorization: Annotated[str | None, Header()] = None
) -> Response:
    payload, denied = await admin_request(request, state, authorization, "variants", b"{}")
    if denied is not None:
        return denied
    if not isinstance(payload, dict) or set(payload) - {"weight"}:
        return error_response(400, 'send {} or {"weight": w}')
    if name in state.router.variants:
        return error_response(409, f"{name!r} is already a live variant")
    if name not in state.shadow_names():
        known = ", ".join(state.shadow_names()) or "none"
        return error_response(404, f"no shadow {name!r}; shadows: {known}")
    try:
        await state.promote(name, payload.get("weight"))
    except CriticError as error:
        return error_response(409 if "already" in str(error) else 400, str(error))
    return JSONResponse(
        {
            "promoted": name,
            "weights": {n: v.weight for n, v in state.router.variants.items()},
            "shares": state.router.shares(),
        }
    )


async def rollout_request(
    request: Request, state, authorization: str | None, empty: bytes
) -> tuple[object, Response | None]:
    """A rollout route's JSON body, or the answer refusing it: what admin_request refuses,
    and any rollout where there is no feedback file to keep its state in."""
    payload, denied = await admin_request(request, state, authorization, "rollouts", empty)
    if denied is None and state.rollouts is None:
        denied = error_response(
            409,
            "rollouts keep their state in the endpoint's SQLite feedback file: start it with "
            "--feedback-db FILE (not off, nor a dynamodb:// table)",
        )
    return payload, denied


@router.post("/admin/rollout")
async def start_rollout(
    request: Request, state: State, authorization: Annotated[str | None, Header()] = None
) -> Response:
    payload, denied = await rollout_request(request, state, authorization, b"null")
    if denied is not None:
        return denied
    try:
        plan = RolloutPlan.from_dict(payload)
        if plan.variant not in state.router.variants:
            known = ", ".join(state.router.variants)
            return error_response(404, f"no variant {plan.variant!r}; variants: {known}")
        if state.settings.auto_weights_s:
            return error_response(
                409, "--auto-weights moves the weights already; a rollout would fight it"
            )
        rollout = await asyncio.to_thread(state.rollouts.begin, plan)
    except RolloutError as error:
        status = 409 if "under way" in str(error) else 400
        return error_response(status, str(error))
    return JSONResponse(rollout.to_dict(), status_code=201)


@router.post("/admin/rollout/stop")
async def stop_rollout(
    request: Request, state: State, authorization: Annotated[str | None, Header()] = None
) -> Response:
    payload, denied = await rollout_request(request, state, authorization, b"{}")
    if denied is not None:
        return denied
    if not isinstance(payload, dict) or set(payload) - {"roll_back"}:
        return error_response(400, 'send {} or {"roll_back": true|false}')
    roll_back = payload.get("roll_back", True)
    if not isinstance(roll_back, bool):
        return error_response(400, "roll_back must be true or false")
    try:
        rollout = await asyncio.to_thread(state.rollouts.end, "operator", roll_back)
    except RolloutError as error:
        return error_response(409, str(error))
    return JSONResponse(rollout.to_dict())


@router.get("/rollout")
async def rollout_view(state: State) -> Response:
    """The running rollout with its latest figures, else the latest one; null when none."""
    if state.rollouts is None:
        return JSONResponse({"rollout": None, "enabled": False})
    watch = state.rollouts
    latest = await asyncio.to_thread(watch.store.latest, 1)
    shown = latest[0].to_dict(time.time()) if latest else None
    figures = watch.last if shown and watch.last and watch.last["rollout"] == shown["id"] else None
    return JSONResponse({"rollout": shown, "figures": figures, "enabled": True})
