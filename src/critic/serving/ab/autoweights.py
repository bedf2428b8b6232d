"""Traffic that shifts itself toward the better variant (``--auto-weights-s``, off by default).

Every few seconds, a thread reads the feedback counts, computes Thompson sampling's weights
(critic.evaluation.abtest.thompson_weights: each variant's chance of being the most accurate, with a
floor) and sets them through the same path as ``POST /admin/weights`` -- so every worker
process takes them up. A weight sent by hand holds only until the next tick.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import suppress

from critic.errors import CriticError
from critic.evaluation.abtest import thompson_weights


class AutoWeights:
    def __init__(
        self,
        counts: Callable[[], dict[str, tuple[int, int]]],
        current: Callable[[], dict[str, float]],
        apply: Callable[[dict[str, float]], None],
        seconds: float,
        floor: float,
    ):
        """``counts``: per variant (votes, right); ``current``: the weights now; ``apply``:
        sets new weights (and publishes them to the other workers)."""
        self.counts, self.current, self.apply = counts, current, apply
        self.seconds, self.floor = seconds, floor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="critic-auto-weights", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def step(self) -> dict[str, float] | None:
        """Set the weights the votes call for; what was set, or None when nothing changed."""
        weights = thompson_weights(self.counts(), self.floor)
        if weights == self.current():
            return None
        self.apply(weights)
        return weights

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            # The feedback file busy or gone for now: the weights stay as they are.
            with suppress(CriticError, sqlite3.Error):
                self.step()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
