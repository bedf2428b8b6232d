"""critic.serving.ab.rollouts: a rollout's plan, its moves, and its state in a real SQLite file
shared the way the worker processes share it."""

from __future__ import annotations

import pytest

from critic.evaluation.guardrails import GuardrailLimits, Trip
from critic.serving.ab.counts import live_totals
from critic.serving.ab.feedback import FeedbackStore
from critic.serving.ab.rollouts import (
    RolloutError,
    RolloutPlan,
    RolloutStore,
    RolloutWatch,
    period_figures,
    weights_for,
)
from critic.serving.metrics import EndpointMetrics

START = {"champion": 1.0, "challenger": 0.0}


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "feedback.sqlite"
    FeedbackStore(path)  # the rollouts live in the feedback's file, beside its tables
    return RolloutStore(path)


@pytest.mark.parametrize(
    "payload, message",
    [
        ([], "send"),
        ({"steps": [0.1]}, "variant"),
        ({"variant": "b", "steps": []}, "steps"),
        ({"variant": "b", "steps": [0.5, 0.25]}, "rise"),
        ({"variant": "b", "steps": [0.5, 1.5]}, "at most 1"),
        ({"variant": "b", "steps": [True]}, "share"),
        ({"variant": "b", "bake_s": -1}, "bake_s"),
        ({"variant": "b", "min_requests": 2.5}, "min_requests"),
        ({"variant": "b", "speed": "fast"}, "unknown fields"),
        ({"variant": "b", "limits": {"max_latency_ratio": 0.5}}, "max_latency_ratio"),
        ({"variant": "b", "limits": {"p99": 2}}, "unknown limits"),
    ],
)
def test_a_bad_plan_is_one_clear_error(payload, message):
    with pytest.raises(RolloutError, match=message):
        RolloutPlan.from_dict(payload)


def test_a_plan_from_json_keeps_what_was_asked():
    plan = RolloutPlan.from_dict(
        {"variant": "b", "steps": [0.1, 1], "bake_s": 30, "limits": {"max_latency_ratio": 3}}
    )
    assert plan.steps == (0.1, 1.0) and plan.bake_s == 30
    assert plan.limits == GuardrailLimits(max_latency_ratio=3)


def test_the_champion_gets_what_the_challenger_and_the_others_leave():
    assert weights_for(START, "challenger", "champion", 0.25) == {
        "champion": 0.75,
        "challenger": 0.25,
    }
    three = weights_for({"a": 2, "b": 1, "c": 1}, "c", "a", 0.5)
    assert three == pytest.approx({"a": 0.25, "b": 0.25, "c": 0.5})
    with pytest.raises(RolloutError, match="hold 25%"):
        weights_for({"a": 2, "b": 1, "c": 1}, "c", "a", 1.0)


def test_a_rollout_steps_through_its_plan_and_survives_a_reopen(store):
    plan = RolloutPlan("challenger", steps=(0.1, 0.5, 1.0), bake_s=10, min_requests=5)
    rollout = store.start(plan, "champion", START, {}, first_vote=7, now=100.0)
    assert rollout.weights() == {"champion": 0.9, "challenger": 0.1}
    assert not rollout.due(105.0, 50) and not rollout.due(111.0, 4) and rollout.due(111.0, 5)
    again = RolloutStore(store.path).running()  # another worker, or the next start
    assert again == rollout
    rollout = store.save(rollout.advanced(111.0, {"challenger": {"requests": 5}}))
    assert rollout.step == 1 and rollout.step_started_at == 111.0 and rollout.share == 0.5
    rollout = store.save(rollout.advanced(130.0, {}))
    rollout = store.save(rollout.advanced(150.0, {}))
    assert rollout.status == "completed" and rollout.end_weights()["challenger"] == 1.0
    assert store.running() is None
    assert [event["event"] for event in store.latest()[0].history] == [
        "started",
        "step",
        "step",
        "completed",
    ]


def test_a_completed_rollout_is_told_once_whichever_worker_makes_the_move(store):
    weights = dict(START)
    told: list[str] = []

    def worker() -> RolloutWatch:
        return RolloutWatch(
            store, None, dict, weights.update, lambda: dict(weights), log=lambda _: None,
            on_complete=told.append,
        )  # fmt: skip

    first, second = worker(), worker()
    first.begin(RolloutPlan("challenger", steps=(0.5, 1.0), bake_s=5, min_requests=0), now=10.0)
    first.check(now=16.0)
    second.check(now=16.0)
    assert told == []  # a step is not the end
    second.check(now=22.0)
    first.check(now=22.0)
    assert told == ["challenger"] and weights == {"champion": 0.0, "challenger": 1.0}


def test_one_rollout_at_a_time(store):
    store.start(RolloutPlan("challenger"), "champion", START, {}, 0, 1.0)
    with pytest.raises(RolloutError, match="under way"):
        store.start(RolloutPlan("challenger"), "champion", START, {}, 0, 2.0)
    with pytest.raises(RolloutError, match="champion already"):
        RolloutStore(store.path).start(RolloutPlan("champion"), "champion", START, {}, 0, 3.0)


def test_of_two_workers_making_the_same_move_one_wins(store):
    rollout = store.start(RolloutPlan("challenger"), "champion", START, {}, 0, 1.0)
    first = store.save(rollout.advanced(400.0, {}))
    second = store.save(rollout.advanced(400.5, {}))
    assert first is not None and second is None
    assert store.running().step == 1


def test_a_rollback_restores_the_start_weights_and_is_counted(store):
    rollout = store.start(RolloutPlan("challenger"), "champion", START, {}, 0, 1.0)
    trip = Trip("latency", 30.0, 1.0, 2.0, "latency: p95 30 ms")
    ended = store.save(rollout.rolled_back(5.0, [trip], {"latency_ratio": 15.0}))
    assert ended.status == "rolled_back" and ended.end_weights() == START
    assert ended.history[-1]["trips"][0]["guardrail"] == "latency"
    stopped = store.save(
        store.start(RolloutPlan("challenger"), "champion", START, {}, 0, 9.0).stopped(
            10.0, by="operator", roll_back=False
        )
    )
    assert stopped.status == "stopped" and stopped.end_weights()["challenger"] == 0.05
    assert store.rollbacks() == {("challenger", "latency"): 1}


def test_a_step_is_judged_on_what_happened_since_it_began():
    metrics = EndpointMetrics()
    for status, seconds in [(200, 0.004)] * 30 + [(503, 0.0), (504, 2.0), (500, 0.01), (400, 0)]:
        metrics.observe("challenger", status, seconds)
    before = live_totals(metrics)["challenger"]
    assert (before["server_errors"], before["unavailable"], before["errors"]) == (2, 1, 4)
    for _ in range(20):
        metrics.observe("challenger", 200, 0.2)
    metrics.observe("challenger", 504, 5.0)
    step = period_figures(live_totals(metrics)["challenger"], before)
    assert (step.requests, step.server_errors, step.unavailable, step.answered) == (21, 1, 0, 21)
    assert 100 < step.p95_ms <= 5000  # only this step's slow answers, not the earlier quick ones
