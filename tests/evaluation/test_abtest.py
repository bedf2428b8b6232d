"""The A/B test's statistics: the always-valid mSPRT keeps its promise under peeking, decides a
real difference, matches the paper's formula worked by hand; the sample size matches the
textbook; the verdicts."""

import math

import numpy as np
import pytest

from critic.evaluation.abtest import (
    MIN_VOTES,
    TAU,
    SequentialTest,
    interval_half_width,
    msprt_path,
    sequential_test,
    verdict,
    votes_per_variant,
)

SIMULATIONS, VOTES, EVERY, ALPHA = 2000, 2000, 10, 0.05


def simulate(champion_accuracy, challenger_accuracy, seed):
    """SIMULATIONS tests of VOTES votes per variant, looked at every EVERY votes: for each test,
    whether it ever rejected "no difference", and the sign of the difference when it did."""
    rng = np.random.default_rng(seed)
    looks = np.arange(EVERY, VOTES + 1, EVERY)
    champion = np.cumsum(rng.random((SIMULATIONS, VOTES)) < champion_accuracy, axis=1)
    challenger = np.cumsum(rng.random((SIMULATIONS, VOTES)) < challenger_accuracy, axis=1)
    difference, _, ratio = msprt_path(
        champion[:, looks - 1], looks, challenger[:, looks - 1], looks
    )
    crossed = ratio >= 1 / ALPHA
    rejected = crossed.any(axis=1)
    first = crossed.argmax(axis=1)
    sign = np.sign(difference[np.arange(SIMULATIONS), first])
    return rejected, sign, looks[first]


@pytest.mark.parametrize("accuracy", [0.5, 0.8, 0.95])
def test_with_no_difference_peeking_every_ten_votes_rejects_at_most_alpha_of_the_time(accuracy):
    rejected, _, _ = simulate(accuracy, accuracy, seed=int(accuracy * 100))
    # 2,000 tests: the rate's standard error at 5% is 0.5 points; the guarantee is <= alpha.
    assert rejected.mean() <= ALPHA


@pytest.mark.parametrize(("champion", "challenger", "sign"), [(0.7, 0.8, 1), (0.8, 0.7, -1)])
def test_a_real_ten_point_difference_is_decided_and_the_right_way_round(champion, challenger, sign):
    rejected, signs, when = simulate(champion, challenger, seed=7)
    assert rejected.mean() >= 0.99
    assert (signs[rejected] == sign).mean() >= 0.999
    assert np.median(when[rejected]) < 600  # votes per variant: about 300 measured


def test_the_mixture_ratio_and_interval_match_the_formula_worked_by_hand():
    # Champion 80 right of 100, challenger 70 of 100; V from (right + 1) / (votes + 2):
    # 81/102 = 0.794118, 71/102 = 0.696078;
    # V = 0.794118 * 0.205882 / 100 + 0.696078 * 0.303922 / 100 = 0.00375048
    # Lambda = sqrt(V / (V + 0.01)) * exp(0.01 * 0.1^2 / (2 V (V + 0.01)))
    #        = 0.522261 * exp(0.969557) = 0.522261 * 2.636790 = 1.37709
    difference, variance, ratio = msprt_path(80, 100, 70, 100)
    assert difference == pytest.approx(-0.1)
    assert variance == pytest.approx(0.00375048, rel=1e-5)
    assert ratio == pytest.approx(1.37709, rel=1e-4)
    # Paper, normal case: theta_hat +/- sqrt(V (V + tau2) / tau2 * log((V + tau2) / (V alpha^2)))
    # = sqrt(0.00515709 * log(1466.53)) = sqrt(0.00515709 * 7.29066) = 0.19390
    assert interval_half_width(variance, 0.05) == pytest.approx(0.19390, rel=1e-4)
    assert TAU == 0.1


def test_before_either_side_has_enough_votes_the_test_has_not_started():
    votes = np.ones(2 * MIN_VOTES - 1)
    challenger = np.arange(len(votes)) % 2 == 0
    test = sequential_test(votes, challenger, alpha=0.05)
    assert (test.started, test.p_value, test.interval) == (False, 1.0, None)
    assert verdict(test, 0.05, 0.05) == "keep testing"


def test_the_p_value_is_the_running_minimum_and_the_interval_the_running_intersection():
    rng = np.random.default_rng(3)
    challenger = rng.random(600) < 0.5
    votes = np.where(challenger, rng.random(600) < 0.9, rng.random(600) < 0.6).astype(float)
    test = sequential_test(votes, challenger, alpha=0.05)
    prefix = sequential_test(votes[:300], challenger[:300], alpha=0.05)
    assert test.p_value <= prefix.p_value
    assert prefix.interval[0] <= test.interval[0] and test.interval[1] <= prefix.interval[1]
    assert test.p_value < 1e-6 and test.interval[0] > 0.1
    assert verdict(test, 0.05, 0.05) == "challenger better"


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        (SequentialTest(0.1, 0.01, (0.02, 0.18), True), "challenger better"),
        (SequentialTest(-0.1, 0.01, (-0.18, -0.02), True), "champion better"),
        (SequentialTest(0.0, 0.9, (-0.03, 0.04), True), "no difference worth the wait"),
        (SequentialTest(0.0, 0.9, (-0.08, 0.04), True), "keep testing"),
        (SequentialTest(0.0, 1.0, None, False), "keep testing"),
    ],
)
def test_each_verdict_follows_from_the_interval(test, expected):
    assert verdict(test, alpha=0.05, min_difference=0.05) == expected


@pytest.mark.parametrize(
    ("accuracy", "difference", "expected"),
    [
        # 50% against 60%, alpha 0.05 two-sided, power 0.8: the calculators' 388 per group.
        # (1.95996 sqrt(2 * .55 * .45) + 0.84162 sqrt(.25 + .24))^2 / 0.01 = 387.3 -> 388
        (0.55, 0.10, 388),
        # 60% against 75%: (1.95996 * 0.66238 + 0.84162 * 0.65383)^2 / 0.0225 = 151.9 -> 152
        (0.675, 0.15, 152),
    ],
)
def test_the_sample_size_matches_the_two_proportion_formula_worked_by_hand(
    accuracy, difference, expected
):
    assert votes_per_variant(accuracy, difference, alpha=0.05, power=0.8) == expected


def test_the_sample_size_grows_with_power_and_shrinks_with_the_difference():
    base = votes_per_variant(0.8, 0.05, 0.05, 0.8)
    assert votes_per_variant(0.8, 0.05, 0.05, 0.9) > base
    assert votes_per_variant(0.8, 0.10, 0.05, 0.8) < base
    # An accuracy near 100% keeps both proportions inside (0, 1).
    assert math.isfinite(votes_per_variant(0.999, 0.05, 0.05, 0.8))


def test_thompson_weights_follow_the_better_variant_but_keep_the_floor():
    from critic.evaluation.abtest import thompson_weights

    weights = thompson_weights({"champion": (400, 240), "challenger": (400, 360)}, floor=0.1)
    assert weights == {"champion": 0.1, "challenger": 0.9}
    even = thompson_weights({"champion": (0, 0), "challenger": (0, 0)}, floor=0.1)
    assert even["champion"] == pytest.approx(0.5, abs=0.02) and sum(even.values()) == pytest.approx(
        1
    )
    # Seeded by the counts: two workers looking at the same votes agree exactly.
    counts = {"a": (30, 20), "b": (30, 22), "c": (10, 5)}
    assert thompson_weights(counts, 0.05) == thompson_weights(dict(counts), 0.05)
    assert min(thompson_weights(counts, 0.05).values()) >= 0.05
    with pytest.raises(ValueError, match="exceeds 100%"):
        thompson_weights(counts, floor=0.4)


def test_with_no_variant_known_there_is_no_champion_and_nothing_to_decide():
    from critic.evaluation.abtest import DecisionParameters, decide

    decision = decide({}, np.array([]), np.array([]), DecisionParameters())
    assert decision["champion"] is None and decision["challengers"] == []
