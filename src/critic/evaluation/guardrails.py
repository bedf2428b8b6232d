"""Guardrails of a rollout: is the challenger, over one step, doing harm the champion is not?

A rollout (critic.serving, issue 24) moves a challenger's share of the traffic up in steps and
takes it back the moment one of these checks trips. Every check compares the two variants over
the *same* period, so that load, time of day and the mix of reviews -- which move both --
do not trip it; and each leans towards not tripping on a handful of requests, because a
rollback costs a release while one more second of a small share costs little.

* **Server errors** (5xx answers other than 503, which includes 504: the model too slow for the
  request's deadline): tripped when the challenger's error share is surely more than
  ``max_error_increase`` above the champion's: the low end of the challenger's confidence
  sequence for it above the high end of the champion's plus the allowance. Each is the
  beta-binomial mixture's (Robbins 1970; Howard et al. 2021), valid however often the step is
  looked at. A Wilson interval of the challenger against the champion's observed share,
  looked at every half second as the watch does, rolled back a challenger as good as the
  champion in 10-20% of steps of 2,000 requests when both failed 1% of their requests, and
  21-45% at 3% (simulated in tests/evaluation/test_guardrails.py); these bounds in none,
  and still catch a challenger failing a quarter of its requests after 80-270 requests at a
  30% share.
* **Unavailable** (503: a full queue, the variant cannot keep up with its share): the same,
  with ``max_unavailable_increase``.
* **Latency**: the challenger's p95 more than ``max_latency_ratio`` times the champion's, once
  each has ``min_requests`` answered -- judged not on the two p95 figures, which on a few dozen
  answers are little more than each one's slowest answer or two (one pause of the machine made
  an identical challenger "3.1 times" slower), but on confidence bounds for them: the
  challenger's p95 must be surely above ``max_latency_ratio`` times what the champion's surely
  is under. The bounds are order statistics from a confidence sequence for quantiles (Howard
  and Ramdas, "Sequential estimation of quantiles with applications to A/B-testing and
  best-arm identification", Bernoulli 2022), valid however often the step is looked at, for
  any distribution of latencies, and read off the histogram's buckets the way its p95 is. The
  champion's needs about a hundred answers before it bounds its p95 at all. A p95 under
  ``latency_floor_ms`` never trips (the buckets cannot tell 0.3 ms from 0.6 ms, and neither
  can a user).
* **Accuracy** from feedback: the A/B view's own always-valid test on the AIPW increments of
  the votes (:func:`critic.evaluation.abtest.adaptive_test`) -- valid however often it is
  looked at and however the shares moved during the rollout -- tripped when its whole interval
  of challenger-minus-champion lies below ``-accuracy_margin``: the challenger is worse by more
  than the margin, at level ``alpha``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import brentq

from critic.evaluation.abtest import adaptive_test, log_beta, logged_shares


@dataclass(frozen=True)
class GuardrailLimits:
    """How much worse than the champion a challenger may be before its rollout rolls back."""

    max_error_increase: float = 0.01
    max_unavailable_increase: float = 0.05
    max_latency_ratio: float = 2.0
    latency_floor_ms: float = 2.0
    min_requests: int = 20
    accuracy_margin: float = 0.03
    alpha: float = 0.05
    confidence: float = 0.95
    """Of each check's comparison: each variant's bound is wrong with at most half of the
    remaining risk, at any look."""

    def __post_init__(self) -> None:
        for name, low, high in (
            ("max_error_increase", 0.0, 1.0),
            ("max_unavailable_increase", 0.0, 1.0),
            ("accuracy_margin", 0.0, 0.5),
        ):
            _check_number(name, getattr(self, name), low, high, low_inclusive=True)
        _check_number("alpha", self.alpha, 0.0, 0.5)
        _check_number("confidence", self.confidence, 0.5, 1.0)
        _check_number("max_latency_ratio", self.max_latency_ratio, 1.0, math.inf)
        _check_number("latency_floor_ms", self.latency_floor_ms, 0.0, math.inf, True)
        if not isinstance(self.min_requests, int) or isinstance(self.min_requests, bool):
            raise ValueError(f"min_requests must be a whole number, got {self.min_requests!r}")
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, got {self.min_requests}")


def _check_number(
    name: str, value: object, low: float, high: float, low_inclusive: bool = False
) -> None:
    fine = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (low <= value if low_inclusive else low < value)
        and value < high
    )
    if not fine:
        bound = "at least" if low_inclusive else "above"
        top = "" if high == math.inf else f" and below {high}"
        raise ValueError(f"{name} must be a number {bound} {low}{top}, got {value!r}")


@dataclass(frozen=True)
class PeriodFigures:
    """One variant's requests over a period (a rollout's step)."""

    requests: int
    """Every request routed to it, answered or refused."""
    server_errors: int = 0
    """5xx answers other than 503 (504 included)."""
    unavailable: int = 0
    """503 answers."""
    answered: int = 0
    """Requests answered (behind the latency)."""
    p95_ms: float | None = None
    latency_buckets: tuple[tuple[float, float], ...] = ()
    """The answers' latency histogram: (upper bound in ms, answers at or under it), cumulative
    and in order, the last bound inf -- what the latency check bounds the p95 from."""

    def to_dict(self) -> dict:
        """What the A/B view shows: every figure but the histogram (its inf is not JSON)."""
        shown = asdict(self)
        del shown["latency_buckets"]
        return shown


@dataclass(frozen=True)
class Trip:
    """A guardrail that tripped, with the figures that tripped it."""

    guardrail: str
    challenger: float
    champion: float
    limit: float
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def _share(part: int, total: int) -> float:
    return part / total if total else 0.0


RATE_PRIOR = (0.5, 5.0)
"""Beta prior of the rate bounds' mixture: failures are rare (a mean of 9%), which tightens the
bounds where they matter, near 0 -- none in 400 requests bounds the rate under 1.5% (2.4% with
a uniform prior)."""


def rate_bounds(part: int, total: int, risk: float, prior=RATE_PRIOR) -> tuple[float, float]:
    """Bounds for the rate behind ``part`` events in ``total`` trials, each wrong with
    probability at most ``risk`` at *any* count of the sequence: the rates p whose likelihood
    is within 1 / ``risk`` of the beta-binomial mixture's, {p : B(a + k, b + n - k) / B(a, b)
    / (p^k (1 - p)^(n - k)) < 1 / risk} -- the mixture is a martingale under p, so it crosses
    1 / risk at some count with probability at most ``risk`` (Ville's inequality)."""
    if total <= 0:
        return 0.0, 1.0
    a, b = prior
    threshold = float(log_beta(np.float64(a + part), np.float64(b + total - part)))
    threshold -= float(log_beta(np.float64(a), np.float64(b))) + math.log(1.0 / risk)

    def outside(p: float) -> float:  # > 0 where p is ruled out; convex, least at part / total
        likelihood = part * math.log(p) if part else 0.0
        if total - part:
            likelihood += (total - part) * math.log1p(-p)
        return threshold - likelihood

    tiny, most = 1e-12, part / total
    low = 0.0 if part == 0 or outside(tiny) <= 0 else brentq(outside, tiny, most)
    high = 1.0 if part == total or outside(1 - tiny) <= 0 else brentq(outside, most, 1 - tiny)
    return float(low), float(high)


def _rate_trip(
    guardrail: str,
    what: str,
    challenger: tuple[int, int],
    champion: tuple[int, int],
    increase: float,
    confidence: float,
) -> Trip | None:
    share_challenger, share_champion = _share(*challenger), _share(*champion)
    risk = (1.0 - confidence) / 2
    at_least = rate_bounds(*challenger, risk)[0]
    at_most = rate_bounds(*champion, risk)[1]
    if at_least <= at_most + increase:
        return None
    return Trip(
        guardrail,
        share_challenger,
        share_champion,
        increase,
        f"{what}: {challenger[0]} of {challenger[1]} requests ({share_challenger:.1%}) against "
        f"the champion's {champion[0]} of {champion[1]} ({share_champion:.1%}); at least "
        f"{at_least:.1%} against at most {at_most:.1%} at {confidence:.0%} however often looked "
        f"at, more than {increase:.1%} apart",
    )


def check_guardrails(
    challenger: PeriodFigures,
    champion: PeriodFigures,
    limits: GuardrailLimits,
    votes: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None,
    names: tuple[str, str] = ("challenger", "champion"),
) -> tuple[list[Trip], dict]:
    """The guardrails that trip, and every check's figures (what the A/B view shows).

    ``votes``: the feedback since the rollout began, in the order it came -- each vote's
    variant, 1 where the answer was right, and the probability its variant was chosen with
    (NaN or None where not logged) -- on any variants; ``names``: the challenger's and the
    champion's variant names in it."""
    trips: list[Trip] = []
    figures: dict = {
        "challenger": challenger.to_dict(),
        "champion": champion.to_dict(),
        "limits": asdict(limits),
    }
    for guardrail, what, field, increase in (
        ("server_errors", "server errors", "server_errors", limits.max_error_increase),
        ("unavailable", "503 (queue full)", "unavailable", limits.max_unavailable_increase),
    ):
        trip = _rate_trip(
            guardrail,
            what,
            (getattr(challenger, field), challenger.requests),
            (getattr(champion, field), champion.requests),
            increase,
            limits.confidence,
        )
        if trip is not None:
            trips.append(trip)
    figures["latency_ratio"] = ratio = _latency_ratio(challenger, champion, limits)
    figures["latency_bounds"] = bounds = _latency_bounds(challenger, champion, limits)
    if ratio is not None and bounds is not None and bounds["tripped"]:
        trips.append(
            Trip(
                "latency",
                challenger.p95_ms,
                champion.p95_ms,
                limits.max_latency_ratio,
                f"latency: p95 {challenger.p95_ms:.2f} ms against the champion's "
                f"{champion.p95_ms:.2f} ms, {ratio:.1f} times, past {limits.max_latency_ratio:g} "
                f"even at {limits.confidence:.0%} (at least {bounds['challenger_above_ms']:.2f} ms "
                f"against at most {bounds['champion_under_ms']:.2f} ms, however often looked at)",
            )
        )
    figures["accuracy"] = accuracy = _accuracy(votes, names, limits)
    if accuracy is not None and accuracy["interval"] is not None:
        high = accuracy["interval"][1]
        if high < -limits.accuracy_margin:
            trips.append(
                Trip(
                    "accuracy",
                    accuracy["difference"],
                    0.0,
                    -limits.accuracy_margin,
                    f"accuracy: the challenger is right {-100 * accuracy['difference']:.1f} "
                    f"points less often than the champion, at least {-100 * high:.1f} points "
                    f"less at {1 - limits.alpha:.0%} (always valid), past the margin of "
                    f"{100 * limits.accuracy_margin:.1f} points",
                )
            )
    return trips, figures


def _latency_ratio(
    challenger: PeriodFigures, champion: PeriodFigures, limits: GuardrailLimits
) -> float | None:
    """The challenger's p95 over the champion's, as the A/B view shows it; None until both
    have enough answered, or while the challenger's p95 is under the floor."""
    if min(challenger.answered, champion.answered) < limits.min_requests:
        return None
    if challenger.p95_ms is None or champion.p95_ms is None:
        return None
    if challenger.p95_ms < limits.latency_floor_ms:
        return None
    # The champion's p95 floored too: a champion at 0.1 ms does not make 0.5 ms "5 times".
    return challenger.p95_ms / max(champion.p95_ms, limits.latency_floor_ms)


QUANTILE = 0.95
"""The latency check's quantile."""
QUANTILE_PRIOR = 10.0
"""Weight of the Beta(q k, (1 - q) k) prior of the quantile bounds' mixture: how many answers'
worth of belief that the share under the true p95 is 0.95; the bounds barely move between 2
and 50 (a hundred answers bound the champion's p95 for any of them)."""


def quantile_ranks(
    count: int, quantile: float, risk: float, prior: float = QUANTILE_PRIOR
) -> tuple[int, int | None]:
    """Ranks (from 1, smallest first) of the order statistics bounding the ``quantile`` of a
    distribution from ``count`` draws of it: its lower bound is the ``low``-th smallest draw (0:
    none), its upper bound the ``high``-th (None: none yet), each wrong with probability at most
    ``risk`` at *any* count of the sequence, so looking after every answer costs nothing.

    Of n draws, the number S at or under the true quantile is binomial(n, q) (at least: ties
    push it up, which only makes the bounds safer). The beta-binomial mixture of likelihood
    ratios against p = q is a martingale, so S stays where it is under 1 / risk at every n but
    with probability ``risk`` (Ville's inequality): there, S >= low puts the low-th smallest draw
    at or under the quantile, and fewer than ``high`` draws under it puts the high-th at or
    above it."""
    if count < 1:
        return 0, None
    below = np.arange(count + 1, dtype=np.float64)
    a, b = quantile * prior, (1.0 - quantile) * prior
    log_ratio = (
        log_beta(a + below, b + count - below)
        - log_beta(np.float64(a), np.float64(b))
        - below * math.log(quantile)
        - (count - below) * math.log1p(-quantile)
    )
    # The likelihood ratio is convex in S, so where it stays under 1 / risk is one run of counts.
    plausible = np.flatnonzero(log_ratio < math.log(1.0 / risk))
    low, high = int(plausible[0]), int(plausible[-1]) + 1
    return low, (high if high <= count else None)


def _at_rank(buckets: tuple[tuple[float, float], ...], rank: int, above: bool) -> float:
    """Where the rank-th smallest answer lies, linearly within its bucket, as the p95 itself
    is read (Prometheus's histogram_quantile); in the last, unbounded bucket, its lower end, or
    inf where ``above`` asks for an upper bound."""
    lower, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return math.inf if above else lower
            return lower + (bound - lower) * (rank - lower_count) / (count - lower_count)
        lower, lower_count = bound, count
    return math.inf if above else lower


def _latency_bounds(
    challenger: PeriodFigures, champion: PeriodFigures, limits: GuardrailLimits
) -> dict | None:
    """How slow the challenger's p95 surely is at least, how quick the champion's at most, and
    whether the first is past ``max_latency_ratio`` times the second (floored); None until both
    have ``min_requests`` answered."""
    if min(challenger.answered, champion.answered) < limits.min_requests:
        return None
    if not challenger.latency_buckets or not champion.latency_buckets:
        return None
    risk = (1.0 - limits.confidence) / 2
    low_rank, _ = quantile_ranks(challenger.answered, QUANTILE, risk)
    _, high_rank = quantile_ranks(champion.answered, QUANTILE, risk)
    above = _at_rank(challenger.latency_buckets, low_rank, False) if low_rank else 0.0
    under = _at_rank(champion.latency_buckets, high_rank, True) if high_rank else math.inf
    tripped = above >= limits.max_latency_ratio * max(under, limits.latency_floor_ms)
    return {
        "challenger_above_ms": above,
        "champion_under_ms": under if math.isfinite(under) else None,
        "tripped": bool(tripped),
    }


def _accuracy(
    votes: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None,
    names: tuple[str, str],
    limits: GuardrailLimits,
) -> dict | None:
    if votes is None:
        return None
    variants, right, shares = (np.asarray(part) if part is not None else None for part in votes)
    if variants is None or not len(variants):
        return None
    challenger, champion = names
    test = adaptive_test(
        variants, right, logged_shares(variants, shares), champion, challenger, limits.alpha
    )
    return {
        "votes": {
            challenger: int(np.sum(variants == challenger)),
            champion: int(np.sum(variants == champion)),
        },
        "difference": test.difference,
        "interval": test.interval,
        "started": test.started,
    }
