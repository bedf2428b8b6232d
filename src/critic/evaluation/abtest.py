"""Deciding an A/B test on feedback: is the challenger right more often than the champion?

Pure functions over votes (no I/O), used by the A/B view.

**The test** is the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis and
Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations Research,
2022), for a difference theta with an estimate theta_hat of variance V:

    Lambda = sqrt(V / (V + tau2)) * exp(tau2 * theta_hat^2 / (2 V (V + tau2)))

the likelihood ratio of "the difference is drawn from N(0, tau2)" against "no difference",
averaged over that normal mixing prior. Under no difference, Lambda is a martingale, so the
chance that it ever crosses 1 / alpha -- however often someone looks -- is at most alpha
(Ville's inequality). The always-valid p-value is the running minimum of 1 / Lambda; the
always-valid interval is the running intersection of {theta : Lambda(theta) < 1 / alpha}.

**What theta_hat is** decides what the test can survive. The textbook estimate -- each
variant's accuracy over its votes, subtracted (:func:`sequential_test`) -- assumes a fixed
split and accuracies that stay put. Once traffic follows the votes (Thompson sampling) and
the accuracy of both drifts (the mix of reviews or of voters changes during the day), the
variant that happens to get more traffic late collects more of the easier votes and looks
better: simulated, it named a false winner in 23% of tests at alpha = 0.05.

:func:`adaptive_test` uses instead the augmented inverse-propensity-weighted (AIPW, "doubly
robust") increments of Waudby-Smith, Wu, Ramdas, Karampatziakis and Mineiro, "Anytime-valid
off-policy inference for contextual bandits" (ACM/IMS JDS, 2024), one per vote:

    Z_t = m_b - m_a + [A_t = b] (Y_t - m_b) / pi_t(b) - [A_t = a] (Y_t - m_a) / pi_t(a)

where A_t is the variant that answered, Y_t 1 if it was right, pi_t the probability it was
chosen with (the weights of that moment, logged with the answer) and m_a, m_b each variant's
accuracy over the votes before this one. Given the past, E[Z_t] = mu_b(t) - mu_a(t) whatever
the weights did and however the accuracies drift: under "no difference at any moment" the
increments are a martingale difference sequence, and the mSPRT on their mean with their
sample variance is the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha,
Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences"
(Annals of Statistics, 2024). The m's only reduce the variance; a poor m costs power, never
validity. The price of adaptivity is variance: a vote on a variant shown 5% of the time
counts twenty-fold, so the less traffic the loser gets, the longer a decision takes.

**What the counts must also pass**: the variants' shares of requests must match what their
logged weights imply, and people must vote on each variant's answers at the same rate
(:func:`sample_ratio`); otherwise the votes are not the random sample the test assumes.
**Several comparisons** (challengers and shadows against one champion) share one alpha:
Holm's step-down correction (:func:`holm`). **A shadow** answers the same reviews as the
live variant: its votes are paired, and only the reviews where the two disagree carry
information (:func:`paired_test`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln
from scipy.stats import binomtest, chisquare, norm

TAU = 0.1
"""Standard deviation of the mixing prior on the difference: the test reaches a decision
soonest for differences of about this size (ten points of accuracy). Fixed in advance, as the
method requires: choosing it after looking at the data would void the guarantee."""
MIN_VOTES = 20
"""Votes each side needs before the test looks at all (the normal approximation's due)."""

VERDICTS = ("keep testing", "challenger better", "champion better", "no difference worth the wait")


def _variance(right: np.ndarray, votes: np.ndarray) -> np.ndarray:
    smoothed = (right + 1.0) / (votes + 2.0)
    return smoothed * (1.0 - smoothed) / np.maximum(votes, 1)


def msprt_path(
    champion_right: np.ndarray,
    champion_votes: np.ndarray,
    challenger_right: np.ndarray,
    challenger_votes: np.ndarray,
    tau: float = TAU,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The difference, its variance and the mixture likelihood ratio Lambda at each look.

    Arguments are cumulative counts at each look (any shape, broadcast together); looks where
    either side has fewer than ``MIN_VOTES`` get Lambda = 1 (no evidence either way).
    """
    champion_votes = np.asarray(champion_votes, dtype=np.float64)
    challenger_votes = np.asarray(challenger_votes, dtype=np.float64)
    difference = np.asarray(challenger_right) / np.maximum(challenger_votes, 1) - np.asarray(
        champion_right
    ) / np.maximum(champion_votes, 1)
    variance = _variance(np.asarray(champion_right), champion_votes) + _variance(
        np.asarray(challenger_right), challenger_votes
    )
    tau2 = tau * tau
    log_ratio = 0.5 * np.log(variance / (variance + tau2)) + tau2 * difference**2 / (
        2.0 * variance * (variance + tau2)
    )
    started = (champion_votes >= MIN_VOTES) & (challenger_votes >= MIN_VOTES)
    return difference, variance, np.exp(np.where(started, log_ratio, 0.0))


def interval_half_width(variance: np.ndarray, alpha: float, tau: float = TAU) -> np.ndarray:
    """Half the width of {theta : Lambda(theta) < 1 / alpha} around the observed difference."""
    tau2 = tau * tau
    return np.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2 * math.log(1 / alpha) + np.log((variance + tau2) / variance))
    )


@dataclass(frozen=True)
class SequentialTest:
    """The always-valid test after every vote so far."""

    difference: float
    """Challenger's accuracy minus the champion's, now."""
    p_value: float
    """Always-valid p-value of "no difference": the running minimum of 1 / Lambda."""
    interval: tuple[float, float] | None
    """Always-valid (1 - alpha) interval of the difference; None before the test starts."""
    started: bool


def sequential_test(
    votes: np.ndarray, challenger: np.ndarray, alpha: float, tau: float = TAU
) -> SequentialTest:
    """The mSPRT over a sequence of votes in the order they came.

    ``votes``: 1 where the answer was right, 0 where wrong; ``challenger``: True where the vote
    is on the challenger's answer, False on the champion's. The test looks after every vote.
    """
    votes = np.asarray(votes, dtype=np.float64)
    challenger = np.asarray(challenger, dtype=bool)
    challenger_votes = np.cumsum(challenger)
    champion_votes = np.cumsum(~challenger)
    challenger_right = np.cumsum(votes * challenger)
    champion_right = np.cumsum(votes * ~challenger)
    difference, variance, ratio = msprt_path(
        champion_right, champion_votes, challenger_right, challenger_votes, tau
    )
    started = (champion_votes >= MIN_VOTES) & (challenger_votes >= MIN_VOTES)
    return _summarised(difference, variance, np.log(ratio), started, alpha, tau)


def _summarised(
    difference: np.ndarray,
    variance: np.ndarray,
    log_ratio: np.ndarray,
    started: np.ndarray,
    alpha: float,
    tau: float = TAU,
) -> SequentialTest:
    """The test after the last look, from the estimate, its variance and log Lambda at every
    look: the running minimum of the p-value and the running intersection of the intervals,
    over the looks where the test had started."""
    now = float(difference[-1]) if len(difference) else 0.0
    if not started.any():
        return SequentialTest(now, 1.0, None, False)
    p_value = float(min(1.0, math.exp(-float(log_ratio[started].max()))))
    half = interval_half_width(variance[started], alpha, tau)
    low, high = difference[started] - half, difference[started] + half
    running_low, running_high = float(low.max()), float(high.min())
    if running_low > running_high:
        # The intervals of different looks need not overlap (a chance the method allows,
        # at most alpha); the latest one is then the honest summary.
        running_low, running_high = float(low[-1]), float(high[-1])
    return SequentialTest(now, p_value, (running_low, running_high), True)


def _log_mixture_ratio(difference: np.ndarray, variance: np.ndarray, tau: float) -> np.ndarray:
    tau2 = tau * tau
    return 0.5 * np.log(variance / (variance + tau2)) + tau2 * difference**2 / (
        2.0 * variance * (variance + tau2)
    )


def aipw_increments(
    variants: np.ndarray, right: np.ndarray, shares: np.ndarray, champion: str, challenger: str
) -> np.ndarray:
    """One increment per vote (see the module's text), whose running mean estimates the
    challenger's accuracy minus the champion's over the time the votes span.

    ``shares[i]``: the probability that the variant of vote i was chosen with, when it
    answered (above 0 for every vote on the two compared)."""
    variants = np.asarray(variants)
    right = np.asarray(right, dtype=np.float64)
    shares = np.asarray(shares, dtype=np.float64)
    on_champion, on_challenger = variants == champion, variants == challenger
    means = []
    for side in (on_champion, on_challenger):
        # Each variant's accuracy over its votes *before* this one (smoothed: (r + 1) / (n + 2)):
        # known before the vote, which is what keeps the increment's mean right.
        right_before = np.cumsum(right * side) - right * side
        votes_before = np.cumsum(side) - side
        means.append((right_before + 1.0) / (votes_before + 2.0))
    champion_mean, challenger_mean = means
    divisor = np.where(on_champion | on_challenger, shares, 1.0)
    return (
        challenger_mean
        - champion_mean
        + np.where(on_challenger, (right - challenger_mean) / divisor, 0.0)
        - np.where(on_champion, (right - champion_mean) / divisor, 0.0)
    )


def adaptive_test(
    variants: np.ndarray,
    right: np.ndarray,
    shares: np.ndarray,
    champion: str,
    challenger: str,
    alpha: float,
    tau: float = TAU,
) -> SequentialTest:
    """The mSPRT on the AIPW increments of the votes in the order they came, looking after
    every vote: valid whatever the weights did (Thompson sampling, an operator) and however
    both accuracies drift together. Votes on other variants count too (they carry the two
    running means); the test starts once each of the two has ``MIN_VOTES``."""
    mean, variance, log_ratio, started = adaptive_path(
        variants, right, shares, champion, challenger, tau
    )
    return _summarised(mean, variance, log_ratio, started, alpha, tau)


def adaptive_path(
    variants: np.ndarray,
    right: np.ndarray,
    shares: np.ndarray,
    champion: str,
    challenger: str,
    tau: float = TAU,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`adaptive_test` at every look: the estimate, its variance, log Lambda, and
    whether the test had started."""
    variants = np.asarray(variants)
    increments = aipw_increments(variants, right, shares, champion, challenger)
    looks = np.arange(1, len(increments) + 1, dtype=np.float64)
    mean = np.cumsum(increments) / looks
    spread = np.cumsum(increments**2) - looks * mean**2
    # The sample variance of the increments, floored where a run of identical votes makes
    # it zero: a test that believed zero variance would decide on nothing.
    sample_variance = np.maximum(spread / np.maximum(looks - 1, 1), 1e-4)
    variance = sample_variance / looks
    started = (np.cumsum(variants == champion) >= MIN_VOTES) & (
        np.cumsum(variants == challenger) >= MIN_VOTES
    )
    return mean, variance, _log_mixture_ratio(mean, variance, tau), started


PAIRED_PRIOR = 12.0
"""The paired test's mixing prior on the share of disagreements the shadow wins: Beta(12, 12),
a standard deviation of 0.1 around one half -- fixed in advance, as the method requires."""
MIN_PAIRS = 10
"""Disagreements the paired test needs before it looks at all."""


def log_beta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return gammaln(a) + gammaln(b) - gammaln(a + b)


@dataclass(frozen=True)
class PairedTest(SequentialTest):
    """The always-valid paired test after every labelled review so far."""

    shadow_won: int = 0
    """Reviews the shadow got right and the live variant wrong."""
    live_won: int = 0
    """Reviews the live variant got right and the shadow wrong."""
    reviews: int = 0
    """Reviews with both answers and a verdict (agreements too)."""


def paired_test(
    shadow_right: np.ndarray, live_right: np.ndarray, alpha: float, prior: float = PAIRED_PRIOR
) -> PairedTest:
    """Is a shadow right more often than the live variant, on the same reviews?

    ``shadow_right[i]``, ``live_right[i]``: 1 where each got review i right, in the order the
    verdicts came. Only disagreements carry information: under "no difference" each goes the
    shadow's way with probability one half, independently. Their count is tested with the
    beta-binomial mixture martingale

        Lambda_n = B(w + a, l + a) / B(a, a) * 2^(w + l)

    (w disagreements won by the shadow, l by the live variant, a = ``prior``): a likelihood
    ratio against p = 1/2, exact at every sample size, so the chance it ever crosses 1 / alpha
    under no difference is at most alpha (Ville's inequality, as for the mSPRT). Its interval
    for p is {p : B(w + a, l + a) / B(a, a) / (p^w (1 - p)^l) < 1 / alpha}, turned into one for
    the difference of accuracies, (2p - 1) times the share of reviews where they disagree.
    """
    won, lost, log_ratio, started = paired_path(shadow_right, live_right, prior)
    reviews = len(won)
    last_won, last_lost = (int(won[-1]), int(lost[-1])) if reviews else (0, 0)
    difference = (last_won - last_lost) / reviews if reviews else 0.0
    if not started.any():
        return PairedTest(difference, 1.0, None, False, last_won, last_lost, reviews)
    p_value = float(min(1.0, math.exp(-float(log_ratio[started].max()))))
    # The interval of the latest look, on a grid of p: the set where the likelihood at p is
    # within 1 / alpha of the mixture's.
    log_marginal = log_ratio[-1] - (last_won + last_lost) * math.log(2.0)
    grid = np.linspace(1e-4, 1 - 1e-4, 4001)
    likelihood = last_won * np.log(grid) + last_lost * np.log1p(-grid)
    inside = grid[log_marginal - likelihood < math.log(1 / alpha)]
    disagreeing = (last_won + last_lost) / reviews
    interval = (
        (float((2 * inside[0] - 1) * disagreeing), float((2 * inside[-1] - 1) * disagreeing))
        if len(inside)
        else (difference, difference)
    )
    return PairedTest(
        difference, p_value, interval, bool(started[-1]), last_won, last_lost, reviews
    )


def paired_path(
    shadow_right: np.ndarray, live_right: np.ndarray, prior: float = PAIRED_PRIOR
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`paired_test` at every look: disagreements won by the shadow and by the live
    variant so far, log Lambda, and whether the test had started."""
    shadow_right = np.asarray(shadow_right, dtype=np.int64)
    live_right = np.asarray(live_right, dtype=np.int64)
    won = np.cumsum((shadow_right == 1) & (live_right == 0)).astype(np.float64)
    lost = np.cumsum((shadow_right == 0) & (live_right == 1)).astype(np.float64)
    log_marginal = log_beta(won + prior, lost + prior) - log_beta(np.float64(prior), prior)
    log_ratio = log_marginal + (won + lost) * math.log(2.0)
    return won, lost, log_ratio, (won + lost) >= MIN_PAIRS


def paired_reviews_needed(
    disagreement: float, min_difference: float, alpha: float, power: float
) -> int:
    """Labelled reviews (in all) a fixed-size McNemar test at level ``alpha`` needs to find a
    difference of ``min_difference`` with probability ``power`` when the two disagree on a
    share ``disagreement`` of them (Connor, "Sample size for testing differences in
    proportions for the paired-sample design", Biometrics 1987):

        n = (z(1 - alpha/2) sqrt(psi) + z(power) sqrt(psi - delta^2))^2 / delta^2

    A difference cannot exceed the disagreement it comes from: psi is at least delta."""
    psi = max(disagreement, min_difference)
    z_alpha, z_power = norm.ppf(1 - alpha / 2), norm.ppf(power)
    spread = z_alpha * math.sqrt(psi) + z_power * math.sqrt(max(psi - min_difference**2, 0.0))
    return math.ceil(spread**2 / min_difference**2)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm, "A simple sequentially rejective multiple
    test procedure", Scand. J. Statistics 1979), in the order given: rejecting those at or
    under alpha keeps the chance of any false rejection at most alpha, whatever the
    dependence between the tests. Always-valid p-values stay always valid through it."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


SRM_ALPHA = 0.001
"""The level at which a sample-ratio mismatch is reported: stricter than the test's own, as
experimentation platforms set it (Microsoft's ExP uses 0.0005), since it is looked at
continually and a false alarm stops a sound experiment."""


def sample_ratio(observed: dict[str, float], expected: dict[str, float]) -> dict:
    """Pearson's chi-square test of counts per variant against what was expected of them
    (any scale: the expectation is scaled to the observed total). For requests, the
    expectation is the sum of each request's logged probabilities -- which holds across any
    number of weight changes; for votes, each variant's share of the requests."""
    names = [name for name in observed if expected.get(name, 0) > 0 or observed[name] > 0]
    counts = np.array([observed[name] for name in names], dtype=np.float64)
    weights = np.array([expected.get(name, 0.0) for name in names], dtype=np.float64)
    total = counts.sum()
    result = {"observed": {n: int(c) for n, c in zip(names, counts, strict=True)}}
    if len(names) < 2 or total == 0 or weights.sum() == 0:
        return {**result, "expected": None, "statistic": None, "p_value": None, "mismatch": False}
    expect = weights / weights.sum() * total
    if (expect == 0).any():
        # Something where nothing could be: a mismatch beyond any test.
        # (No statistic: it would be infinite.)
        impossible = bool((counts[expect == 0] > 0).any())
        statistic, p_value = (None, 0.0) if impossible else (0.0, 1.0)
    else:
        statistic, p_value = (float(x) for x in chisquare(counts, expect))
    return {
        **result,
        "expected": {n: round(float(e), 1) for n, e in zip(names, expect, strict=True)},
        "statistic": statistic,
        "p_value": p_value,
        "mismatch": p_value < SRM_ALPHA,
    }


def votes_per_variant(accuracy: float, min_difference: float, alpha: float, power: float) -> int:
    """Votes each variant needs for a two-sided two-proportion z-test at level ``alpha`` to
    find a difference of ``min_difference`` with probability ``power``:

        n = (z(1 - alpha/2) sqrt(2 p (1 - p)) + z(power) sqrt(p1 q1 + p2 q2))^2 / delta^2

    with p1, p2 = accuracy -/+ delta/2 (kept inside (0, 1)) and p their mean (Fleiss, Levin
    and Paik, Statistical Methods for Rates and Proportions, 3rd ed., eq. 4.14, without the
    continuity correction).
    """
    low = min(max(accuracy - min_difference / 2, 1e-6), 1 - min_difference - 1e-6)
    p1, p2 = low, low + min_difference
    pooled = (p1 + p2) / 2
    z_alpha, z_power = norm.ppf(1 - alpha / 2), norm.ppf(power)
    spread = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(spread**2 / min_difference**2)


def verdict(test: SequentialTest, alpha: float, min_difference: float) -> str:
    """One of :data:`VERDICTS`: the interval says which side is better once it leaves zero
    behind, and that the difference is too small to matter once it fits inside
    +/- ``min_difference``."""
    if not test.started or test.interval is None:
        return "keep testing"
    low, high = test.interval
    if test.p_value <= alpha and low > 0:
        return "challenger better"
    if test.p_value <= alpha and high < 0:
        return "champion better"
    if -min_difference < low and high < min_difference:
        return "no difference worth the wait"
    return "keep testing"


METHOD = (
    "mSPRT: the mixture sequential probability ratio test of Johari, Pekelis and Walsh "
    "(Always Valid Inference, 2022), with a normal mixing prior N(0, " + str(TAU) + "\u00b2) on "
    "the difference of accuracies, applied to inverse-propensity-weighted (AIPW) increments: "
    "each vote is weighted by one over the probability that its variant was chosen with when "
    "it answered, logged with the answer (Waudby-Smith et al., Anytime-valid off-policy "
    "inference for contextual bandits, 2024). The test compares the variants over the same "
    "moments, so it stays valid when the weights move (Thompson sampling, an operator) and "
    "when both accuracies drift during the day; pooled counts do not (a false winner in 23% "
    "of simulated tests under adaptive traffic and drift). Its p-value and interval stay valid "
    "however often you look. With several challengers, Holm's correction keeps the chance of "
    "any false winner at most \u03b1: the verdicts follow the adjusted p-values, the "
    "intervals are at level \u03b1 divided by the number of comparisons."
)
ASSUMES = (
    "Each vote is independent of the others and people vote on each variant's answers at the "
    "same rate (checked: sample ratio); the difference between the variants may change over "
    "time, and the test judges its average over the votes. A vote on a variant shown rarely "
    "counts for more, so the less traffic the loser gets, the longer a decision takes. Votes "
    "on answers a client asked a variant for by name are left out: nothing chose them at "
    f"random. The test starts once each side has {MIN_VOTES} votes."
)
SAMPLE_SIZE = (
    "Votes each variant needs for a fixed-size two-proportion z-test to find the minimum "
    "difference at the chosen power with an even split, at the pooled accuracy so far (50% "
    "before any vote); the always-valid test may need somewhat more (the price of looking at "
    "will), and more again while the split is uneven."
)
SRM_TEXT = (
    "Sample ratio: Pearson's chi-square test of each variant's requests against the sum of "
    "the probabilities they were routed with (which holds across weight changes), and of each "
    "variant's votes against its share of the requests. A p-value under "
    f"{SRM_ALPHA} means the traffic or the voting is not what the test assumes -- a worker "
    "that lost a weight change, a client naming its variant, people voting more on one "
    "variant's answers -- and the comparison cannot be trusted until the cause is found."
)


@dataclass(frozen=True)
class DecisionParameters:
    """What the person running the test chooses: the smallest difference worth finding, the
    test's level and the power of the sample size."""

    min_difference: float = 0.05
    alpha: float = 0.05
    power: float = 0.8

    def __post_init__(self) -> None:
        for name, low, high in (("min_difference", 0, 0.5), ("alpha", 0, 0.5), ("power", 0, 1)):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and low < value < high):
                raise ValueError(
                    f"{name} must be a number above {low} and below {high}, got {value!r}"
                )


def champion_of(weights: dict[str, float]) -> str:
    """The champion: the variant with the highest weight, the first one on a tie."""
    return max(weights, key=lambda name: weights[name])


def logged_shares(variants: np.ndarray, shares: np.ndarray | None) -> np.ndarray:
    """Each vote's logged probability; where none was logged (votes from before critic
    logged it, or recorded without an answer id), its variant's share of all the votes --
    the split those votes came from, as near as the votes tell (today's weights need not be
    the ones they were given under)."""
    variants = np.asarray(variants)
    names, index, counts = np.unique(variants, return_inverse=True, return_counts=True)
    estimated = (counts / max(len(variants), 1))[index] if len(names) else np.zeros(0)
    if shares is None:
        return estimated
    shares = np.asarray(shares, dtype=np.float64)
    return np.where(np.isfinite(shares) & (shares > 0), shares, estimated)


def compare(
    champion: str,
    challenger: str,
    variants: np.ndarray,
    right: np.ndarray,
    parameters: DecisionParameters,
    shares: np.ndarray | None = None,
    comparisons: int = 1,
) -> dict:
    """The decision on one challenger against the champion, from the votes in order
    (``variants[i]`` voted on, ``right[i]`` 1 or 0, ``shares[i]`` the probability its variant
    was chosen with; None: an even, fixed split). ``comparisons``: how many share alpha
    (the interval is at alpha / comparisons; :func:`decide` adjusts the p-values)."""
    variants, right = np.asarray(variants), np.asarray(right, dtype=np.float64)
    if shares is None:
        shares = np.full(len(variants), 0.5)
    test = adaptive_test(
        variants, right, shares, champion, challenger, parameters.alpha / comparisons
    )
    counts = {
        name: (int((variants == name).sum()), int(right[variants == name].sum()))
        for name in (champion, challenger)
    }
    total_votes = sum(n for n, _ in counts.values())
    pooled = sum(r for _, r in counts.values()) / total_votes if total_votes else 0.5
    needed = votes_per_variant(
        pooled, parameters.min_difference, parameters.alpha, parameters.power
    )
    return {
        "challenger": challenger,
        "votes": {name: n for name, (n, _) in counts.items()},
        "accuracy": {name: r / n if n else None for name, (n, r) in counts.items()},
        "difference": test.difference if all(n for n, _ in counts.values()) else None,
        "interval": None if test.interval is None else list(test.interval),
        "p_value": test.p_value,
        "adjusted_p_value": test.p_value,
        "started": test.started,
        "votes_needed_per_variant": needed,
        "_test": test,
    }


PAIRED_TEXT = (
    "A shadow answers copies of the live requests. When someone marks the champion's answer "
    "right or wrong, the review's true label is known, so the shadow's answer on the same "
    "review is right or wrong too: a paired comparison. Only the reviews where the two "
    "disagree carry information; under no difference each goes either way with probability "
    "one half. The test is the beta-binomial mixture martingale on those disagreements "
    f"(prior Beta({PAIRED_PRIOR:g}, {PAIRED_PRIOR:g})), always valid like the traffic test; "
    "it needs far fewer votes than a traffic split when the two rarely disagree. Reviews "
    "still needed: a fixed-size McNemar test (Connor, 1987) at the disagreement so far."
)


def compare_shadow(
    shadow: str,
    champion: str,
    shadow_right: list[int],
    live_right: list[int],
    parameters: DecisionParameters,
    comparisons: int = 1,
) -> dict:
    """The paired decision on one shadow against the champion, on the champion's voted
    answers the shadow also answered (see :data:`PAIRED_TEXT`); :func:`decide` adjusts the
    p-value."""
    test = paired_test(shadow_right, live_right, parameters.alpha / comparisons)
    reviews = test.reviews
    disagreement = (test.shadow_won + test.live_won) / reviews if reviews else 0.0
    needed = paired_reviews_needed(
        disagreement or 0.1, parameters.min_difference, parameters.alpha, parameters.power
    )
    return {
        "shadow": shadow,
        "against": champion,
        "reviews": reviews,
        "shadow_won": test.shadow_won,
        "live_won": test.live_won,
        "accuracy": {
            "shadow": float(np.mean(shadow_right)) if reviews else None,
            "live": float(np.mean(live_right)) if reviews else None,
        },
        "difference": test.difference if reviews else None,
        "interval": None if test.interval is None else list(test.interval),
        "p_value": test.p_value,
        "adjusted_p_value": test.p_value,
        "started": test.started,
        "reviews_needed": needed,
        "min_pairs": MIN_PAIRS,
        "_test": test,
    }


def _decided(
    entry: dict, parameters: DecisionParameters, done: int, needed: str = "votes_needed_per_variant"
) -> dict:
    """``entry`` with its verdict (on its adjusted p-value) and what is still needed: the
    votes (per variant) or the labelled reviews (paired) of its ``needed`` key, less ``done``."""
    test: SequentialTest = entry.pop("_test")
    adjusted = SequentialTest(
        test.difference, entry["adjusted_p_value"], test.interval, test.started
    )
    decided = verdict(adjusted, parameters.alpha, parameters.min_difference)
    entry["verdict"] = decided
    # Once decided, there is nothing left to wait for.
    still = "votes_still_needed" if needed == "votes_needed_per_variant" else "reviews_still_needed"
    entry[still] = 0 if decided != "keep testing" else max(0, entry[needed] - done)
    return entry


def decide(
    weights: dict[str, float],
    variants: np.ndarray,
    right: np.ndarray,
    parameters: DecisionParameters,
    shares: np.ndarray | None = None,
    requests: dict | None = None,
    left_out: int = 0,
    paired: dict[str, tuple[list[int], list[int]]] | None = None,
) -> dict:
    """Every challenger and every shadow against the champion, with the method in words; no champion while no
    variant is known (critic web before the endpoint's first answer).

    ``shares``: each vote's logged probability (NaN where none was logged: see
    :func:`logged_shares`); ``requests``: for the sample-ratio checks (None: not checked), {"observed":
    {variant: requests}, "expected": {variant: the sum of their probabilities}} and
    "voted_on": {variant: requests} over the span of the votes (else "observed");
    ``left_out``: votes not part of the experiment (on answers a client asked a variant for
    by name); ``paired``: per shadow, (shadow right, champion right) on the champion's
    answers it also answered, in the order of the verdicts (:func:`paired_test`)."""
    variants, right = np.asarray(variants), np.asarray(right, dtype=np.float64)
    champion = champion_of(weights) if weights else None
    names = [name for name in weights if name != champion]
    paired = paired or {}
    family = len(names) + len(paired)
    probabilities = logged_shares(variants, shares)
    challengers = [
        compare(champion, name, variants, right, parameters, probabilities, family)
        for name in names
    ]
    shadows = [
        compare_shadow(name, champion, *pairs, parameters, family) for name, pairs in paired.items()
    ]
    family_entries = challengers + shadows
    for entry, adjusted in zip(
        family_entries, holm([entry["p_value"] for entry in family_entries]), strict=True
    ):
        entry["adjusted_p_value"] = adjusted
    challengers = [
        _decided(entry, parameters, min(entry["votes"].values())) for entry in challengers
    ]
    shadows = [_decided(entry, parameters, entry["reviews"], "reviews_needed") for entry in shadows]
    ratio = sample_ratios(weights, variants, requests)
    if ratio["mismatch"]:
        for entry in challengers:
            entry["trusted"] = False
    return {
        "champion": champion,
        "champion_rule": "the variant with the highest traffic weight (the first on a tie)",
        "min_difference": parameters.min_difference,
        "alpha": parameters.alpha,
        "power": parameters.power,
        "tau": TAU,
        "min_votes": MIN_VOTES,
        "method": METHOD,
        "assumes": ASSUMES,
        "sample_size": SAMPLE_SIZE,
        "correction": "holm" if family > 1 else None,
        "comparisons": family,
        "left_out_votes": left_out,
        "sample_ratio": ratio,
        "challengers": [{"trusted": True, **entry} for entry in challengers],
        "shadows": shadows,
        "paired_method": PAIRED_TEXT,
    }


def sample_ratios(weights: dict, variants: np.ndarray, requests: dict | None) -> dict:
    """The two sample-ratio checks (:data:`SRM_TEXT`) and what they mean for the test."""
    result = {"method": SRM_TEXT, "alpha": SRM_ALPHA, "requests": None, "votes": None}
    reasons = []
    if requests is not None:
        observed = {name: requests["observed"].get(name, 0) for name in weights}
        result["requests"] = sample_ratio(
            observed, {name: requests["expected"].get(name, 0.0) for name in weights}
        )
        if result["requests"]["mismatch"]:
            reasons.append(
                "each variant's share of the requests is not what its weights imply "
                f"(p = {result['requests']['p_value']:.2g})"
            )
        voted = {name: int((np.asarray(variants) == name).sum()) for name in weights}
        answered = requests.get("voted_on") or observed
        answered = {name: answered.get(name, 0) for name in weights}
        # Votes are a sample of the answers; more votes than answers means the answers were
        # not all counted (votes from before the counts were kept), and there is no rate.
        if all(voted[name] <= answered[name] for name in weights):
            result["votes"] = sample_ratio(voted, answered)
        if result["votes"] is not None and result["votes"]["mismatch"]:
            reasons.append(
                "people vote on some variants' answers more often than on others' "
                f"(p = {result['votes']['p_value']:.2g})"
            )
    return {**result, "mismatch": bool(reasons), "reasons": reasons}


def thompson_weights(
    counts: dict[str, tuple[int, int]], floor: float, draws: int = 20_000
) -> dict[str, float]:
    """Traffic weights that follow the feedback: Thompson sampling's allocation.

    ``counts``: per variant, (votes, right). Each variant's accuracy has a Beta(1 + right,
    1 + wrong) posterior (a uniform prior); its weight is the posterior probability that it is
    the most accurate (estimated from ``draws`` joint draws), squeezed into [floor, 1] so that
    the loser keeps enough traffic to go on being measured: floor + (1 - n floor) P(best).

    The draws are seeded by the counts, so every worker process, looking at the same file,
    arrives at the same weights rather than pulling the traffic to and fro.
    """
    names = list(counts)
    if not 0 <= floor * len(names) <= 1:
        raise ValueError(f"a floor of {floor} for each of {len(names)} variants exceeds 100%")
    seed = [len(names), *(value for name in names for value in counts[name])]
    rng = np.random.default_rng(seed)
    samples = np.stack(
        [rng.beta(1 + right, 1 + votes - right, size=draws) for votes, right in counts.values()]
    )  # (variants, draws)
    best = np.bincount(samples.argmax(axis=0), minlength=len(names)) / draws
    return {
        name: round(floor + (1 - floor * len(names)) * float(share), 4)
        for name, share in zip(names, best, strict=True)
    }


def accuracy_interval(right: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``right / total``: sensible at 0, at 100% and at small counts,
    where the normal approximation gives intervals outside [0, 1]."""
    interval = binomtest(right, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)
