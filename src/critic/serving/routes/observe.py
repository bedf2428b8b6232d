"""What the endpoint is doing, for people and scrapers:

GET  /metrics    Prometheus text format
GET  /variants   variants, weights and traffic shares, which worker answered, the workers
"""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter
from fastapi.responses import Response

from critic.serving.state import State

router = APIRouter()


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
        # Since when each worker serves and how many died: a restart is otherwise invisible
        # (the supervisor starts a new worker within seconds and the endpoint answers on).
        "workers": await asyncio.to_thread(state.workers),
        "variants": [
            {**v.describe(), "share": shares[v.name]} for v in state.router.variants.values()
        ],
    }
