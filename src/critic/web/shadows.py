"""The A/B view's shadow section, as JSON: kept apart from the variants' own figures.

    GET /api/ab/shadows    per shadow variant: copies, answers, errors, drops, latency,
                           agreement with the live answers and the latest disagreements;
                           and the data capture's counts when capture is on

Counts are this worker process's (with ``--workers N`` each worker has its own shadows; the
Prometheus series ``critic_shadow_*`` on /metrics add up every worker).
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from critic.serving.state import State

router = APIRouter()


@router.get("/api/ab/shadows")
async def shadow_stats(state: State) -> JSONResponse:
    return JSONResponse(
        {
            "endpoint": state.settings.endpoint_name,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "shadows": state.shadows.describe() if state.shadows is not None else [],
            "capture": state.capture.describe() if state.capture is not None else None,
        }
    )
