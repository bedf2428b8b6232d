"""Changing the endpoint while it runs (bearer token):

POST /admin/weights   the variants' traffic weights, ``{"name": weight}`` or SageMaker's
                      UpdateEndpointWeightsAndCapacities shape
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from critic.errors import CriticError
from critic.serving.codec import ClientError, parse_json
from critic.serving.http import error_response, read_body
from critic.serving.state import State

router = APIRouter()


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
