"""The application: the endpoint's routes (critic.serving) and the page's (critic.web), one app.

Composed here, one level above both packages, so that serving never imports web: the page is
a client of the endpoint's state, mounted beside its routes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI

from critic.apps.supervisor import WatchedWorkers
from critic.errors import CriticError
from critic.serving import routes as serving
from critic.serving.http import install_error_handlers
from critic.serving.invocations import EndpointApp, add_to_openapi
from critic.serving.settings import ServerSettings
from critic.serving.sidecar.shadow import ShadowSpec
from critic.serving.state import start_state
from critic.serving.variants import DEFAULT_VARIANT, VariantSpec
from critic.system import available_cores
from critic.web import routes as web

__all__ = ["BackgroundEndpoint", "app_from_environment", "create_app", "serve", "start_endpoint"]

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
        if settings.release_alias not in (None, "", "off"):
            from critic.tracking.registry import release_alias

            # Said in uvicorn's own log, where the endpoint's other lines go.
            said = logging.getLogger("uvicorn.error").warning
            app.state.endpoint.on_release = release_alias(settings.release_alias, said)
        # What start-up made (the models, torch's and FastAPI's modules: about 240,000 objects)
        # lives as long as the process: moved out of the collector's sight, so that a full
        # collection while serving walks the requests' garbage, not 110 ms of model objects.
        gc.freeze()
        try:
            yield
        finally:
            await app.state.endpoint.close()

    app = EndpointApp(
        title="critic endpoint",
        description="Movie-review sentiment with Amazon SageMaker's hosting contract.",
        lifespan=lifespan,
        # critic.web serves /docs itself, offline; FastAPI's load Swagger UI and ReDoc from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(serving.router)
    web.mount(app)
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

    from critic.serving.protocol import OneWriteProtocol

    signal.signal(signal.SIGTERM, _stopped_by_sigterm)
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "warning",
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
        # uvicorn's httptools protocol with each answer in one write (issue 25).
        "http": OneWriteProtocol,
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


class BackgroundEndpoint:
    """The endpoint :func:`start_endpoint` runs in a thread of this process: its address, and
    a way to stop it (also on leaving a ``with`` block)."""

    def __init__(self, server: Any, thread: threading.Thread, url: str, endpoint_name: str):
        self._server = server
        self._thread = thread
        self.url = url
        """``http://HOST:PORT``: /ping, /invocations, the page at /, the A/B view at /ab."""
        self.endpoint_name = endpoint_name
        """What boto3's ``invoke_endpoint(EndpointName=...)`` names (``/endpoints/NAME/invocations``)."""

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop accepting, finish the requests in flight, close the models; then return."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise CriticError(f"the endpoint at {self.url} did not stop within {timeout_s:g} s")

    def __enter__(self) -> BackgroundEndpoint:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"BackgroundEndpoint({self.url!r}, {'running' if self.running else 'stopped'})"


def start_endpoint(
    variants: Sequence[VariantSpec] | Path | str,
    settings: ServerSettings | None = None,
    *,
    port: int | None = None,
    timeout_s: float = 120.0,
) -> BackgroundEndpoint:
    """Serve ``variants`` (or one bundle folder, as AllTraffic) as ``critic serve`` does, from a
    thread of this process -- a notebook, a script, a test -- and return once ``/ping``
    answers 200.

    The same app, routes and contract as ``critic serve`` (the page included), in one worker:
    ``settings.workers`` is not used. ``port`` overrides ``settings.port``; 0 picks a free one.
    Stop it with ``.stop()`` (or use it as a context manager)."""
    import uvicorn

    from critic.inference.bundle import read_manifest
    from critic.serving.protocol import OneWriteProtocol

    specs = (
        [VariantSpec(DEFAULT_VARIANT, Path(variants))]
        if isinstance(variants, str | Path)
        else list(variants)
    )
    if not specs:
        raise CriticError("give at least one bundle to serve")
    for spec in specs:
        read_manifest(spec.bundle)  # a missing bundle is one line here, not a failed start-up
    settings = settings or ServerSettings()
    config = uvicorn.Config(
        create_app(specs, settings),
        host=settings.host,
        port=settings.port if port is None else port,
        log_level="warning",
        timeout_graceful_shutdown=settings.graceful_timeout_s,
        http=OneWriteProtocol,
        # The caller's event loop policy (a notebook kernel's) is left alone.
        loop="asyncio",
    )
    listening = config.bind_socket()
    host, bound_port = listening.getsockname()[:2]
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listening]}, name="critic-endpoint", daemon=True
    )
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    endpoint = BackgroundEndpoint(
        server, thread, f"http://{shown}:{bound_port}", settings.endpoint_name
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not thread.is_alive():
            listening.close()
            raise CriticError(
                f"the endpoint at {endpoint.url} stopped while it started (its log says why)"
            )
        try:
            with urllib.request.urlopen(f"{endpoint.url}/ping", timeout=2) as response:
                if response.status == 200:
                    return endpoint
        except (urllib.error.URLError, OSError):
            pass  # refused, or 503 while the models load
        time.sleep(0.1)
    endpoint.stop()
    raise CriticError(f"the endpoint at {endpoint.url} did not answer /ping within {timeout_s:g} s")
