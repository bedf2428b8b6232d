"""The A/B view's shadow section, as JSON: kept apart from the variants' own figures.

    GET /api/ab/shadows    per shadow variant: copies, answers, errors, drops, latency,
                           agreement with the live answers and the latest disagreements;
                           and the data capture's counts when capture is on

With ``--workers N`` every worker runs its own copy of each shadow (and its own capture
writer): the figures are those of all the workers together (critic.serving.workers);
``workers`` says how many answered for them.
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from critic.web.state import Page

router = APIRouter()


@router.get("/api/ab/shadows")
async def shadow_stats(state: Page) -> JSONResponse:
    view = await state.shadow_view()
    return JSONResponse(
        {
            "endpoint": state.settings.endpoint_name,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **view,
        }
    )
