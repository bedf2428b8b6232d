"""SageMaker's hosting contract beside the invocations (critic.serving.invocations):

GET  /ping                   200 once every variant's model is loaded
GET  /execution-parameters   how SageMaker Batch Transform should call us
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from critic.serving.codec import MAX_BODY_BYTES
from critic.serving.http import error_response
from critic.serving.state import State

router = APIRouter()


@router.get("/ping")
async def ping(state: State) -> Response:
    if not state.ready:
        return error_response(503, "models are still loading")
    return Response(status_code=200)


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
