"""The application: the endpoint's routes (critic.serving) and the page's (critic.web), one app.

Composed here, one level above both packages, so that serving never imports web: the page is
a client of the endpoint's state, mounted beside its routes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from fastapi import FastAPI

from critic.apps.supervisor import WatchedWorkers
from critic.serving import routes as serving
from critic.serving.http import install_error_handlers
from critic.serving.invocations import InvocationsEntry, add_to_openapi
from critic.serving.settings import ServerSettings
from critic.serving.sidecar.shadow import ShadowSpec
from critic.serving.state import start_state
from critic.serving.variants import VariantSpec
from critic.system import available_cores
from critic.web import routes as web

__all__ = ["app_from_environment", "create_app", "serve"]

WORKER_CONFIG = "CRITIC_WORKER_CONFIG"


def create_app(
    specs: list[VariantSpec],
    settings: ServerSettings | None = None,
    runtime_dir: Path | None = None,
    shadows: list[ShadowSpec] | None = None,
) -> FastAPI:
    """The endpoint for these variants (and shadow variants); models load when the app starts
    (lifespan).

    ``runtime_dir``: the folder the worker processes of one endpoint share (see serve)."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.endpoint = start_state(specs, settings, runtime_dir, shadows)
        try:
            yield
        finally:
            await app.state.endpoint.close()

    app = FastAPI(
        title="critic endpoint",
        description="Movie-review sentiment with Amazon SageMaker's hosting contract.",
        lifespan=lifespan,
        # critic.web serves /docs itself, offline; FastAPI's load Swagger UI and ReDoc from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(serving.router)
    web.mount(app)
    app.add_middleware(InvocationsEntry)
    add_to_openapi(app)
    install_error_handlers(app)

    return app


def _stopped_by_sigterm(signum, frame) -> None:
    sys.exit(0)


def app_from_environment() -> FastAPI:
    """The app of one worker process of ``critic serve --workers N`` (uvicorn's factory): the
    variants, settings and shared folder come from the parent through the environment."""
    config = json.loads(os.environ[WORKER_CONFIG])
    specs = [VariantSpec(s["name"], Path(s["bundle"]), s["weight"]) for s in config["specs"]]
    settings = ServerSettings(**config["settings"])
    shadows = [ShadowSpec(s["name"], Path(s["bundle"]), s["fraction"]) for s in config["shadows"]]
    # Each process gets its share of the cores: N processes each running torch on every core
    # would only fight over them.
    torch.set_num_threads(max(1, available_cores() // settings.workers))
    # No SIGTERM handler of critic's here: uvicorn calls this factory while its own handler is
    # installed, the one that stops accepting and finishes the requests in flight. Replacing
    # it made a worker exit mid-request (a 500 for every request it held); its re-raise of
    # the signal once done ends only this worker, after the supervisor has stopped listening.
    return create_app(specs, settings, Path(config["runtime_dir"]), shadows)


def serve(
    specs: list[VariantSpec], settings: ServerSettings, shadows: list[ShadowSpec] | None = None
) -> None:
    """Serve until SIGTERM or Ctrl-C: stop accepting, finish what is in flight (at most
    ``graceful_timeout_s``), flush and close, and exit 0.

    uvicorn re-raises the signal it stopped for once it is done, which would end the process
    with "killed by SIGTERM"; with this handler installed beforehand, that re-raise becomes a
    clean exit, which is what SageMaker (and systemd, and Kubernetes) expect of a graceful stop.

    With ``settings.workers`` above 1, uvicorn's supervisor runs that many processes on one
    port, each loading every variant. They share a runtime folder: the traffic weights (a
    change sent to one reaches all), prometheus-client's multiprocess files (/metrics and
    the A/B view count across all) and the supervisor's record of its workers (a death is
    logged, counted and shown on /variants). Feedback goes to the one SQLite file as ever.
    """
    import uvicorn

    signal.signal(signal.SIGTERM, _stopped_by_sigterm)
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "warning",
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(specs, settings, shadows=shadows), **options)
        return
    with tempfile.TemporaryDirectory(prefix="critic-serve-") as runtime_dir:
        metrics_dir = Path(runtime_dir) / "metrics"
        metrics_dir.mkdir()
        # Read by prometheus-client when a worker imports it: set before any worker starts.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        os.environ[WORKER_CONFIG] = json.dumps(
            {
                "specs": [
                    {"name": s.name, "bundle": str(s.bundle), "weight": s.weight} for s in specs
                ],
                "settings": dataclasses.asdict(settings),
                "shadows": [shadow.to_dict() for shadow in shadows or []],
                "runtime_dir": runtime_dir,
            }
        )
        config = uvicorn.Config(
            "critic.apps.endpoint:app_from_environment",
            factory=True,
            workers=settings.workers,
            **options,
        )
        # What uvicorn.run does with workers, with critic's supervisor in place of uvicorn's:
        # the same, and it says when a worker dies (critic.apps.supervisor).
        with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before its handlers exist
            WatchedWorkers(config, [config.bind_socket()], Path(runtime_dir)).run()
