"""What every request needs, made once at start-up and injected into the routes.

The one home of the endpoint's state, its FastAPI dependency and the ``State`` alias (as
full-stack-fastapi-template keeps ``api/deps.py``): the endpoint's routes and the page's
routes both take ``state: State`` and neither knows how the other is built.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from critic.serving.batching import MicroBatcher
from critic.serving.feedback import FEEDBACK_FILE, FeedbackStore
from critic.serving.metrics import EndpointMetrics
from critic.serving.settings import ServerSettings
from critic.serving.variants import VariantRouter, VariantSpec, load_variants


@dataclass
class EndpointState:
    settings: ServerSettings
    router: VariantRouter
    batchers: dict[str, MicroBatcher]
    metrics: EndpointMetrics
    feedback: FeedbackStore | None = None
    ready: bool = False
    started: float = field(default_factory=time.time)

    async def close(self) -> None:
        """Stop answering, then let every model finish what it holds."""
        self.ready = False
        for batcher in self.batchers.values():
            await batcher.stop()


def feedback_path(specs: list[VariantSpec], settings: ServerSettings) -> Path | None:
    """Where feedback is kept: the setting, else beside the first variant's bundle."""
    if settings.feedback_db == "off":
        return None
    if settings.feedback_db:
        return Path(settings.feedback_db)
    return specs[0].bundle.resolve().parent / FEEDBACK_FILE


def start_state(specs: list[VariantSpec], settings: ServerSettings) -> EndpointState:
    """Load every variant's model and start its batcher (inside the running event loop)."""
    variant_router = load_variants(specs, device=settings.device, seed=settings.seed)
    metrics = EndpointMetrics()
    batchers = {}
    for name, variant in variant_router.variants.items():
        batchers[name] = MicroBatcher(
            variant.predictor.predict,
            max_batch=settings.max_batch,
            max_wait_ms=settings.batch_wait_ms,
            name=name,
            on_batch=metrics.batch_size.labels(name).observe,
        )
        batchers[name].start()
        metrics.weight.labels(name).set(variant.weight)
    path = feedback_path(specs, settings)
    feedback = FeedbackStore(path) if path is not None else None
    return EndpointState(settings, variant_router, batchers, metrics, feedback, ready=True)


def get_state(request: Request) -> EndpointState:
    return request.app.state.endpoint


State = Annotated[EndpointState, Depends(get_state)]
