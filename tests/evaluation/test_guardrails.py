"""critic.evaluation.guardrails: what rolls a challenger back, and what must not."""

from __future__ import annotations

import numpy as np
import pytest

from critic.evaluation.abtest import accuracy_interval
from critic.evaluation.guardrails import (
    GuardrailLimits,
    PeriodFigures,
    check_guardrails,
    quantile_ranks,
    rate_bounds,
)
from critic.serving.metrics import LATENCY_BUCKETS_S

LIMITS = GuardrailLimits()
EDGES_MS = np.array(LATENCY_BUCKETS_S) * 1000


def figures(requests=400, server_errors=0, unavailable=0, p95_ms=1.0, answered=None):
    answered = requests - server_errors - unavailable if answered is None else answered
    return PeriodFigures(requests, server_errors, unavailable, answered, p95_ms)


def timed(latencies_ms) -> PeriodFigures:
    """A period whose answers took these times, in the endpoint's histogram buckets."""
    latencies_ms = np.asarray(latencies_ms, dtype=float)
    per_bucket = np.bincount(
        np.searchsorted(EDGES_MS, latencies_ms, side="left"), minlength=len(EDGES_MS) + 1
    )
    buckets = tuple(zip([*EDGES_MS, np.inf], np.cumsum(per_bucket).astype(float), strict=True))
    count = len(latencies_ms)
    p95 = float(np.quantile(latencies_ms, 0.95)) if count else None
    return PeriodFigures(count, 0, 0, count, p95, buckets)


def tripped(challenger, champion, limits=LIMITS, votes=None):
    trips, _ = check_guardrails(challenger, champion, limits, votes, ("new", "old"))
    return [trip.guardrail for trip in trips]


def test_a_challenger_like_the_champion_trips_nothing():
    assert tripped(figures(server_errors=1, p95_ms=1.4), figures(server_errors=1, p95_ms=1.2)) == []


def test_server_errors_trip_on_a_real_share_not_on_a_handful():
    assert tripped(figures(server_errors=40), figures()) == ["server_errors"]
    # One error in 40 requests, or four: 2.5% or 10% observed, but so few requests leave the
    # challenger's rate as low as the champion's plus the allowance; eight in 40 against none
    # in 400 is no longer chance, however often it was looked at.
    assert tripped(figures(requests=40, server_errors=1), figures()) == []
    assert tripped(figures(requests=40, server_errors=4), figures()) == []
    assert tripped(figures(requests=40, server_errors=8), figures()) == ["server_errors"]
    trips, _ = check_guardrails(figures(requests=40, server_errors=8), figures(), LIMITS)
    assert "at least 5.1% against at most 1.5%" in trips[0].text


def test_rate_bounds_hold_at_every_count_but_rarely():
    rng = np.random.default_rng(13)
    risk, ever_wrong = 0.05, 0
    for rate in (0.002, 0.02, 0.2):
        for _ in range(100):
            events = np.cumsum(rng.random(800) < rate)
            for count in range(5, 801, 5):
                low, high = rate_bounds(int(events[count - 1]), count, risk)
                if not low <= rate <= high:
                    ever_wrong += 1
                    break
    print(f"rate bounds ever wrong in {ever_wrong} of 300 sequences of 160 looks")
    assert ever_wrong <= 300 * risk
    assert rate_bounds(0, 0, risk) == (0.0, 1.0)


def _error_steps(rng, steps, rate_challenger, rate_champion, share, requests=2000, every=10):
    """Per simulated step: the request counts at which the watch looked (every ``every``
    requests), with the challenger's and the champion's (errors, requests) at each."""
    for _ in range(steps):
        on_challenger = rng.random(requests) < share
        failed = rng.random(requests) < np.where(on_challenger, rate_challenger, rate_champion)
        counts = np.cumsum(
            np.column_stack(
                [on_challenger & failed, on_challenger, ~on_challenger & failed, ~on_challenger]
            ),
            axis=0,
        )
        yield [tuple(int(c) for c in counts[look - 1]) for look in range(every, requests, every)]


def _error_tripped(looks) -> tuple[bool, int | None]:
    for number, (errors, requests, champion_errors, champion_requests) in enumerate(looks):
        new = figures(requests, server_errors=errors)
        old = figures(champion_requests, server_errors=champion_errors)
        if tripped(new, old) == ["server_errors"]:
            return True, 10 * (number + 1)
    return False, None


def test_a_challenger_failing_as_often_as_the_champion_is_not_rolled_back():
    # Both fail 1% or 3% of their requests (a flaky dependency they share), the challenger at
    # half the traffic, looked at every ten requests over 2,000. The Wilson interval of the
    # challenger against the champion's observed share, as this check once was, rolls it back
    # in a good share of such steps; the two confidence sequences in none.
    rng = np.random.default_rng(17)
    for rate in (0.01, 0.03):
        naive = bounded = 0
        for looks in _error_steps(rng, 40, rate, rate, 0.5):
            bounded += _error_tripped(looks)[0]
            naive += any(
                accuracy_interval(errors, requests, LIMITS.confidence)[0]
                > champion_errors / champion_requests + LIMITS.max_error_increase
                for errors, requests, champion_errors, champion_requests in looks
                if requests and champion_requests
            )
        print(f"both failing {rate:.0%}: {naive} of 40 steps rolled back by the Wilson rule, "
              f"{bounded} by the bounds")  # fmt: skip
        assert naive >= 4 and bounded == 0, (rate, naive, bounded)


def test_a_challenger_failing_a_quarter_of_its_requests_is_caught_within_a_few_hundred():
    rng = np.random.default_rng(19)
    caught = [_error_tripped(looks)[1] for looks in _error_steps(rng, 10, 0.25, 0.0, 0.3)]
    print(f"a quarter failing at 30%: rolled back after {caught} requests")
    assert all(at is not None and at <= 300 for at in caught), caught


def test_a_full_queue_trips_the_unavailable_guardrail():
    trips, shown = check_guardrails(figures(unavailable=120), figures(unavailable=4), LIMITS)
    assert [trip.guardrail for trip in trips] == ["unavailable"]
    assert trips[0].challenger == pytest.approx(0.3) and trips[0].champion == pytest.approx(0.01)
    assert "503" in trips[0].text and shown["challenger"]["unavailable"] == 120


def test_latency_trips_once_the_bounds_of_the_p95s_are_apart():
    slow, quick = timed(np.full(400, 25.0)), timed(np.full(400, 0.8))
    assert tripped(slow, quick) == ["latency"]
    trips, shown = check_guardrails(slow, quick, LIMITS)
    # The champion's p95 is floored: 25 ms against the 2 ms floor, not against 0.8 ms.
    assert shown["latency_ratio"] == pytest.approx(12.5)
    bounds = shown["latency_bounds"]
    assert 10 < bounds["challenger_above_ms"] <= 25 and 0.8 < bounds["champion_under_ms"] <= 1
    assert "at least" in trips[0].text and "however often looked at" in trips[0].text
    assert tripped(timed(np.full(10, 25.0)), quick) == []  # too few to judge
    # Under the floor nothing trips, however large the ratio of two tiny figures.
    assert tripped(timed(np.full(400, 1.9)), timed(np.full(400, 0.3))) == []


def test_a_p95_cannot_be_bounded_above_from_a_few_dozen_answers():
    # Sixty answers of the champion: its p95 could be anything up to its slowest answer and
    # past it, so not even a challenger a hundred times slower trips; a hundred and twenty can.
    slow = timed(np.full(400, 100.0))
    _, shown = check_guardrails(slow, timed(np.full(60, 1.0)), LIMITS)
    assert shown["latency_bounds"]["champion_under_ms"] is None and shown["latency_ratio"] > 2
    assert tripped(slow, timed(np.full(60, 1.0))) == []
    assert tripped(slow, timed(np.full(120, 1.0))) == ["latency"]


def test_quantile_ranks_bound_the_p95_at_every_count_but_rarely():
    # Draws from a known distribution, the bounds looked at after every one: how often either
    # bound is ever wrong over the whole sequence stays under the risk asked for.
    rng = np.random.default_rng(5)
    risk, ever_wrong = 0.05, 0
    for _ in range(200):
        draws = rng.random(600)  # uniform: its p95 is 0.95
        for count in range(1, len(draws) + 1):
            low, high = quantile_ranks(count, 0.95, risk)
            ordered = np.sort(draws[:count])
            if (low and ordered[low - 1] > 0.95) or (high and ordered[high - 1] < 0.95):
                ever_wrong += 1
                break
    print(f"bounds ever wrong in {ever_wrong} of 200 sequences of 600 looks")
    assert ever_wrong <= 200 * risk
    assert quantile_ranks(0, 0.95, risk) == (0, None)
    low, high = quantile_ranks(1000, 0.95, risk)
    assert 900 < low < 950 < high < 1000  # tight enough to use


def _machine(rng, count, scale=1.0):
    """Latencies of one model on a busy machine: lognormal around 2 ms, and one answer in 25
    caught behind a pause of 5 to 20 ms."""
    paused = rng.random(count) < 0.04
    return rng.lognormal(np.log(2.0), 0.4, count) * scale + paused * rng.uniform(5, 20, count)


def test_one_model_against_itself_is_not_rolled_back_for_latency():
    # The same model as challenger (40% of the answers) and champion, looked at every few
    # answers, as a rollout's watch does. Comparing the two p95 figures, as this check once
    # did, "finds" the challenger twice as slow in a good share of these steps (CI saw 3.1
    # times, on one model against itself); the bounds never do.
    rng = np.random.default_rng(7)
    naive = bounded = 0
    for _ in range(40):
        latencies, challenger = _machine(rng, 300), rng.random(300) < 0.4
        naive_trip = bounded_trip = False
        for count in range(20, 301, 10):
            new, old = latencies[:count][challenger[:count]], latencies[:count][~challenger[:count]]
            if min(len(new), len(old)) >= LIMITS.min_requests:
                p95_new, p95_old = np.quantile(new, 0.95), np.quantile(old, 0.95)
                naive_trip |= p95_new / max(p95_old, LIMITS.latency_floor_ms) > 2
            bounded_trip |= tripped(timed(new), timed(old)) == ["latency"]
        naive += naive_trip
        bounded += bounded_trip
    print(
        f"one model against itself: {naive} of 40 steps tripped on the p95s, {bounded} on the bounds"
    )
    assert naive >= 4 and bounded == 0, (naive, bounded)


def test_a_challenger_ten_times_slower_is_caught_within_a_few_hundred_answers():
    rng = np.random.default_rng(9)
    for _ in range(5):
        challenger = rng.random(1000) < 0.2
        latencies = np.where(challenger, _machine(rng, 1000, 10.0), _machine(rng, 1000))
        caught = next(
            (
                count
                for count in range(20, 1001, 20)
                if tripped(
                    timed(latencies[:count][challenger[:count]]),
                    timed(latencies[:count][~challenger[:count]]),
                )
                == ["latency"]
            ),
            None,
        )
        print(f"ten times slower: caught after {caught} answers")
        assert caught is not None and caught <= 600, caught


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
