"""What each shadow answered, kept beside the feedback so that it can be scored on it.

A shadow answers a copy of a live request after the live answer has gone out
(critic.serving.sidecar.shadow). When someone marks that live answer right or wrong, the
review's true label is known -- and with it whether the shadow was right on the same review.
So every shadow answer is written to the feedback file under the live answer's id, and the A/B
view joins the two (``FeedbackStore.shadow_pairs``): a paired comparison, decided by
critic.evaluation.abtest.paired_test.

The shadow's answers are handed over on the event loop (one append) and written from a thread
of this module's own, about once a second, in one transaction: the request path never writes
to SQLite. A process killed without warning loses at most its last second of them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from contextlib import suppress

from critic.serving.ab.feedback import FeedbackError, FeedbackStore

FLUSH_SECONDS = 1.0
MAX_PENDING = 100_000  # rows waiting for a flush; beyond it the oldest are dropped, not queued


class ShadowAnswerLog:
    """Writes (live answer id, shadow, label) rows to the feedback file every ``seconds``."""

    def __init__(self, store: FeedbackStore, seconds: float = FLUSH_SECONDS):
        self.store = store
        self.seconds = seconds
        self._pending: deque[tuple[str, str, str]] = deque(maxlen=MAX_PENDING)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="critic-shadow-answers", daemon=True)

    def offer(self, shadow: str, answers: list[tuple[str, str]]) -> None:
        """The shadow's labels for these live answer ids (from the event loop: appends only)."""
        self._pending.extend((answer_id, shadow, label) for answer_id, label in answers)

    def start(self) -> None:
        self._thread.start()

    def flush(self) -> None:
        with self._lock:
            rows = []
            while self._pending:
                rows.append(self._pending.popleft())
            try:
                self.store.add_shadow_answers(rows)
            except (sqlite3.Error, FeedbackError, OSError):
                # A locked or full disk now: put them back for the next try (the newest first
                # out if the queue is full meanwhile).
                self._pending.extendleft(reversed(rows))
                raise

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            with suppress(sqlite3.Error, FeedbackError, OSError):
                self.flush()

    def stop(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with suppress(sqlite3.Error, FeedbackError, OSError):
            self.flush()
