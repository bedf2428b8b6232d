"""The application: the endpoint's routes (critic.serving) and the page's (critic.web), one app.

Composed here, one level above both packages, so that serving never imports web: the page is
a client of the endpoint's state, mounted beside its routes.
"""

from __future__ import annotations

import signal
import sys
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from critic.serving import routes as serving
from critic.serving.http import error_response
from critic.serving.settings import ServerSettings
from critic.serving.state import feedback_path, start_state
from critic.serving.variants import VariantSpec
from critic.web import routes as web

__all__ = ["create_app", "feedback_path", "serve"]


def create_app(specs: list[VariantSpec], settings: ServerSettings | None = None) -> FastAPI:
    """The endpoint for these variants; models load when the app starts (lifespan)."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.endpoint = start_state(specs, settings)
        try:
            yield
        finally:
            await app.state.endpoint.close()

    app = FastAPI(
        title="critic endpoint",
        description="Movie-review sentiment with Amazon SageMaker's hosting contract.",
        lifespan=lifespan,
    )
    app.include_router(serving.router)
    web.mount(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        return error_response(422, f"invalid request: {first.get('msg', 'bad parameters')}")

    return app


def _stopped_by_sigterm(signum, frame) -> None:
    sys.exit(0)


def serve(specs: list[VariantSpec], settings: ServerSettings) -> None:
    """Serve until SIGTERM or Ctrl-C: stop accepting, finish what is in flight (at most
    ``graceful_timeout_s``), flush and close, and exit 0.

    uvicorn re-raises the signal it stopped for once it is done, which would end the process
    with "killed by SIGTERM"; with this handler installed beforehand, that re-raise becomes a
    clean exit, which is what SageMaker (and systemd, and Kubernetes) expect of a graceful stop.
    """
    import uvicorn

    signal.signal(signal.SIGTERM, _stopped_by_sigterm)
    uvicorn.run(
        create_app(specs, settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=settings.graceful_timeout_s,
    )
