"""The API documentation, served from critic itself: nothing to download, nothing from a CDN.

    GET /docs            Swagger UI over /openapi.json, under the page's security headers
    GET /docs/assets/... its script and style, from the fastapi-offline package

FastAPI's own /docs loads Swagger UI from a public CDN and starts it with an inline script:
offline the page stays blank, and online it runs a third party's script on this origin, which
the page's Content-Security-Policy exists to prevent. The apps turn FastAPI's off
(``docs_url=None``) and mount this instead.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from critic.web.pages import html_page

router = APIRouter()


def swagger_ui_assets() -> Path:
    """The folder of Swagger UI's script and style that the fastapi-offline package ships."""
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


@router.get("/docs", include_in_schema=False)
async def docs() -> FileResponse:
    return html_page("docs.html")


def mount(app) -> None:
    """Add the API page and its assets to an app (made with ``docs_url=None``)."""
    app.include_router(router)
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_assets()), name="docs-assets")
