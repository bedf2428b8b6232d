"""Dynamic micro-batching: concurrent requests to one model share one forward pass.

A single review costs one small forward pass, most of it fixed overhead; 32 reviews in one
pass cost little more than one. Each variant has a queue: the worker takes the first request,
waits at most ``max_wait_ms`` for others (never past ``max_batch`` reviews), runs the model
once in its own thread -- off the event loop -- and hands each request its share.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass
class _Pending:
    reviews: list[str]
    future: asyncio.Future


class MicroBatcher:
    def __init__(
        self,
        predict: Callable[[list[str]], list[dict]],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        name: str = "model",
        on_batch: Callable[[int], None] | None = None,
    ):
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # One thread per model: torch runs one forward pass at a time per model, using its own
        # intra-op threads, while the event loop keeps accepting requests.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"critic-{name}")
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._executor.shutdown(wait=True)

    async def submit(self, reviews: list[str], explain: bool = False) -> list[dict]:
        """Predict ``reviews``, sharing a forward pass with whatever else is waiting.

        With ``explain`` the request also needs a backward pass for its word weights, so it
        runs on its own (in the same model thread) rather than slowing a shared batch.
        """
        if explain:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: self.predict(reviews, explain=True)
            )
        if len(reviews) >= self.max_batch:
            # Already a full batch: no point waiting for company.
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._predict_counted, reviews
            )
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(reviews, future))
        return await future

    def _predict_counted(self, reviews: list[str]) -> list[dict]:
        if self.on_batch is not None:
            self.on_batch(len(reviews))
        return self.predict(reviews)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            size = len(first.reviews)
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                batch.append(pending)
                size += len(pending.reviews)
            reviews = [review for pending in batch for review in pending.reviews]
            try:
                results = await loop.run_in_executor(self._executor, self._predict_counted, reviews)
            except Exception as error:  # hand the failure to every waiting request
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            start = 0
            for pending in batch:
                end = start + len(pending.reviews)
                if not pending.future.done():
                    pending.future.set_result(results[start:end])
                start = end
