"""What every request needs, made once at start-up and injected into the routes.

The one home of the endpoint's state, its FastAPI dependency and the ``State`` alias (as
full-stack-fastapi-template keeps ``api/deps.py``): the endpoint's routes and the page's
routes both take ``state: State`` and neither knows how the other is built.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from critic.errors import CriticError
from critic.models import NBSVM_KIND
from critic.serving.ab.answers import AnswerIds, new_key
from critic.serving.ab.autoweights import AutoWeights
from critic.serving.ab.counts import CountFlusher, CountStore, added, live_totals
from critic.serving.ab.dynamodb import DynamoCountStore, is_dynamodb
from critic.serving.ab.feedback import FEEDBACK_FILE, open_feedback
from critic.serving.ab.rollouts import RolloutCollector, RolloutStore, RolloutWatch
from critic.serving.ab.shadows import ShadowAnswerLog
from critic.serving.ab.votes import FeedbackBackend
from critic.serving.batching import MicroBatcher
from critic.serving.metrics import EndpointMetrics, WorkersCollector
from critic.serving.settings import ServerSettings
from critic.serving.sidecar.capture import CaptureConfig, CaptureWriter, describe_capture
from critic.serving.sidecar.shadow import Shadows, ShadowSpec, describe_shadows, start_shadows
from critic.serving.variants import (
    VariantRouter,
    VariantSpec,
    check_weight,
    load_variant,
    load_variants,
)
from critic.serving.workers import (
    SharedPromotions,
    SharedWeights,
    WorkerStats,
    describe_workers,
)


@dataclass
class EndpointState:
    settings: ServerSettings
    router: VariantRouter
    batchers: dict[str, MicroBatcher]
    metrics: EndpointMetrics
    feedback: FeedbackBackend | None = None
    answers: AnswerIds = field(default_factory=lambda: AnswerIds(new_key()))
    shared_weights: SharedWeights | None = None
    """With several worker processes: where a weight change reaches the others."""
    ready: bool = False
    started: float = field(default_factory=time.time)
    counts: CountStore | None = None
    """The online counts of earlier runs, and where this one's go (beside the feedback)."""
    shadows: Shadows | None = None
    """Shadow variants (critic serve --shadow): copies of the live traffic, answering nobody."""
    capture: CaptureWriter | None = None
    """Data capture (critic serve --capture-dir)."""
    worker_stats: WorkerStats | None = None
    """With several worker processes and shadows or capture: where each worker's figures
    meet, for the A/B view."""
    runtime_dir: Path | None = None
    """With several worker processes: the folder they share (see critic.serving.workers)."""
    promotions: SharedPromotions | None = None
    """With several worker processes: the shadows promoted to live variants while it runs."""
    rollouts: RolloutWatch | None = None
    """With feedback: the running rollout's watch (critic.serving.ab.rollouts)."""
    on_release: Callable[[str, Path], None] | None = None
    """Told (variant name, bundle) when a variant is released: a shadow promoted to live, or a
    rollout completed. Composed above serving (critic.apps.endpoint: a registry alias moved);
    called in a thread of its own, its failure logged in one line."""
    _promoting: dict[str, asyncio.Task] = field(default_factory=dict)
    stops: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """How each running component stops, in the order they must: each component's start
    (:func:`start_state`) adds its own, so closing needs no list of what might be running."""

    def on_close(self, stop: Callable[[], Awaitable[None] | None]) -> None:
        """Call ``stop`` when the endpoint closes: awaited when it is a coroutine function,
        else called on the event loop (as a task's cancel must be)."""

        async def run() -> None:
            if inspect.iscoroutinefunction(stop):
                await stop()
            else:
                stop()

        self.stops.append(run)

    def answered(
        self,
        variant: str,
        reviews: list[str],
        predictions: list[dict],
        request: tuple[bytes, str | None],
        response: tuple[bytes, str],
    ) -> None:
        """Hand one answered request to the shadows and the capture: the request path's only
        call to either. Both return at once; their work happens after the answer is sent."""
        if self.shadows is not None:
            self.shadows.offer(variant, reviews, predictions)
        if self.capture is not None:
            self.capture.offer(variant, *request, *response, predictions[0].get("id"), reviews)

    def worker_snapshot(self) -> dict:
        """This process's shadow and capture figures, raw (they add up across workers)."""
        return {
            "shadows": self.shadows.snapshot() if self.shadows is not None else [],
            "capture": self.capture.describe() if self.capture is not None else None,
        }

    def earlier_counts(self) -> dict | None:
        """The online counts of the endpoint's earlier runs, from the feedback file; None
        when feedback (and with it the counts) is off."""
        return self.counts.earlier() if self.counts is not None else None

    async def shadow_view(self) -> dict:
        """The shadows and the capture as the A/B view shows them, across every worker."""
        own = self.worker_snapshot()
        snapshots = (
            [own]
            if self.worker_stats is None
            else await asyncio.to_thread(self.worker_stats.gather, own)
        )
        captures = [snapshot["capture"] for snapshot in snapshots if snapshot["capture"]]
        return {
            "workers": len(snapshots),
            "shadows": describe_shadows([snapshot["shadows"] for snapshot in snapshots]),
            "capture": describe_capture(captures) if captures else None,
        }

    def shadow_names(self) -> list[str]:
        """The shadow variants this endpoint runs (none: an empty list)."""
        return list(self.shadows.shadows) if self.shadows is not None else []

    def workers(self) -> dict:
        """The endpoint's worker processes: since when each serves, and the restarts."""
        return describe_workers(self.runtime_dir, self.started)

    def sync_weights(self) -> None:
        """Take up the weights another worker published, and the shadows it promoted, if it
        did since the last look."""
        if self.promotions is not None:
            promoted = self.promotions.changed()  # every promotion so far, when the file changed
            if promoted is not None:
                self._follow_promotions(promoted)
        if self.shared_weights is not None:
            weights = self.shared_weights.changed()
            if weights is not None:
                # A variant another worker promoted and this one is still loading waits for
                # its load; the rest change now.
                known = {n: w for n, w in weights.items() if n in self.router.variants}
                self.router.set_weights(known)

    def _follow_promotions(self, promoted: dict) -> None:
        """Start loading, in the background, each promoted variant this worker lacks."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop (a thread): the next look will
            if self.promotions is not None:
                self.promotions._stamp = None
            return
        for name, record in promoted.items():
            if name not in self.router.variants:
                self._promotion(name, Path(record["bundle"]), record["weight"], loop)

    async def promote(self, name: str, weight: float | None = None) -> None:
        """Make the shadow ``name`` a live variant, here and in every worker, without a
        restart: it loads as a variant (the shadow's own copy stops), at ``weight`` (the
        champion's when None), and answers from then on. CriticError when there is no such
        shadow or a variant has the name already."""
        self.sync_weights()
        if name in self.router.variants:
            raise CriticError(f"{name!r} is already a live variant")
        shadow = self.shadows.shadows.get(name) if self.shadows is not None else None
        if shadow is None:
            raise CriticError(
                f"no shadow {name!r}; shadows: {', '.join(self.shadow_names()) or 'none'}"
            )
        if weight is None:
            weight = max(v.weight for v in self.router.variants.values())
        check_weight(name, weight)
        if self.promotions is not None:
            self.promotions.add(name, shadow.spec.bundle, weight)
        await self._promotion(name, Path(shadow.spec.bundle), weight)
        # Publish the weights with the new variant in them, for every worker to take up.
        self.set_weights({name: weight})
        self.released(name)

    def released(self, name: str) -> None:
        """Tell :attr:`on_release` that the variant ``name`` was released, off the caller's
        thread (the event loop, or the rollout watch's): what it does may take a network call."""
        variant = self.router.variants.get(name)
        if self.on_release is None or variant is None or variant.bundle is None:
            return
        hook, bundle = self.on_release, Path(variant.bundle)

        def run() -> None:
            try:
                hook(name, bundle)
            except Exception as error:  # a registry out of reach: the release itself stands
                _log(f"variant {name} released, but what follows a release failed: {error}")

        threading.Thread(target=run, name="critic-release", daemon=True).start()

    def _promotion(self, name: str, bundle: Path, weight: float, loop=None) -> asyncio.Task:
        """The task loading the promoted variant ``name`` here: the one under way, or a new one."""
        task = self._promoting.get(name)
        if task is None:
            loop = loop or asyncio.get_running_loop()
            task = self._promoting[name] = loop.create_task(
                self._promote_here(name, bundle, weight)
            )
        return task

    async def _promote_here(self, name: str, bundle: Path, weight: float) -> None:
        """Load the promoted variant in a thread (seconds: the event loop serves meanwhile),
        start its batcher, add it to the router, then stop the shadow it replaces."""
        try:
            spec = VariantSpec(name, bundle, weight)
            settings = self.settings
            variant = await asyncio.to_thread(load_variant, spec, settings.device, settings.backend)
            _say_backend(variant)
            batcher = await asyncio.to_thread(_batcher, name, variant, settings, self.metrics)
            batcher.start()
            self.batchers[name] = batcher
            self.router.add(variant)
            self.metrics.weight.labels(name).set(variant.weight)
            if self.shadows is not None:
                await self.shadows.remove(name, settings.graceful_timeout_s)
            if self.shared_weights is not None:
                self.shared_weights._stamp = None  # take up the weights it may already have
                self.sync_weights()
        finally:
            self._promoting.pop(name, None)

    def set_weights(self, weights: dict[str, float]) -> None:
        """Change weights here (checked first: a bad change changes nothing) and publish them
        to the other workers."""
        self.sync_weights()
        self.router.set_weights(weights)
        if self.shared_weights is not None:
            self.shared_weights.save({n: v.weight for n, v in self.router.variants.items()})

    async def close(self) -> None:
        """Stop answering, then stop every component in the order it was started: the
        batchers first (every model finishes what it holds), then what their answers feed
        (the counts, the shadows, the capture) and what watches them."""
        self.ready = False
        for stop in self.stops:
            await stop()


def feedback_path(specs: list[VariantSpec], settings: ServerSettings) -> Path | str | None:
    """Where feedback is kept: the setting (a file, or ``dynamodb://TABLE``), else beside the
    first variant's bundle."""
    if settings.feedback_db == "off":
        return None
    if is_dynamodb(settings.feedback_db):
        return settings.feedback_db
    if settings.feedback_db:
        return Path(settings.feedback_db)
    return specs[0].bundle.resolve().parent / FEEDBACK_FILE


# A made-up review of typical length (about 230 words, the IMDB median) for timing a model at
# start-up: the queue's default size is what the model answers in queue_seconds at that pace.
_TIMING_REVIEW = " ".join(
    [
        "The film opens well and the cast is strong, but the story loses its way in the middle,"
        " the jokes fall flat and the ending is far too long; still, the music is lovely, the"
        " camera work is often beautiful and two of the actors give performances worth seeing."
    ]
    * 5
)


def measure_pace(predict, max_batch: int) -> float:
    """Reviews per second of one full batch of typical reviews (after a warm-up pass, which
    also loads whatever the first call loads)."""
    batch = [_TIMING_REVIEW] * max_batch
    predict(batch[:1])
    started = time.perf_counter()
    predict(batch)
    return max_batch / max(time.perf_counter() - started, 1e-6)


def _batcher(name: str, variant, settings: ServerSettings, metrics: EndpointMetrics):
    pace = measure_pace(variant.predictor.predict, settings.max_batch)
    max_queue = settings.max_queue or max(settings.max_batch, round(pace * settings.queue_seconds))
    batcher = MicroBatcher(
        variant.predictor.predict,
        max_batch=settings.max_batch,
        max_wait_ms=settings.batch_wait_ms,
        max_queue=max_queue,
        timeout_s=settings.timeout_s,
        # torch releases the GIL while it computes, so the event loop serves meanwhile; the
        # n-gram model is Python through and through and would only contend for the GIL.
        threaded=variant.predictor.kind != NBSVM_KIND,
        name=name,
        on_batch=metrics.batch_size.labels(name).observe,
    )
    batcher.reviews_per_second = pace
    return batcher


def start_state(
    specs: list[VariantSpec],
    settings: ServerSettings,
    runtime_dir: Path | None = None,
    shadow_specs: list[ShadowSpec] | None = None,
) -> EndpointState:
    """Load every variant's model, time it, and start its batcher (inside the event loop);
    then each component the settings ask for, each starting itself and saying how it stops.

    ``runtime_dir`` is the folder the worker processes of one endpoint share (weights and
    metrics); None for a single process."""
    if settings.auto_weights_s and settings.auto_weights_floor * len(specs) > 1:
        raise CriticError(
            f"an auto-weights floor of {settings.auto_weights_floor} for each of "
            f"{len(specs)} variants exceeds 100%"
        )
    variant_router = load_variants(
        specs, device=settings.device, seed=settings.seed, backend=settings.backend
    )
    for variant in variant_router.variants.values():
        _say_backend(variant)
    metrics = EndpointMetrics(multiprocess=runtime_dir is not None)
    path = feedback_path(specs, settings)
    feedback = open_feedback(path) if path is not None else None
    # The ids' key lives in the feedback store, so that every worker and a restarted endpoint
    # recognise the answers given; without feedback nothing needs to recognise them later.
    answers = AnswerIds(feedback.answer_key if feedback is not None else new_key())
    state = EndpointState(
        settings, variant_router, {}, metrics, feedback, answers=answers, runtime_dir=runtime_dir
    )
    metrics.add_collector(WorkersCollector(state.workers))
    _start_batchers(state)
    _start_counts(state, runtime_dir)
    _start_shadows(state, shadow_specs or [])
    _start_capture(state)
    if runtime_dir is not None:
        _start_worker_stats(state, runtime_dir)
        state.shared_weights = SharedWeights(runtime_dir)
        # A worker restarted by the supervisor takes up today's weights and promotions.
        state.promotions = SharedPromotions(runtime_dir)
        state.sync_weights()
    _start_auto_weights(state)
    _start_rollouts(state)
    state.ready = True
    return state


def _start_batchers(state: EndpointState) -> None:
    for name, variant in state.router.variants.items():
        batcher = _batcher(name, variant, state.settings, state.metrics)
        batcher.start()
        state.batchers[name] = batcher
        state.metrics.weight.labels(name).set(variant.weight)

    async def stop() -> None:
        for batcher in state.batchers.values():
            await batcher.stop(state.settings.graceful_timeout_s)

    state.on_close(stop)


def _start_counts(state: EndpointState, runtime_dir: Path | None) -> None:
    """The online counts, kept beside the feedback (none without it)."""
    if state.feedback is None:
        return
    # One run per start of the endpoint: its worker processes share the runtime folder,
    # whose name is fresh each time; a lone process draws its own.
    run = runtime_dir.name if runtime_dir is not None else uuid.uuid4().hex
    if state.feedback.path is None:  # a table shared by several machines
        state.counts = DynamoCountStore(state.feedback, run)
    else:
        state.counts = CountStore(state.feedback.path, run)
    flusher = CountFlusher(state.counts, state.metrics.registry)
    flusher.start()
    state.on_close(flusher.stop)  # after the batchers: their last answers count too


def _start_shadows(state: EndpointState, shadow_specs: list[ShadowSpec]) -> None:
    state.shadows = start_shadows(
        shadow_specs, state.settings, state.metrics.registry, state.batchers
    )
    if state.shadows is not None:
        shadows = state.shadows

        async def stop() -> None:
            await shadows.stop(state.settings.graceful_timeout_s)

        state.on_close(stop)
        if state.feedback is not None and state.feedback.keeps_shadow_answers:
            # Each shadow answer under the live answer's id: scored when that answer is voted on.
            log = ShadowAnswerLog(state.feedback)
            shadows.on_answers = log.offer
            log.start()
            state.on_close(log.stop)  # after the shadows: their last answers are written too


def _start_capture(state: EndpointState) -> None:
    state.capture = start_capture(state.settings, state.metrics.registry)
    if state.capture is not None:
        capture = state.capture

        async def stop() -> None:
            await asyncio.to_thread(capture.close)  # off the loop: it writes what is queued

        state.on_close(stop)


def _start_worker_stats(state: EndpointState, runtime_dir: Path) -> None:
    if state.shadows is None and state.capture is None:
        return
    state.worker_stats = WorkerStats(runtime_dir, state.worker_snapshot)
    state.worker_stats.start()
    state.on_close(state.worker_stats.stop)


def _start_auto_weights(state: EndpointState) -> None:
    if not state.settings.auto_weights_s or state.feedback is None:
        return
    auto_weights = _auto_weights(state)
    auto_weights.start()
    state.on_close(auto_weights.stop)


def _start_rollouts(state: EndpointState) -> None:
    """Every worker watches the running rollout (one, in the feedback file); a rollout under
    way when the endpoint stopped goes on where it was."""
    if state.feedback is None or state.feedback.path is None:
        return  # rollouts coordinate the workers of one machine, through its feedback file
    store = RolloutStore(state.feedback.path)

    def totals():
        return added(state.earlier_counts() or {}, live_totals(state.metrics))

    def weights() -> dict[str, float]:
        state.sync_weights()
        return {name: v.weight for name, v in state.router.variants.items()}

    watch = RolloutWatch(
        store, state.feedback, totals, state.set_weights, weights, log=_log,
        on_complete=state.released,
    )  # fmt: skip
    state.rollouts = watch
    state.metrics.add_collector(RolloutCollector(store))
    watch.start()
    state.on_close(watch.stop)


def _say_backend(variant) -> None:
    choice = variant.predictor.backend_choice()
    if choice is not None:  # backend auto: what it measured on this worker, and chose
        _log(f"variant {variant.name}: {choice}")


def _log(line: str) -> None:
    # uvicorn's own logger: the line lands where the server's other warnings do.
    logging.getLogger("uvicorn.error").warning(line)


def _auto_weights(state: EndpointState) -> AutoWeights:
    names = state.router.names

    def counts() -> dict[str, tuple[int, int]]:
        return {
            e["variant"]: (e["feedback"], e["right"])
            for e in state.feedback.summary(names)
            if e["variant"] in names
        }

    def current() -> dict[str, float]:
        state.sync_weights()
        return {name: variant.weight for name, variant in state.router.variants.items()}

    return AutoWeights(
        counts,
        current,
        state.set_weights,
        state.settings.auto_weights_s,
        state.settings.auto_weights_floor,
    )


def start_capture(settings: ServerSettings, registry=None) -> CaptureWriter | None:
    """The capture's writer when ``capture_dir`` is set."""
    if not settings.capture_dir:
        return None
    config = CaptureConfig(
        Path(settings.capture_dir),
        settings.endpoint_name,
        percent=settings.capture_percent,
        max_mb=settings.capture_max_mb,
        keep_text=settings.capture_text,
    )
    return CaptureWriter(config, seed=settings.seed, registry=registry)


async def get_state(request: Request) -> EndpointState:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hand-off on every request that cost more than a lone review's whole forward pass.
    return request.app.state.endpoint


State = Annotated[EndpointState, Depends(get_state)]
