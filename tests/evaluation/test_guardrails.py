"""critic.evaluation.guardrails: what rolls a challenger back, and what must not."""

from __future__ import annotations

import numpy as np
import pytest

from critic.evaluation.guardrails import GuardrailLimits, PeriodFigures, check_guardrails

LIMITS = GuardrailLimits()


def figures(requests=400, server_errors=0, unavailable=0, p95_ms=1.0, answered=None):
    answered = requests - server_errors - unavailable if answered is None else answered
    return PeriodFigures(requests, server_errors, unavailable, answered, p95_ms)


def tripped(challenger, champion, limits=LIMITS, votes=None):
    trips, _ = check_guardrails(challenger, champion, limits, votes, ("new", "old"))
    return [trip.guardrail for trip in trips]


def test_a_challenger_like_the_champion_trips_nothing():
    assert tripped(figures(server_errors=1, p95_ms=1.4), figures(server_errors=1, p95_ms=1.2)) == []


def test_server_errors_trip_on_a_real_share_not_on_a_handful():
    assert tripped(figures(server_errors=40), figures()) == ["server_errors"]
    # One error in 40 requests: 2.5% observed, but the interval reaches down to the champion's
    # share plus the allowance; two in 40 against none in 400 is no longer chance.
    assert tripped(figures(requests=40, server_errors=1), figures()) == []
    assert tripped(figures(requests=40, server_errors=2), figures()) == ["server_errors"]


def test_a_full_queue_trips_the_unavailable_guardrail():
    trips, shown = check_guardrails(figures(unavailable=120), figures(unavailable=4), LIMITS)
    assert [trip.guardrail for trip in trips] == ["unavailable"]
    assert trips[0].challenger == pytest.approx(0.3) and trips[0].champion == pytest.approx(0.01)
    assert "503" in trips[0].text and shown["challenger"]["unavailable"] == 120


def test_latency_trips_on_the_ratio_of_p95s_once_both_have_answered_enough():
    slow, quick = figures(p95_ms=25.0), figures(p95_ms=0.8)
    assert tripped(slow, quick) == ["latency"]
    _, shown = check_guardrails(slow, quick, LIMITS)
    # The champion's p95 is floored: 25 ms against the 2 ms floor, not against 0.8 ms.
    assert shown["latency_ratio"] == pytest.approx(12.5)
    assert tripped(figures(requests=10, p95_ms=25.0), quick) == []  # too few to judge
    # Under the floor nothing trips, however large the ratio of two tiny figures.
    assert tripped(figures(p95_ms=1.9), figures(p95_ms=0.3)) == []


def _votes(rng, count, accuracy_new, accuracy_old, share_new):
    shares = np.broadcast_to(share_new, (count,)).astype(float)
    on_new = rng.random(count) < shares
    right = np.where(on_new, rng.random(count) < accuracy_new, rng.random(count) < accuracy_old)
    variants = np.where(on_new, "new", "old")
    return variants, right.astype(int), np.where(on_new, shares, 1 - shares)


def test_a_much_worse_challenger_is_caught_by_the_feedback():
    votes = _votes(np.random.default_rng(3), 800, 0.6, 0.9, 0.5)
    assert tripped(figures(), figures(), votes=votes) == ["accuracy"]


def test_the_accuracy_guardrail_keeps_its_level_while_the_shares_move():
    # Equal accuracy, the challenger's share stepping 5% -> 25% -> 50% -> 90% as a rollout
    # does, and the test looked at after every vote (its interval is the running
    # intersection): with no margin it may trip at most alpha of the time; with the default
    # margin on top, never here.
    steps = np.repeat([0.05, 0.25, 0.5, 0.9], 200)
    for limits, most in ((GuardrailLimits(accuracy_margin=0.0), 200 * LIMITS.alpha), (LIMITS, 0)):
        rng = np.random.default_rng(11)
        trips = sum(
            bool(tripped(figures(), figures(), limits, _votes(rng, len(steps), 0.85, 0.85, steps)))
            for _ in range(200)
        )
        assert trips <= most


def test_no_votes_no_accuracy_check():
    _, shown = check_guardrails(figures(), figures(), LIMITS, None)
    assert shown["accuracy"] is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_error_increase", -0.1),
        ("max_latency_ratio", 0.5),
        ("alpha", 0.7),
        ("min_requests", 0),
        ("min_requests", 2.5),
        ("accuracy_margin", float("nan")),
        ("latency_floor_ms", "2"),
    ],
)
def test_limits_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        GuardrailLimits(**{field: value})
