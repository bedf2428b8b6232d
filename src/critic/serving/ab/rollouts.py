"""Rollouts: a challenger's share of the traffic raised in steps, each baked for a while under
guardrails, and taken back the moment one trips (issue 24).

What is here is the rollout's plan, its state and the moves between states, kept in the
feedback's SQLite file (table ``rollouts``) so that a rollout outlives a restart and every
worker process follows the same one. Each move is a compare-and-set on the row's version: the
workers all watch the running rollout, and when two decide the same move at once (they see
the same figures: the metrics are shared), one wins and the other reads the result.

The guardrails themselves are :mod:`critic.evaluation.guardrails`; the figures they judge, a
step's, are the variant's online counts (:mod:`critic.serving.ab.counts`: every run of the
endpoint, so a restart loses nothing) now, less the same counts when the step began.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import pairwise
from pathlib import Path

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from critic.errors import CriticError
from critic.evaluation.abtest import champion_of
from critic.evaluation.guardrails import GuardrailLimits, PeriodFigures, Trip, check_guardrails
from critic.serving.ab.counts import Totals, latency_buckets
from critic.serving.ab.feedback import FeedbackError, connect
from critic.serving.metrics import _bucket_quantile

DEFAULT_STEPS = (0.05, 0.25, 0.5, 1.0)
STATUSES = ("running", "completed", "rolled_back", "stopped")
HISTORY_KEPT = 200  # events per rollout: a step each, a rollback, an operator's stop

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id         INTEGER PRIMARY KEY,
    variant    TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('running', 'completed', 'rolled_back',
                                                  'stopped')),
    version    INTEGER NOT NULL,   -- bumped by every move: the compare-and-set between workers
    state      TEXT    NOT NULL,   -- the rest, as JSON (Rollout.to_json)
    created_at REAL    NOT NULL
);
-- At most one rollout runs at a time.
CREATE UNIQUE INDEX IF NOT EXISTS rollouts_running ON rollouts (status) WHERE status = 'running';
"""


class RolloutError(CriticError):
    """A rollout that cannot start or move as asked (the admin route answers it as a 4xx)."""


@dataclass(frozen=True)
class RolloutPlan:
    """What an operator asks for: whose traffic rises, through which shares, how long each
    step bakes and how many of its requests a step needs before it may end."""

    variant: str
    steps: tuple[float, ...] = DEFAULT_STEPS
    bake_s: float = 300.0
    min_requests: int = 100
    limits: GuardrailLimits = field(default_factory=GuardrailLimits)

    def __post_init__(self) -> None:
        steps = self.steps
        if not isinstance(steps, tuple | list) or not steps:
            raise RolloutError("steps must be a list of shares, such as [0.05, 0.25, 0.5, 1]")
        for share in steps:
            if (
                isinstance(share, bool)
                or not isinstance(share, int | float)
                or not (math.isfinite(share) and 0 < share <= 1)
            ):
                raise RolloutError(f"each step is a share above 0 and at most 1, got {share!r}")
        if any(later <= earlier for earlier, later in pairwise(steps)):
            raise RolloutError(f"steps must rise, got {list(steps)}")
        object.__setattr__(self, "steps", tuple(float(share) for share in steps))
        if (
            isinstance(self.bake_s, bool)
            or not isinstance(self.bake_s, int | float)
            or not (math.isfinite(self.bake_s) and self.bake_s >= 0)
        ):
            raise RolloutError(
                f"bake_s must be a number of seconds, 0 or more, got {self.bake_s!r}"
            )
        if (
            isinstance(self.min_requests, bool)
            or not isinstance(self.min_requests, int)
            or self.min_requests < 0
        ):
            raise RolloutError(
                f"min_requests must be a whole number, 0 or more, got {self.min_requests!r}"
            )

    @classmethod
    def from_dict(cls, payload: object) -> RolloutPlan:
        """A plan from a request's JSON (``{"variant": ..., "steps": [...], "bake_s": ...,
        "min_requests": ..., "limits": {...}}``); one RolloutError naming what is wrong."""
        if not isinstance(payload, dict):
            raise RolloutError('send {"variant": "NAME", "steps": [0.05, 0.25, 0.5, 1], ...}')
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise RolloutError(f"unknown fields {unknown}; known: {sorted(known)}")
        if not isinstance(payload.get("variant"), str) or not payload["variant"]:
            raise RolloutError("variant must name the variant to roll out")
        given = dict(payload)
        limits = given.pop("limits", None) or {}
        if not isinstance(limits, dict):
            raise RolloutError("limits must be an object of guardrail limits")
        limit_names = {f.name for f in fields(GuardrailLimits)}
        if set(limits) - limit_names:
            raise RolloutError(
                f"unknown limits {sorted(set(limits) - limit_names)}; known: {sorted(limit_names)}"
            )
        try:
            checked = GuardrailLimits(**limits)
        except ValueError as error:
            raise RolloutError(str(error)) from None
        if "steps" in given and isinstance(given["steps"], list):
            given["steps"] = tuple(given["steps"])
        return cls(**given, limits=checked)

    def to_dict(self) -> dict:
        return {**asdict(self), "steps": list(self.steps)}


@dataclass(frozen=True)
class Rollout:
    """One rollout: its plan, where it stands, and what happened so far."""

    id: int
    plan: RolloutPlan
    champion: str
    start_weights: dict[str, float]
    """Every variant's weight when it began: where a rollback takes the traffic."""
    status: str = "running"
    step: int = 0
    started_at: float = 0.0
    step_started_at: float = 0.0
    ended_at: float | None = None
    step_baseline: Totals = field(default_factory=dict)
    """The two variants' online counts when the step began."""
    first_vote: int = 0
    """The feedback's last row id when the rollout began: its votes are the ones after."""
    history: list[dict] = field(default_factory=list)
    version: int = 0

    @property
    def variant(self) -> str:
        return self.plan.variant

    @property
    def share(self) -> float:
        """The challenger's share of the traffic at this step."""
        return self.plan.steps[self.step]

    def weights(self) -> dict[str, float]:
        """Every variant's weight at this step: the challenger at its share, the variants
        other than the two keeping theirs, the champion the rest."""
        return weights_for(self.start_weights, self.variant, self.champion, self.share)

    def bake_left_s(self, now: float) -> float:
        return max(0.0, self.plan.bake_s - (now - self.step_started_at))

    def due(self, now: float, requests_in_step: float) -> bool:
        """Whether the step has baked long enough, with enough of the challenger's requests."""
        return self.bake_left_s(now) == 0 and requests_in_step >= self.plan.min_requests

    def to_json(self) -> str:
        state = asdict(self)
        state["plan"] = self.plan.to_dict()
        for key in ("id", "status", "version"):
            state.pop(key)
        return json.dumps(state)

    @classmethod
    def from_row(cls, row: tuple) -> Rollout:
        rollout_id, status, version, text = row
        state = json.loads(text)
        plan = dict(state.pop("plan"))
        limits = GuardrailLimits(**plan.pop("limits"))
        plan = RolloutPlan(**{**plan, "steps": tuple(plan["steps"])}, limits=limits)
        return cls(id=rollout_id, status=status, version=version, plan=plan, **state)

    def to_dict(self, now: float | None = None) -> dict:
        """What /ab and the admin route show."""
        now = time.time() if now is None else now
        return {
            "id": self.id,
            "variant": self.variant,
            "champion": self.champion,
            "status": self.status,
            "step": self.step,
            "steps": list(self.plan.steps),
            "share": self.share,
            "bake_s": self.plan.bake_s,
            "bake_left_s": round(self.bake_left_s(now), 1) if self.status == "running" else None,
            "min_requests": self.plan.min_requests,
            "limits": asdict(self.plan.limits),
            "started_at": self.started_at,
            "step_started_at": self.step_started_at,
            "ended_at": self.ended_at,
            "start_weights": self.start_weights,
            "weights": self.weights(),
            "history": self.history,
        }

    # The moves. Each returns the rollout after it; RolloutStore.save makes it stick.

    def _event(self, now: float, event: str, **details) -> list[dict]:
        entry = {"at": now, "event": event, "step": self.step, "share": self.share, **details}
        return [*self.history, entry][-HISTORY_KEPT:]

    def advanced(self, now: float, baseline: Totals, figures: dict | None = None) -> Rollout:
        """The next step (or, after the last one, done: the challenger keeps its share)."""
        if self.step + 1 >= len(self.plan.steps):
            return replace(
                self,
                status="completed",
                ended_at=now,
                history=self._event(now, "completed", figures=figures),
            )
        moved = replace(self, step=self.step + 1, step_started_at=now, step_baseline=baseline)
        return replace(moved, history=moved._event(now, "step", figures=figures))

    def rolled_back(self, now: float, trips: list[Trip], figures: dict) -> Rollout:
        """Stopped by a guardrail: the traffic goes back to the start weights."""
        return replace(
            self,
            status="rolled_back",
            ended_at=now,
            history=self._event(
                now, "rolled_back", trips=[trip.to_dict() for trip in trips], figures=figures
            ),
        )

    def stopped(self, now: float, by: str, roll_back: bool) -> Rollout:
        """Stopped by an operator: rolled back, or kept at this step's weights."""
        return replace(
            self,
            status="rolled_back" if roll_back else "stopped",
            ended_at=now,
            history=self._event(now, "stopped", by=by, rolled_back=roll_back),
        )

    def end_weights(self) -> dict[str, float]:
        """The weights the rollout leaves behind once it has ended."""
        return dict(self.start_weights) if self.status == "rolled_back" else self.weights()


def weights_for(
    start: Mapping[str, float], variant: str, champion: str, share: float
) -> dict[str, float]:
    """Weights giving ``variant`` the share ``share`` of the traffic: the variants other than
    it and ``champion`` keep their share of ``start``, the champion gets what is left."""
    total = sum(start.values())
    if total <= 0:
        raise RolloutError("no variant has a weight above 0")
    shares = {name: weight / total for name, weight in start.items()}
    others = sum(s for name, s in shares.items() if name not in (variant, champion))
    if share + others > 1 + 1e-9:
        raise RolloutError(
            f"{variant!r} cannot have {share:.0%} of the traffic: the variants other than it "
            f"and the champion {champion!r} hold {others:.0%}"
        )
    weights = dict(shares)
    weights[variant] = share
    weights[champion] = max(0.0, 1.0 - share - others)
    return weights


def period_figures(now: Mapping[str, float], before: Mapping[str, float]) -> PeriodFigures:
    """One variant's figures between two readings of its online counts."""

    since = {counter: max(0.0, value - before.get(counter, 0.0)) for counter, value in now.items()}
    buckets = latency_buckets(since)
    answered = buckets[-1][1] if buckets else 0.0
    p95 = _bucket_quantile(buckets, 0.95) * 1000 if answered else None
    return PeriodFigures(
        requests=int(since.get("requests", 0.0)),
        server_errors=int(since.get("server_errors", 0.0)),
        unavailable=int(since.get("unavailable", 0.0)),
        answered=int(answered),
        p95_ms=p95,
        latency_buckets=tuple((bound * 1000, count) for bound, count in buckets),
    )


class RolloutStore:
    """The rollouts table of the feedback file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with self._connect() as connection:
                connection.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise FeedbackError(f"rollouts in {self.path}: {error}") from None

    def _connect(self):
        # FULL: a rollback recorded is on disk, as a verdict is.
        return connect(self.path, synchronous="FULL")

    def start(
        self,
        plan: RolloutPlan,
        champion: str,
        start_weights: Mapping[str, float],
        baseline: Totals,
        first_vote: int,
        now: float,
    ) -> Rollout:
        """Record a new running rollout; RolloutError when one runs already."""
        if plan.variant == champion:
            raise RolloutError(f"{plan.variant!r} is the champion already")
        rollout = Rollout(
            id=0,
            plan=plan,
            champion=champion,
            start_weights=dict(start_weights),
            started_at=now,
            step_started_at=now,
            step_baseline=baseline,
            first_vote=first_vote,
        )
        rollout.weights()  # a plan the other variants leave no room for fails here
        rollout = replace(rollout, history=rollout._event(now, "started"))
        try:
            with self._connect() as connection:
                cursor = connection.execute(
                    "INSERT INTO rollouts (variant, status, version, state, created_at)"
                    " VALUES (?, 'running', 0, ?, ?)",
                    (plan.variant, rollout.to_json(), now),
                )
                return replace(rollout, id=int(cursor.lastrowid))
        except sqlite3.IntegrityError:
            running = self.running()
            raise RolloutError(
                f"a rollout of {running.variant if running else 'another variant'} is under "
                "way: stop it first"
            ) from None

    def save(self, rollout: Rollout) -> Rollout | None:
        """Make a move stick, unless another worker moved the rollout first (then None: read
        it again). The saved rollout has the next version."""
        with self._connect() as connection:
            cursor = connection.execute(
                "UPDATE rollouts SET status = ?, version = version + 1, state = ?"
                " WHERE id = ? AND version = ?",
                (rollout.status, rollout.to_json(), rollout.id, rollout.version),
            )
            return replace(rollout, version=rollout.version + 1) if cursor.rowcount else None

    def running(self) -> Rollout | None:
        with self._connect() as connection:
            row = connection.execute(
                "SELECT id, status, version, state FROM rollouts WHERE status = 'running'"
            ).fetchone()
        return Rollout.from_row(row) if row else None

    def latest(self, count: int = 10) -> list[Rollout]:
        """The most recent rollouts, newest first."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT id, status, version, state FROM rollouts ORDER BY id DESC LIMIT ?",
                (count,),
            ).fetchall()
        return [Rollout.from_row(row) for row in rows]

    def rollbacks(self) -> dict[tuple[str, str], int]:
        """How many rollouts each guardrail rolled back, per variant (for /metrics)."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT id, status, version, state FROM rollouts WHERE status = 'rolled_back'"
            ).fetchall()
        found: dict[tuple[str, str], int] = {}
        for rollout in map(Rollout.from_row, rows):
            if not rollout.history:
                continue
            last = rollout.history[-1]
            names = [trip["guardrail"] for trip in last.get("trips", [])] or ["operator"]
            for name in names:
                key = (rollout.variant, name)
                found[key] = found.get(key, 0) + 1
        return found


CHECK_SECONDS = 0.5
"""How often each worker looks at the running rollout: a tripped guardrail rolls back within
about this long of the request that tripped it reaching the counts."""


class RolloutWatch:
    """One worker's watch over the running rollout, from a thread of its own: it judges the
    step on the shared counts, makes the move that is due (a rollback, the next step, the end)
    and keeps this worker's weights on the rollout's. Every worker runs one; the store's
    compare-and-set makes each move once.

    ``totals()``: the online counts of every run so far, per variant; ``set_weights``: change
    the weights here and publish them to the other workers; ``weights()``: this worker's."""

    def __init__(
        self,
        store: RolloutStore,
        feedback,
        totals,
        set_weights,
        weights,
        log=print,
        period_s: float = CHECK_SECONDS,
        on_complete=None,
    ):
        self.store = store
        self.feedback = feedback
        self.totals = totals
        self.set_weights = set_weights
        self.weights = weights
        self.log = log
        self.period_s = period_s
        self.on_complete = on_complete
        """Told the variant's name when a rollout completes (once: by the worker that made the
        move), e.g. to move a registry alias to it."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: dict | None = None
        """The latest check's figures (what the A/B view shows of a running rollout)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="critic-rollouts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.check()
            except (sqlite3.Error, CriticError) as error:  # a locked file: the next look
                self.log(f"rollout: check skipped: {error}")

    def begin(self, plan: RolloutPlan, now: float | None = None) -> Rollout:
        """Start a rollout of ``plan.variant`` from today's weights; its first step's weights
        apply at once, here and in every worker."""
        now = time.time() if now is None else now
        start = dict(self.weights())
        if plan.variant not in start:
            raise RolloutError(f"no variant {plan.variant!r}; variants: {', '.join(start)}")
        others = {name: weight for name, weight in start.items() if name != plan.variant}
        if not others:
            raise RolloutError("a rollout needs a champion: the endpoint has one variant")
        champion = champion_of(others)
        totals = self.totals()
        baseline = {name: totals.get(name, {}) for name in (plan.variant, champion)}
        last_vote = self.feedback.last_id() if self.feedback is not None else 0
        rollout = self.store.start(plan, champion, start, baseline, last_vote, now)
        self.set_weights(rollout.weights())
        self.log(
            f"rollout: {plan.variant} from {start_share(start, plan.variant):.0%} through "
            f"{', '.join(f'{share:.0%}' for share in plan.steps)}, {plan.bake_s:g} s a step, "
            f"against {champion}"
        )
        return rollout

    def end(self, by: str, roll_back: bool, now: float | None = None) -> Rollout:
        """An operator's stop: rolled back, or left at the step it reached."""
        now = time.time() if now is None else now
        for _ in range(20):  # a worker's move may come between the read and the save
            rollout = self.store.running()
            if rollout is None:
                raise RolloutError("no rollout is under way")
            saved = self.store.save(rollout.stopped(now, by, roll_back))
            if saved is not None:
                self.set_weights(saved.end_weights())
                self.log(f"rollout: {saved.variant} stopped by {by}, at {saved.share:.0%}")
                return saved
        raise RolloutError("the rollout kept moving; try again")

    def check(self, now: float | None = None) -> Rollout | None:
        """One look: the move due now, if any. Returns the rollout as it stands after."""
        now = time.time() if now is None else now
        rollout = self.store.running()
        if rollout is None:
            self.last = None
            return None
        totals = self.totals()
        names = (rollout.variant, rollout.champion)
        challenger, champion = (
            period_figures(totals.get(name, {}), rollout.step_baseline.get(name, {}))
            for name in names
        )
        votes = None
        if self.feedback is not None:
            found = self.feedback.votes(list(names), after=rollout.first_vote)
            votes = (np.asarray(found.variants), np.asarray(found.right), np.asarray(found.shares))
        trips, figures = check_guardrails(challenger, champion, rollout.plan.limits, votes, names)
        self.last = {"rollout": rollout.id, "step": rollout.step, "at": now, **figures}
        if trips:
            move = rollout.rolled_back(now, trips, figures)
        elif rollout.due(now, challenger.requests):
            move = rollout.advanced(now, {name: totals.get(name, {}) for name in names}, figures)
        else:
            self._follow(rollout)
            return rollout
        saved = self.store.save(move)
        if saved is None:  # another worker moved it first: look again at what it did
            return self.check(now)
        self.set_weights(saved.end_weights() if saved.status != "running" else saved.weights())
        if saved.status == "rolled_back":
            self.log(
                f"rollout: {saved.variant} ROLLED BACK at {rollout.share:.0%}: "
                + "; ".join(trip.text for trip in trips)
            )
        elif saved.status == "completed":
            self.log(f"rollout: {saved.variant} completed at {saved.share:.0%}")
            if self.on_complete is not None:
                self.on_complete(saved.variant)
        else:
            self.log(f"rollout: {saved.variant} now at {saved.share:.0%}")
        return saved

    def _follow(self, rollout: Rollout) -> None:
        """Put this worker's weights on the rollout's where they differ (a restart: the
        weights came from the command line; a change the rollout did not make)."""
        wanted = rollout.weights()
        have = self.weights()
        total = sum(have.values()) or 1.0
        if any(abs(have.get(name, 0.0) / total - share) > 1e-6 for name, share in wanted.items()):
            self.set_weights(wanted)


def start_share(weights: Mapping[str, float], variant: str) -> float:
    total = sum(weights.values())
    return weights.get(variant, 0.0) / total if total else 0.0


class RolloutCollector:
    """/metrics' view of the rollouts, read from the feedback file when scraped: the same in
    every worker, and after a restart."""

    def __init__(self, store: RolloutStore):
        self.store = store

    def collect(self):
        step = GaugeMetricFamily(
            "critic_rollout_step",
            "The running rollout's step (0 for the first), by variant; absent when none runs.",
            labels=["variant"],
        )
        share = GaugeMetricFamily(
            "critic_rollout_share",
            "The share of the traffic the running rollout gives its variant now.",
            labels=["variant"],
        )
        rollbacks = CounterMetricFamily(
            "critic_rollout_rollbacks",
            "Rollouts rolled back, by variant and by the guardrail that tripped (operator: "
            "stopped by hand).",
            labels=["variant", "guardrail"],
        )
        try:
            running = self.store.running()
            counted = self.store.rollbacks()
        except sqlite3.Error:
            return
        if running is not None:
            step.add_metric([running.variant], running.step)
            share.add_metric([running.variant], running.share)
        for (variant, guardrail), count in sorted(counted.items()):
            rollbacks.add_metric([variant, guardrail], count)
        yield step
        yield share
        yield rollbacks
