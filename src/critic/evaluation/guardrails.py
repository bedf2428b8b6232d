"""Guardrails of a rollout: is the challenger, over one step, doing harm the champion is not?

A rollout (critic.serving, issue 24) moves a challenger's share of the traffic up in steps and
takes it back the moment one of these checks trips. Every check compares the two variants over
the *same* period, so that load, time of day and the mix of reviews -- which move both --
do not trip it; and each leans towards not tripping on a handful of requests, because a
rollback costs a release while one more second of a small share costs little.

* **Server errors** (5xx answers other than 503, which includes 504: the model too slow for the
  request's deadline): tripped when even the low end of the Wilson interval of the
  challenger's error share lies more than ``max_error_increase`` above the champion's share.
* **Unavailable** (503: a full queue, the variant cannot keep up with its share): the same,
  with ``max_unavailable_increase``.
* **Latency**: the challenger's p95 over the champion's, past ``max_latency_ratio``, once each
  has ``min_requests`` answered; a p95 under ``latency_floor_ms`` never trips (the histogram's
  buckets cannot tell 0.3 ms from 0.6 ms, and neither can a user).
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

from critic.evaluation.abtest import accuracy_interval, adaptive_test, logged_shares


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
    """Of the Wilson intervals behind the error and unavailable checks."""

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


def _wilson_low(part: int, total: int, confidence: float) -> float:
    return accuracy_interval(part, total, confidence)[0] if total else 0.0


def _rate_trip(
    guardrail: str,
    what: str,
    challenger: tuple[int, int],
    champion: tuple[int, int],
    increase: float,
    confidence: float,
) -> Trip | None:
    share_challenger, share_champion = _share(*challenger), _share(*champion)
    if _wilson_low(*challenger, confidence) <= share_champion + increase:
        return None
    return Trip(
        guardrail,
        share_challenger,
        share_champion,
        increase,
        f"{what}: {challenger[0]} of {challenger[1]} requests ({share_challenger:.1%}) against "
        f"the champion's {share_champion:.1%}, more than {increase:.1%} above it even at the "
        f"low end of its {confidence:.0%} interval",
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
        "challenger": asdict(challenger),
        "champion": asdict(champion),
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
    if ratio is not None and ratio > limits.max_latency_ratio:
        trips.append(
            Trip(
                "latency",
                challenger.p95_ms,
                champion.p95_ms,
                limits.max_latency_ratio,
                f"latency: p95 {challenger.p95_ms:.2f} ms against the champion's "
                f"{champion.p95_ms:.2f} ms, {ratio:.1f} times, past {limits.max_latency_ratio:g}",
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
    """The challenger's p95 over the champion's; None until both have enough answered, or
    while the challenger's p95 is under the floor."""
    if min(challenger.answered, champion.answered) < limits.min_requests:
        return None
    if challenger.p95_ms is None or champion.p95_ms is None:
        return None
    if challenger.p95_ms < limits.latency_floor_ms:
        return None
    # The champion's p95 floored too: a champion at 0.1 ms does not make 0.5 ms "5 times".
    return challenger.p95_ms / max(champion.p95_ms, limits.latency_floor_ms)


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
