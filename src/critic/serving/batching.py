"""Dynamic batching with a bounded queue: concurrent requests to one model share a forward pass.

A single review costs one small forward pass, most of it fixed overhead; 32 reviews in one
pass cost little more than one. Each variant has one model thread and one queue:

* nothing waits for company by default (Triton's dynamic batcher waits 0 us too): a request
  that finds the model idle and nobody else waiting runs at once, on the event loop itself
  when the measured pace says it takes under ``inline_ms`` (a thread hand-off costs more than
  a lone small review's whole forward pass); the requests that arrive while the model is busy
  pile up and go together in the next pass, up to ``max_batch`` reviews. ``max_wait_ms``
  holds the first request back to gather more, for those who want it;
* the queue is bounded (``max_queue`` reviews): past it a request is refused at once with
  :class:`Overloaded` (the endpoint's 503 with Retry-After) instead of waiting behind work
  that cannot be done in time;
* a request whose client has gone, or whose deadline has passed, is dropped before it is
  computed, so a burst of abandoned requests costs nothing;
* a model that computes in Python, holding the GIL (the n-gram model), gains nothing from a
  thread but the hand-offs and the GIL's contention with the event loop: with
  ``threaded=False`` its batches run on the event loop itself, in slices of at most
  ``max_batch`` reviews with a turn of the loop between slices, so that the loop (and /ping)
  is never held for longer than one slice (about 13 ms for 64 IMDB reviews through the n-gram
  model). 100-review requests went from 57% to 100% of the Predictor's own pace with it
  (docs/benchmarks.md);
* a request that asks for word weights (a backward pass) runs in a second thread of its
  own, so it never holds up the plain requests queued behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


class Overloaded(Exception):
    """The queue is full; ``retry_after`` is the time, in whole seconds, to drain it."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(Exception):
    """The request was not answered within its deadline."""


class ClientGone(Exception):
    """The client closed the connection before its request was computed."""


class Stopping(Exception):
    """The endpoint is shutting down and takes no new work."""


@dataclass(eq=False)
class _Pending:
    reviews: list[str]
    future: asyncio.Future
    deadline: float  # loop time
    is_disconnected: Callable[[], Awaitable[bool]] | None
    queued_at: float = 0.0  # loop time


# Asking whether a queued request's client has left costs about 15 µs (a receive() under a
# cancelled scope), a tenth of a lone n-gram review's whole cost in the server: at 64 clients
# every request queues, briefly. A request of one review is asked only once it has waited
# this long: computing it costs a slot in one batch, and clients leave when they have waited.
# A request of several reviews is always asked.
GONE_CHECK_AFTER_S = 0.05


class MicroBatcher:
    def __init__(
        self,
        predict: Callable[..., list[dict]],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 0.0,
        max_queue: int = 4096,
        timeout_s: float = 60.0,
        inline_ms: float = 10.0,
        threaded: bool = True,
        name: str = "model",
        on_batch: Callable[[int], None] | None = None,
        gone_check_after_s: float = GONE_CHECK_AFTER_S,
    ):
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.timeout = timeout_s
        self.inline = inline_ms / 1000.0
        self.threaded = threaded
        self.name = name
        self.on_batch = on_batch
        self.gone_check_after = gone_check_after_s
        self.reviews_per_second = 0.0
        """Measured throughput (updated after every pass): what Retry-After is computed from."""
        self._pending: deque[_Pending] = deque()
        self._queued = 0  # reviews waiting or being computed
        self._busy = False  # a pass is running, in the model thread or inline
        self._wake: asyncio.Event | None = None
        self._stopping = False
        # One thread per model for the shared passes: torch runs one forward pass at a time
        # per model, with its own intra-op threads, while the event loop keeps serving. A
        # second thread runs explanations, which need a backward pass of their own.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"critic-{name}")
        self._explainer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"critic-{name}-explain"
        )
        self._worker: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        """Reviews accepted and not yet answered."""
        return self._queued

    def start(self) -> None:
        if self._worker is None:
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, grace_s: float = 25.0) -> None:
        """Refuse new work, answer what is queued (for ``grace_s`` at most), then stop."""
        self._stopping = True
        if self._worker is not None:
            loop = asyncio.get_running_loop()
            give_up = loop.time() + grace_s
            while (self._pending or self._busy) and not self._worker.done():
                if loop.time() > give_up:
                    break
                await asyncio.sleep(0.01)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(Stopping("the endpoint is shutting down"))
        self._pending.clear()
        self._executor.shutdown(wait=True)
        self._explainer.shutdown(wait=True)

    def retry_after(self) -> int:
        """Whole seconds to answer what is queued now, at the measured pace (at least 1)."""
        if self.reviews_per_second <= 0:
            return 1
        return max(1, math.ceil(self._queued / self.reviews_per_second))

    def _admit(self, count: int) -> None:
        if self._stopping:
            raise Stopping("the endpoint is shutting down")
        # One request larger than the whole queue is still taken when the queue is empty:
        # max_reviews, not the queue, decides how large a request may be.
        if self._queued and self._queued + count > self.max_queue:
            raise Overloaded(
                f"variant {self.name} is at capacity ({self._queued} reviews queued); retry later",
                self.retry_after(),
            )

    async def submit(
        self,
        reviews: list[str],
        explain: bool = False,
        is_disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> list[dict]:
        """Predict ``reviews``, sharing a forward pass with whatever else is waiting."""
        self._admit(len(reviews))
        loop = asyncio.get_running_loop()
        self._queued += len(reviews)
        try:
            if explain:
                return await asyncio.wait_for(
                    loop.run_in_executor(self._explainer, self._explain, reviews), self.timeout
                )
            if await self._alone(reviews):
                return self._run_inline(reviews)
            future = loop.create_future()
            deadline = loop.time() + self.timeout
            self._pending.append(_Pending(reviews, future, deadline, is_disconnected, loop.time()))
            self._wake.set()
            timer = loop.call_at(deadline, _expire, future)
            try:
                return await future
            finally:
                timer.cancel()
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"no answer within {self.timeout:g} s") from None
        finally:
            self._queued -= len(reviews)

    async def _alone(self, reviews: list[str]) -> bool:
        """Whether this request may run inline: short, the model idle, nobody else queued --
        also after one turn of the loop, which lets requests that arrived in the same
        moment queue up and be batched instead of running one after another."""
        if (
            self.max_wait > 0
            or self._busy
            or self._pending
            or self._queued != len(reviews)
            or len(reviews) > self.max_batch
            or not self._short(len(reviews))
        ):
            return False
        await asyncio.sleep(0)
        return not (self._busy or self._pending or self._queued != len(reviews))

    def _short(self, count: int) -> bool:
        """Whether ``count`` reviews take under ``inline_ms`` at the measured pace: short
        enough to compute on the event loop itself."""
        return count <= self.inline * self.reviews_per_second

    def _run_inline(self, reviews: list[str]) -> list[dict]:
        self._busy = True
        try:
            return self._predict_counted(reviews)
        finally:
            self._busy = False

    async def _predict_on_loop(self, reviews: list[str]) -> list[dict]:
        """``reviews`` computed on the event loop, ``max_batch`` at a time, letting the loop
        take a turn (new requests, /ping) between slices."""
        results: list[dict] = []
        for first in range(0, len(reviews), self.max_batch):
            if first:
                await asyncio.sleep(0)
            results.extend(self._predict_counted(reviews[first : first + self.max_batch]))
        return results

    def _explain(self, reviews: list[str]) -> list[dict]:
        return self.predict(reviews, explain=True)

    def _predict_counted(self, reviews: list[str]) -> list[dict]:
        if self.on_batch is not None:
            self.on_batch(len(reviews))
        started = time.perf_counter()
        results = self.predict(reviews)
        pace = len(reviews) / max(time.perf_counter() - started, 1e-6)
        # A moving average: one odd pass (a cold cache, a long review) does not swing it.
        self.reviews_per_second = (
            pace if not self.reviews_per_second else (0.8 * self.reviews_per_second + 0.2 * pace)
        )
        return results

    async def _take_batch(self, loop: asyncio.AbstractEventLoop) -> list[_Pending]:
        """The next requests to compute together: live ones, up to ``max_batch`` reviews."""
        batch: list[_Pending] = []
        size = 0
        while self._pending:
            pending = self._pending[0]
            if batch and size + len(pending.reviews) > self.max_batch:
                break
            self._pending.popleft()
            if pending.future.done():  # expired, or its caller was cancelled
                continue
            if loop.time() >= pending.deadline:
                pending.future.set_exception(DeadlineExceeded("deadline passed in the queue"))
                continue
            if (
                pending.is_disconnected is not None
                and (
                    len(pending.reviews) > 1
                    or loop.time() - pending.queued_at >= self.gone_check_after
                )
                and await pending.is_disconnected()
            ):
                pending.future.set_exception(ClientGone("the client closed the connection"))
                continue
            batch.append(pending)
            size += len(pending.reviews)
        return batch

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """With ``max_wait_ms`` set: hold the first request until the batch fills or the wait
        ends."""
        deadline = loop.time() + self.max_wait
        while sum(len(p.reviews) for p in self._pending) < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            if self.max_wait > 0:
                await self._gather(loop)
            batch = await self._take_batch(loop)
            if not batch:
                continue
            reviews = [review for pending in batch for review in pending.reviews]
            self._busy = True
            try:
                results = await self._compute(loop, reviews)
            except Exception as error:
                if len(batch) == 1:
                    if not batch[0].future.done():
                        batch[0].future.set_exception(error)
                else:
                    # One request's reviews can fail a batch (a model that overflows on some
                    # words): answer each request alone, so that only the guilty one fails.
                    await self._one_by_one(loop, batch)
                continue
            finally:
                self._busy = False
            start = 0
            for pending in batch:
                end = start + len(pending.reviews)
                if not pending.future.done():
                    pending.future.set_result(results[start:end])
                start = end

    async def _compute(self, loop: asyncio.AbstractEventLoop, reviews: list[str]) -> list[dict]:
        """The answers to ``reviews``: in the batcher's thread, or on the loop in slices."""
        if self.threaded:
            return await loop.run_in_executor(self._executor, self._predict_counted, reviews)
        return await self._predict_on_loop(reviews)

    async def _one_by_one(self, loop: asyncio.AbstractEventLoop, batch: list) -> None:
        for pending in batch:
            if pending.future.done():
                continue
            try:
                results = await self._compute(loop, pending.reviews)
            except Exception as error:
                if not pending.future.done():
                    pending.future.set_exception(error)
            else:
                if not pending.future.done():
                    pending.future.set_result(results)


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(DeadlineExceeded("no answer within the deadline"))
