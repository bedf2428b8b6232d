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


# -- the test that stays valid when traffic moves ---------------------------------------------

from fractions import Fraction  # noqa: E402

from critic.evaluation.abtest import (  # noqa: E402
    DecisionParameters,
    adaptive_test,
    aipw_increments,
    decide,
    holm,
    paired_reviews_needed,
    paired_test,
    sample_ratio,
)


def test_the_increments_match_the_formula_worked_by_hand():
    # Votes: a right (share 0.8), b wrong (share 0.2), a wrong (share 0.5).
    # Vote 1: m_a = m_b = 1/2 (nothing before):  1/2 - 1/2 - (1 - 1/2) / 0.8 = -0.625
    # Vote 2: m_a = (1 + 1) / (1 + 2) = 2/3, m_b = 1/2:  1/2 - 2/3 + (0 - 1/2) / 0.2 = -2.6667
    # Vote 3: m_a = 2/3, m_b = (0 + 1) / (1 + 2) = 1/3:  1/3 - 2/3 - (0 - 2/3) / 0.5 = 1.0
    z = aipw_increments(["a", "b", "a"], [1, 0, 0], [0.8, 0.2, 0.5], "a", "b")
    assert z == pytest.approx([-0.625, 0.5 - 2 / 3 - 2.5, 1.0])
    # A vote on a third variant carries only the two running means.
    assert aipw_increments(["c"], [1], [0.3], "a", "b") == pytest.approx([0.0])


def test_a_fixed_even_split_gives_the_same_decision_as_the_pooled_test_on_a_clear_difference():
    rng = np.random.default_rng(3)
    challenger = rng.random(600) < 0.5
    votes = np.where(challenger, rng.random(600) < 0.9, rng.random(600) < 0.6).astype(float)
    names = np.where(challenger, "b", "a")
    test = adaptive_test(names, votes, np.full(600, 0.5), "a", "b", alpha=0.05)
    pooled = sequential_test(votes, challenger, alpha=0.05)
    assert verdict(test, 0.05, 0.05) == verdict(pooled, 0.05, 0.05) == "challenger better"
    assert test.difference == pytest.approx(pooled.difference, abs=0.03)


def test_under_adaptive_traffic_and_drift_the_pooled_test_names_false_winners_and_this_does_not():
    from critic.evaluation.simulate import false_winner_rates

    # Equal variants whose accuracy rises from 80% to 92%, Thompson sampling every 50 votes.
    rates = false_winner_rates(runs=100, votes=3000, drift="rise", adaptive=True, seed=11)
    assert rates["pooled"] >= 0.12  # the test the view used: about 23% (issue 23)
    assert rates["weighted"] <= 0.05  # 100 runs: within the simulation's error of alpha


def test_holm_matches_the_step_down_worked_by_hand():
    # Sorted: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> max(0.06, 0.04) = 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])


def test_with_several_challengers_the_verdicts_follow_the_adjusted_p_values():
    rng = np.random.default_rng(5)
    names = rng.choice(["champion", "b", "c", "d"], size=800)
    accuracy = np.where(names == "d", 0.9, 0.7)
    right = (rng.random(800) < accuracy).astype(int)
    weights = {"champion": 0.4, "b": 0.2, "c": 0.2, "d": 0.2}
    shares = np.array([weights[n] for n in names])
    decision = decide(weights, names, right, DecisionParameters(), shares)
    assert decision["correction"] == "holm" and decision["comparisons"] == 3
    by_name = {entry["challenger"]: entry for entry in decision["challengers"]}
    raw = [by_name[n]["p_value"] for n in ("b", "c", "d")]
    assert [by_name[n]["adjusted_p_value"] for n in ("b", "c", "d")] == pytest.approx(holm(raw))
    assert by_name["d"]["verdict"] == "challenger better"
    assert by_name["b"]["verdict"] == by_name["c"]["verdict"] == "keep testing"


def test_a_vote_with_no_logged_share_is_weighed_by_its_variants_share_of_the_votes():
    # Today's weights (0 for a) are not those the votes came under (three to one).
    weights = {"a": 0.0, "b": 1.0}
    names = ["a", "a", "a", "b"] * 15
    right = [1, 1, 0, 1] * 15
    logged = decide(weights, names, right, DecisionParameters(), [0.75, 0.75, 0.75, 0.25] * 15)
    unknown = decide(weights, names, right, DecisionParameters(), [math.nan] * 60)
    assert logged["challengers"][0]["p_value"] == unknown["challengers"][0]["p_value"]
    assert math.isfinite(unknown["challengers"][0]["difference"])


def test_the_sample_ratio_check_trips_on_a_skewed_log_and_not_on_a_fair_one():
    rng = np.random.default_rng(8)
    shares = rng.choice([0.5, 0.8], size=5000)  # the weights changed during the test
    fair = rng.random(5000) < shares
    expected = {"champion": shares.sum(), "challenger": (1 - shares).sum()}
    counts = {"champion": int(fair.sum()), "challenger": int((~fair).sum())}
    assert not sample_ratio(counts, expected)["mismatch"]
    # A worker that kept the old weights (50/50) for a fifth of the requests: 3 points off.
    stale = rng.random(5000) < np.where(np.arange(5000) % 5 == 0, 0.5, shares)
    skewed = {"champion": int(stale.sum()), "challenger": int((~stale).sum())}
    tripped = sample_ratio(skewed, expected)
    assert tripped["mismatch"] and tripped["p_value"] < 0.001
    # A client naming the challenger for 300 requests of its own (routed at 80/20 then, so
    # their expectation is 240 / 60).
    pinned = {"champion": counts["champion"], "challenger": counts["challenger"] + 300}
    also = {"champion": expected["champion"] + 240, "challenger": expected["challenger"] + 60}
    assert sample_ratio(pinned, also)["mismatch"]
    # Worked by hand: 600 / 400 against 500 / 500: (100^2 + 100^2) / 500 = 40.
    assert sample_ratio({"a": 600, "b": 400}, {"a": 1, "b": 1})["statistic"] == 40.0


def test_the_view_says_why_the_comparison_cannot_be_trusted():
    weights = {"champion": 1.0, "challenger": 1.0}
    names = ["champion", "challenger"] * 40
    requests = {
        "observed": {"champion": 700, "challenger": 300},
        "expected": {"champion": 500, "challenger": 500},
        "voted_on": {"champion": 700, "challenger": 300},
    }
    decision = decide(weights, names, [1] * 80, DecisionParameters(), None, requests)
    ratio = decision["sample_ratio"]
    assert ratio["mismatch"] and ratio["requests"]["mismatch"]
    # 40 votes each on 700 and 300 requests: people vote more on the challenger's answers.
    assert ratio["votes"]["mismatch"] and len(ratio["reasons"]) == 2
    assert decision["challengers"][0]["trusted"] is False
    fair = {**requests, "observed": {"champion": 510, "challenger": 490}}
    fair["voted_on"] = fair["observed"]
    assert decide(weights, names, [1] * 80, DecisionParameters(), None, fair)["challengers"][0][
        "trusted"
    ]


def test_the_paired_test_matches_the_beta_binomial_mixture_worked_by_hand():
    # 15 disagreements won by the shadow, 5 by the live variant, 80 agreements.
    shadow = np.array([1] * 15 + [0] * 5 + [1] * 80)
    live = np.array([0] * 15 + [1] * 5 + [1] * 80)
    test = paired_test(shadow, live, alpha=0.05)
    assert (test.shadow_won, test.live_won, test.reviews) == (15, 5, 100)
    assert test.difference == pytest.approx(0.10)

    def beta(a, b):  # B(a, b) = (a-1)! (b-1)! / (a+b-1)! for whole numbers, exactly
        return Fraction(math.factorial(a - 1) * math.factorial(b - 1), math.factorial(a + b - 1))

    # Lambda = B(15 + 12, 5 + 12) / B(12, 12) * 2^20; the largest is after the 15th win,
    # before any loss: B(27, 12) / B(12, 12) * 2^15.
    peak = beta(27, 12) / beta(12, 12) * 2**15
    assert test.p_value == pytest.approx(float(1 / peak), rel=1e-9)
    assert test.started and test.interval[0] < test.difference < test.interval[1]


def test_the_paired_test_keeps_alpha_under_no_difference_and_finds_three_points_in_3000():
    from critic.evaluation.simulate import paired_votes

    rng = np.random.default_rng(2)
    false = 0
    for _ in range(300):
        agreed = (rng.random(3000) < 0.9).astype(int)
        disagree = rng.random(3000) < 0.1
        wins = (rng.random(3000) < 0.5).astype(int)  # a disagreement: a coin's toss either way
        shadow, live = np.where(disagree, wins, agreed), np.where(disagree, 1 - wins, agreed)
        false += paired_test(shadow, live, 0.05).p_value <= 0.05
    assert false / 300 <= 0.05
    shadow, live = paired_votes(np.random.default_rng(4), 3000, 0.86, 0.03, 0.1)
    assert verdict(paired_test(shadow, live, 0.05), 0.05, 0.05) == "challenger better"


def test_the_paired_sample_size_matches_connors_formula_worked_by_hand():
    # psi = 0.05, delta = 0.007: (1.95996 * 0.223607 + 0.841621 * 0.223497)^2 / 0.000049
    # = (0.438261 + 0.188098)^2 / 0.000049 = 0.392326 / 0.000049 = 8006.7 -> 8007
    assert paired_reviews_needed(0.05, 0.007, alpha=0.05, power=0.8) == 8007
    # Against a split of the same two accuracies: 22,088 votes per variant.
    assert votes_per_variant(0.9255, 0.007, alpha=0.05, power=0.8) == 22088
