"""Shadow variants: a model that sees a copy of the live traffic and answers nobody.

As SageMaker's shadow tests: ``critic serve --shadow NAME=BUNDLE[:FRACTION]`` loads a second
model beside the production variants; a fraction of the live requests is copied to it *after*
the live answer is computed, and its answers are only compared with the live ones -- agreement
of the labels, the mean |difference| of the probabilities, latency, errors and a few of the
reviews where they disagree -- for the A/B view (``GET /api/ab/shadows``) and /metrics.

Why the live answer cannot wait for it, nor change:

* the copy is handed over by :meth:`Shadows.offer`, after the live predictions exist; it only
  schedules a task on the event loop and returns;
* the shadow has its own :class:`~critic.serving.batching.MicroBatcher`, with a small queue
  (``shadow_queue`` reviews): when the shadow falls behind, copies are dropped and counted,
  never queued without bound and never pushed back onto the live requests;
* the shadow's model runs in a process of its own (:class:`ShadowProcess`), at the lowest
  CPU priority (nice 19) and on one thread: it holds neither the endpoint's GIL nor, when
  the live requests want the CPU, the CPU. Its batcher's thread only waits for it;
* it is paced too (:class:`PacedModel`): a pass starts once the live variants are idle (or
  after 0.1 s), and the shadow computes at most ``shadow_duty`` of the time; the copies it
  has no time for are dropped. What it still costs the live path is measured in
  docs/benchmarks.md (bench/shadow_overhead.py);
* whatever the shadow raises is counted as its error and goes no further.

``critic compare`` remains the offline twin: the same two models on a fixed test set.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client import Counter, Histogram

from critic.errors import CriticError
from critic.serving.batching import MicroBatcher, Overloaded
from critic.serving.variants import check_name, split_spec

SAMPLE_SIZE = 20  # disagreements kept per shadow, the most recent
SAMPLE_CHARS = 300  # of each disagreeing review's text
LATENCY_WINDOW = 2000


@dataclass(frozen=True)
class ShadowSpec:
    """One shadow variant: its name, its bundle and the fraction of live requests it copies."""

    name: str
    bundle: Path
    fraction: float = 1.0

    def __post_init__(self) -> None:
        check_name("shadow", self.name)
        object.__setattr__(self, "bundle", Path(self.bundle))
        fraction = self.fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise CriticError(f"the fraction of shadow {self.name!r} must be a number")
        if not 0 < fraction <= 1:
            raise CriticError(
                f"the fraction of shadow {self.name!r} must lie in (0, 1], got {fraction!r}"
            )
        object.__setattr__(self, "fraction", float(fraction))

    @classmethod
    def parse(cls, text: str) -> ShadowSpec:
        """``name=path[:fraction]``, e.g. ``candidate=runs/attention:0.25``."""
        return cls(*split_spec(text, "--shadow", "FRACTION", "candidate=runs/gru:0.5"))

    def to_dict(self) -> dict:
        return {"name": self.name, "bundle": str(self.bundle), "fraction": self.fraction}


def shadow_specs(texts: Sequence[str] | None, variant_names: Sequence[str]) -> list[ShadowSpec]:
    """The shadows a command line names; their names differ from each other and the variants'."""
    specs = [ShadowSpec.parse(text) for text in texts or []]
    names = list(variant_names) + [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CriticError(
            f"shadow names must differ from each other and the variants'; repeated: "
            f"{', '.join(repeated)}"
        )
    return specs


@dataclass
class ShadowRecord:
    """What one shadow did since start-up (read by the A/B view, written on the event loop)."""

    copies: int = 0
    """Requests copied to it (after the fraction's draw)."""
    answered: int = 0
    errors: int = 0
    dropped: int = 0
    """Copies refused because its queue was full: it fell behind the live traffic."""
    reviews: int = 0
    agreed: int = 0
    probability_gap: float = 0.0
    """Sum over the reviews compared of |shadow probability - live probability|."""
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    disagreements: deque = field(default_factory=lambda: deque(maxlen=SAMPLE_SIZE))
    last_error: str | None = None
    last_error_at: float = 0.0


class PacedModel:
    """A shadow's model that yields to the live traffic and computes at most ``duty`` of the
    time.

    * after a pass of d seconds, the next one waits until d * (1 - duty) / duty has passed
      (taken before the next pass, not after this one, so that this pass's answers are
      compared at once);
    * a pass starts when no live request is being answered (``live_busy``), waiting for that
      at most ``YIELD_S``, so that a busy endpoint still samples its shadow, at the duty;
    * runs in the shadow's own thread: the waits hold neither the GIL nor a core.
    """

    YIELD_S = 0.1

    def __init__(self, predict, duty: float, live_busy: Callable[[], bool] = lambda: False):
        self.predict = predict
        self.duty = duty
        self.live_busy = live_busy
        self.passes: deque = deque(maxlen=LATENCY_WINDOW)
        """Seconds of each recent pass: the model's own time, without queueing or rest."""
        self._rest_until = 0.0

    def __call__(self, reviews: list[str], explain: bool = False) -> list[dict]:
        time.sleep(max(0.0, self._rest_until - time.perf_counter()))
        give_up = time.perf_counter() + self.YIELD_S
        while self.live_busy() and time.perf_counter() < give_up:
            time.sleep(0.0005)
        started = time.perf_counter()
        try:
            return self.predict(reviews)
        finally:
            seconds = time.perf_counter() - started
            self.passes.append(seconds)
            self._rest_until = time.perf_counter() + seconds * (1 - self.duty) / self.duty


def _percentiles(seconds) -> dict:
    values = np.fromiter(seconds, dtype=np.float64)
    p50, p95 = np.percentile(values, [50, 95]) * 1000 if len(values) else (None, None)
    return {
        "p50": None if p50 is None else round(float(p50), 2),
        "p95": None if p95 is None else round(float(p95), 2),
        "window": len(values),
    }


class ShadowVariant:
    """One loaded shadow: its model's batcher and its record."""

    def __init__(
        self, spec: ShadowSpec, process: ShadowProcess, batcher: MicroBatcher, model: PacedModel
    ):
        self.spec = spec
        self.process = process
        self.batcher = batcher
        self.model = model
        self.record = ShadowRecord()

    @property
    def name(self) -> str:
        return self.spec.name

    def snapshot(self) -> dict:
        """This process's raw figures for the shadow: sums and windows, which add up across
        the worker processes of one endpoint (:func:`describe_shadow`), where ratios and
        percentiles would not."""
        record = self.record
        return {
            "name": self.name,
            "model": self.process.model_name,
            "bundle": str(self.spec.bundle),
            "fraction": self.spec.fraction,
            "duty": self.model.duty,
            "copies": record.copies,
            "answered": record.answered,
            "errors": record.errors,
            "dropped": record.dropped,
            "reviews": record.reviews,
            "agreed": record.agreed,
            "probability_gap": record.probability_gap,
            "latencies": list(record.latencies),
            "passes": list(self.model.passes),
            "last_error": record.last_error,
            "last_error_at": record.last_error_at,
            "disagreements": list(record.disagreements),
        }


def describe_shadow(snapshots: list[dict]) -> dict:
    """What the A/B view shows of one shadow, from the snapshots of every worker process that
    runs it (one with a single process): counts summed, ratios of the sums, percentiles of the
    pooled windows, the latest error and the latest disagreements of them all."""
    first = snapshots[0]

    def total(key: str):
        return sum(snapshot[key] for snapshot in snapshots)

    copies, reviews = total("copies"), total("reviews")
    failed = max(snapshots, key=lambda snapshot: snapshot["last_error_at"])
    disagreements = sorted(
        (item for snapshot in snapshots for item in snapshot["disagreements"]),
        key=lambda item: item["at"],
        reverse=True,
    )
    return {
        "name": first["name"],
        "model": first["model"],
        "bundle": first["bundle"],
        "fraction": first["fraction"],
        "workers": len(snapshots),
        "copies": copies,
        "answered": total("answered"),
        "errors": total("errors"),
        "dropped": total("dropped"),
        "error_rate": total("errors") / copies if copies else None,
        "reviews": reviews,
        "agreement": total("agreed") / reviews if reviews else None,
        "mean_probability_gap": total("probability_gap") / reviews if reviews else None,
        # From the copy to its answer (queue and rest included), and the model's own time
        # per forward pass: what it would cost a live request.
        "latency_ms": _percentiles(x for snapshot in snapshots for x in snapshot["latencies"]),
        "pass_ms": _percentiles(x for snapshot in snapshots for x in snapshot["passes"]),
        "duty": first["duty"],
        "last_error": failed["last_error"],
        "disagreements": disagreements[:SAMPLE_SIZE],
    }


def describe_shadows(snapshots: list[list[dict]]) -> list[dict]:
    """Every shadow's view from each worker's :meth:`Shadows.snapshot`, in the order given."""
    by_name: dict[str, list[dict]] = {}
    for worker in snapshots:
        for snapshot in worker:
            by_name.setdefault(snapshot["name"], []).append(snapshot)
    return [describe_shadow(group) for group in by_name.values()]


class Shadows:
    """Every shadow of an endpoint, and the one call the request path makes: :meth:`offer`."""

    def __init__(self, shadows: list[ShadowVariant], registry, seed: int | None = None):
        self.shadows = {shadow.name: shadow for shadow in shadows}
        self.on_answers: Callable[[str, list[tuple[str, str]]], None] | None = None
        """Called with (shadow, [(live answer id, shadow's label)]) for each copy answered:
        where the feedback scores the shadow (critic.serving.ab.shadows)."""
        self._random = random.Random(seed)
        self._tasks: set[asyncio.Task] = set()  # held, so that none is collected half-way
        self._lock = threading.Lock()
        self.outcomes = Counter(
            "critic_shadow_requests",
            "Requests copied to each shadow, by outcome.",
            ["shadow", "outcome"],
            registry=registry,
        )
        self.compared = Counter(
            "critic_shadow_reviews",
            "Reviews a shadow answered, by agreement with the live label.",
            ["shadow", "agreement"],
            registry=registry,
        )
        self.latency = Histogram(
            "critic_shadow_latency_seconds",
            "Time a shadow took to answer its copy.",
            ["shadow"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def start(self) -> None:
        for shadow in self.shadows.values():
            shadow.batcher.start()

    async def stop(self, grace_s: float) -> None:
        """Drop the copies not yet computed (nobody waits for them), then stop the batchers."""
        for task in list(self._tasks):
            task.cancel()
        for shadow in self.shadows.values():
            await shadow.batcher.stop(min(grace_s, 5.0))
            shadow.process.close()

    async def remove(self, name: str, grace_s: float) -> ShadowVariant | None:
        """Stop one shadow and take it out (it was promoted to a live variant); None when
        there is no such shadow (any more)."""
        shadow = self.shadows.get(name)
        if shadow is None:
            return None
        self.shadows = {n: s for n, s in self.shadows.items() if n != name}
        await shadow.batcher.stop(min(grace_s, 5.0))
        shadow.process.close()
        return shadow

    def offer(self, variant: str, reviews: list[str], predictions: list[dict]) -> None:
        """Copy one answered request to each shadow whose fraction draws it. Returns at once:
        the shadows' work is a task the event loop runs after this request is answered."""
        loop = asyncio.get_running_loop()
        for shadow in self.shadows.values():
            if shadow.spec.fraction < 1 and self._random.random() >= shadow.spec.fraction:
                continue
            shadow.record.copies += 1
            task = loop.create_task(self._shadow(shadow, variant, reviews, predictions))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self, shadow: ShadowVariant, variant: str, reviews: list[str], live: list[dict]
    ) -> None:
        started = time.perf_counter()
        try:
            answers = await shadow.batcher.submit(reviews)
        except Overloaded:
            shadow.record.dropped += 1
            self.outcomes.labels(shadow.name, "dropped").inc()
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the shadow's own failure: counted, and no further
            shadow.record.errors += 1
            shadow.record.last_error = f"{type(error).__name__}: {error}"[:300]
            shadow.record.last_error_at = time.time()
            self.outcomes.labels(shadow.name, "error").inc()
            return
        seconds = time.perf_counter() - started
        shadow.record.answered += 1
        shadow.record.latencies.append(seconds)
        self.outcomes.labels(shadow.name, "answered").inc()
        self.latency.labels(shadow.name).observe(seconds)
        self._compare(shadow, variant, reviews, live, answers)

    def _compare(self, shadow, variant, reviews, live, answers) -> None:
        record = shadow.record
        agreed = 0
        for review, mine, theirs in zip(reviews, answers, live, strict=True):
            gap = abs(mine["probability"] - theirs["probability"])
            record.probability_gap += gap
            if mine["label"] == theirs["label"]:
                agreed += 1
                continue
            record.disagreements.append(
                {
                    "review": review[:SAMPLE_CHARS] + ("…" if len(review) > SAMPLE_CHARS else ""),
                    "variant": variant,
                    "live": {"label": theirs["label"], "probability": theirs["probability"]},
                    "shadow": {"label": mine["label"], "probability": mine["probability"]},
                    # When: the view merges the latest of every worker process.
                    "at": round(time.time(), 3),
                }
            )
        if self.on_answers is not None:
            self.on_answers(
                shadow.name,
                [(theirs["id"], mine["label"]) for mine, theirs in zip(answers, live, strict=True)
                 if theirs.get("id")],
            )  # fmt: skip
        record.reviews += len(reviews)
        record.agreed += agreed
        if agreed:
            self.compared.labels(shadow.name, "agree").inc(agreed)
        if len(reviews) > agreed:
            self.compared.labels(shadow.name, "disagree").inc(len(reviews) - agreed)

    def snapshot(self) -> list[dict]:
        """This process's raw figures, one entry per shadow (see :func:`describe_shadows`)."""
        return [shadow.snapshot() for shadow in self.shadows.values()]


# --- the shadow's own process ------------------------------------------------------------------

_predictor = None  # the shadow's model, in the shadow's process


def _load_in_child(bundle: str, device: str, backend: str, parent: int) -> None:
    _exit_with(parent)
    # The OS gives the CPU to the endpoint's process first; one thread leaves it the others.
    os.nice(19)
    import torch

    from critic.inference.predictor import Predictor

    torch.set_num_threads(1)
    global _predictor
    _predictor = Predictor.load(Path(bundle), device=device, backend=backend)


def _exit_with(parent: int, every_s: float = 1.0) -> None:
    """End this process once the worker that started it is gone. A worker killed (kill -9,
    uvicorn's supervisor after a failed health check) never shuts its pool down, and the
    shadow's process, waiting on a queue whose other end it holds itself, would wait forever:
    an orphan holding a model's memory, found after test runs before this."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="critic-shadow-parent", daemon=True).start()


def _predict_in_child(reviews: list[str]) -> list[dict]:
    return _predictor.predict(reviews)


def _name_in_child() -> str:
    return _predictor.name


class ShadowProcess:
    """A shadow's model in a process of its own (spawned: no fork of a process running
    threads and an event loop), answering one pass at a time."""

    def __init__(self, spec: ShadowSpec, device: str, backend: str):
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load_in_child,
            initargs=(str(spec.bundle), device, backend, os.getpid()),
        )
        try:
            self.model_name = self._pool.submit(_name_in_child).result()
        except Exception as error:
            self.close()
            raise CriticError(f"shadow {spec.name}: its model did not load ({error})") from None

    def predict(self, reviews: list[str], explain: bool = False) -> list[dict]:
        return self._pool.submit(_predict_in_child, list(reviews)).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# Reviews in one shadow pass: short passes keep each stretch the shadow holds the CPU short,
# which is what a live request that arrives meanwhile waits on.
SHADOW_BATCH = 8


def start_shadows(
    specs: list[ShadowSpec], settings, registry, live: dict[str, MicroBatcher] | None = None
) -> Shadows | None:
    """Load every shadow's model and start its batcher (inside the event loop); None without
    shadows. ``live``: the live variants' batchers, which the shadows yield to."""
    if not specs:
        return None
    loaded = []
    for spec in specs:
        process = ShadowProcess(spec, settings.device, settings.backend)
        live_batchers = list((live or {}).values())
        model = PacedModel(
            process.predict,
            settings.shadow_duty,
            lambda batchers=live_batchers: any(b.queued for b in batchers),
        )
        batcher = MicroBatcher(
            model,
            max_batch=min(settings.max_batch, SHADOW_BATCH),
            max_queue=settings.shadow_queue,
            timeout_s=settings.timeout_s,
            # Never on the event loop, whatever the model: the loop belongs to the live traffic.
            inline_ms=0.0,
            threaded=True,
            name=f"shadow-{spec.name}",
        )
        loaded.append(ShadowVariant(spec, process, batcher, model))
    shadows = Shadows(loaded, registry, seed=settings.seed)
    shadows.start()
    return shadows
