"""Deciding an A/B test on feedback: is the challenger right more often than the champion?

Pure functions over vote counts (no I/O), used by the A/B view.

The test is the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis and Walsh,
"Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations Research, 2022), as
Optimizely ships it, for the difference of two proportions under the normal approximation:

    theta_hat = accuracy(challenger) - accuracy(champion)
    V         = p_a (1 - p_a) / n_a + p_b (1 - p_b) / n_b     (variance of theta_hat)
    Lambda    = sqrt(V / (V + tau2)) * exp(tau2 * theta_hat^2 / (2 V (V + tau2)))

the likelihood ratio of "the difference is drawn from N(0, tau2)" against "no difference",
averaged over that normal mixing prior. Under no difference, Lambda is a martingale, so the
chance that it ever crosses 1 / alpha -- however often someone looks -- is at most alpha
(Ville's inequality). The always-valid p-value is the running minimum of 1 / Lambda; the
always-valid interval is the running intersection of {theta : Lambda(theta) < 1 / alpha}.

What it assumes: each vote is independent of the others, and each variant's accuracy stays the
same while the test runs (the same kind of reviews, the same people voting). The normal
approximation needs a few votes on each side: the test starts once both have
``MIN_VOTES``, and V is computed from (right + 1) / (votes + 2), which keeps it above zero
when one side has been right every time so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

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
    now = float(difference[-1]) if len(difference) else 0.0
    started = (champion_votes >= MIN_VOTES) & (challenger_votes >= MIN_VOTES)
    if not started.any():
        return SequentialTest(now, 1.0, None, False)
    p_value = float(min(1.0, 1.0 / ratio.max()))
    half = interval_half_width(variance[started], alpha, tau)
    low, high = difference[started] - half, difference[started] + half
    running_low, running_high = float(low.max()), float(high.min())
    if running_low > running_high:
        # The intervals of different looks need not overlap (a chance the method allows,
        # at most alpha); the latest one is then the honest summary.
        running_low, running_high = float(low[-1]), float(high[-1])
    return SequentialTest(now, p_value, (running_low, running_high), True)


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
    "(Always Valid Inference, 2022), on the difference of two accuracies (normal "
    f"approximation), with a normal mixing prior N(0, {TAU}\u00b2) on the difference. Its "
    "p-value and interval stay valid however often you look: when there is no difference, "
    "the chance that it ever declares a winner is at most \u03b1. With several challengers, "
    "each comparison has its own \u03b1."
)
ASSUMES = (
    "Each vote is independent of the others, and each variant's accuracy stays the same while "
    "the test runs (the same kind of reviews, the same people voting). The test starts once "
    f"each side has {MIN_VOTES} votes."
)
SAMPLE_SIZE = (
    "Votes each variant needs for a fixed-size two-proportion z-test to find the minimum "
    "difference at the chosen power, at the pooled accuracy so far (50% before any vote); "
    "the always-valid test may need somewhat more, the price of looking at will."
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


def compare(
    champion: str,
    challenger: str,
    variants: np.ndarray,
    right: np.ndarray,
    parameters: DecisionParameters,
) -> dict:
    """The decision on one challenger against the champion, from the votes in order
    (``variants[i]`` voted on, ``right[i]`` 1 or 0); votes on other variants are left out."""
    variants, right = np.asarray(variants), np.asarray(right, dtype=np.float64)
    mine = (variants == champion) | (variants == challenger)
    on_challenger = variants[mine] == challenger
    votes = right[mine]
    test = sequential_test(votes, on_challenger, parameters.alpha)
    counts = {
        name: (int(side.sum()), int(votes[side].sum()))
        for name, side in ((champion, ~on_challenger), (challenger, on_challenger))
    }
    total_votes = sum(n for n, _ in counts.values())
    pooled = sum(r for _, r in counts.values()) / total_votes if total_votes else 0.5
    needed = votes_per_variant(
        pooled, parameters.min_difference, parameters.alpha, parameters.power
    )
    decided = verdict(test, parameters.alpha, parameters.min_difference)
    return {
        "challenger": challenger,
        "votes": {name: n for name, (n, _) in counts.items()},
        "accuracy": {name: r / n if n else None for name, (n, r) in counts.items()},
        "difference": test.difference if all(n for n, _ in counts.values()) else None,
        "interval": None if test.interval is None else list(test.interval),
        "p_value": test.p_value,
        "started": test.started,
        "votes_needed_per_variant": needed,
        # Once decided, there is nothing left to wait for.
        "votes_still_needed": 0
        if decided != "keep testing"
        else max(0, needed - min(n for n, _ in counts.values())),
        "verdict": decided,
    }


def decide(
    weights: dict[str, float],
    variants: np.ndarray,
    right: np.ndarray,
    parameters: DecisionParameters,
) -> dict:
    """Every challenger against the champion, with the method in words; no champion while no
    variant is known (critic web before the endpoint's first answer)."""
    champion = champion_of(weights) if weights else None
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
        "challengers": [
            compare(champion, name, variants, right, parameters)
            for name in weights
            if name != champion
        ],
    }


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
