"""The online A/B test simulated: how often it names a false winner, and how many votes it
needs for a true difference -- the decision code of the A/B view (critic.evaluation.abtest),
fed votes whose truth is known.

Each simulated test is a stream of votes. A vote goes to a variant drawn with the weights of
that moment, is right with the variant's accuracy at that moment, and carries the probability
its variant was drawn with, as the endpoint logs it. With ``adaptive`` traffic the weights are
recomputed every ``every`` votes by Thompson sampling from the pooled counts, as
``critic serve --auto-weights-s`` does; accuracies may drift, all variants together (the kind
of reviews, or of voters, changing during the day) or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from critic.evaluation.abtest import (
    DecisionParameters,
    adaptive_path,
    paired_path,
    sequential_test,
    thompson_weights,
)
from critic.evaluation.abtest import decide as decide_votes

DRIFTS = ("none", "rise", "fall", "step")


def accuracy_at(drift: str, progress: np.ndarray, low: float = 0.80, high: float = 0.92):
    """The accuracy shared by equal variants at ``progress`` (0 to 1 through the test)."""
    if drift == "none":
        return np.full_like(progress, (low + high) / 2, dtype=np.float64)
    if drift == "rise":
        return low + (high - low) * progress
    if drift == "fall":
        return high - (high - low) * progress
    if drift == "step":
        return np.where(progress < 0.5, low, high)
    raise ValueError(f"drift must be one of {', '.join(DRIFTS)}, got {drift!r}")


@dataclass(frozen=True)
class Stream:
    """One simulated test's votes, in order."""

    variants: np.ndarray  # names
    right: np.ndarray  # 1 / 0
    shares: np.ndarray  # the probability each vote's variant was drawn with


def stream(
    rng: np.random.Generator,
    names: list[str],
    votes: int,
    drift: str = "none",
    adaptive: bool = False,
    every: int = 50,
    floor: float = 0.05,
    lift: dict[str, float] | None = None,
    draws: int = 2_000,
) -> Stream:
    """``votes`` votes on variants of equal accuracy (``lift``: points added to some)."""
    lift = lift or {}
    base = accuracy_at(drift, np.arange(votes) / votes)
    weights = np.full(len(names), 1.0 / len(names))
    chosen = np.empty(votes, dtype=np.int64)
    right = np.empty(votes, dtype=np.int64)
    shares = np.empty(votes)
    tally = np.zeros((len(names), 2), dtype=np.int64)  # votes, right
    offsets = np.array([lift.get(name, 0.0) for name in names])
    for start in range(0, votes, every):
        if adaptive and start:
            counts = {name: (int(n), int(r)) for name, (n, r) in zip(names, tally, strict=True)}
            found = thompson_weights(counts, floor, draws=draws)
            weights = np.array([found[name] for name in names])
            weights = weights / weights.sum()
        stop = min(votes, start + every)
        picked = rng.choice(len(names), size=stop - start, p=weights)
        accuracy = np.clip(base[start:stop] + offsets[picked], 0.0, 1.0)
        hits = (rng.random(stop - start) < accuracy).astype(np.int64)
        chosen[start:stop], right[start:stop], shares[start:stop] = picked, hits, weights[picked]
        np.add.at(tally, (picked, 0), 1)
        np.add.at(tally, (picked, 1), hits)
    return Stream(np.asarray(names)[chosen], right, shares)


def named_a_winner(votes: Stream, names: list[str], alpha: float, pooled: bool = False) -> bool:
    """Whether the test, looking after every vote, ever named a winner among ``names`` (the
    first the champion). ``pooled``: with the pooled counts of each pair and one alpha each,
    the test the A/B view used before it weighted votes by their logged probability."""
    if pooled:
        for challenger in names[1:]:
            mine = (votes.variants == names[0]) | (votes.variants == challenger)
            test = sequential_test(votes.right[mine], votes.variants[mine] == challenger, alpha)
            if test.p_value <= alpha:
                return True
        return False
    weights = {name: (2.0 if name == names[0] else 1.0) for name in names}
    decision = decide_votes(
        weights, votes.variants, votes.right, DecisionParameters(alpha=alpha), votes.shares
    )
    return any(
        entry["verdict"] in ("challenger better", "champion better")
        for entry in decision["challengers"]
    )


def false_winner_rates(
    runs: int,
    votes: int,
    variants: int = 2,
    drift: str = "none",
    adaptive: bool = False,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """The share of ``runs`` tests of equal variants in which a winner was named: by the
    A/B view's test ("weighted") and by the pooled test it replaced ("pooled"), on the same
    simulated votes."""
    names = ["champion", *(f"challenger{i}" for i in range(1, variants))]
    found = {"weighted": 0, "pooled": 0}
    for run in range(runs):
        rng = np.random.default_rng([seed, run])
        votes_of_run = stream(rng, names, votes, drift, adaptive)
        found["weighted"] += named_a_winner(votes_of_run, names, alpha)
        found["pooled"] += named_a_winner(votes_of_run, names, alpha, pooled=True)
    return {test: count / runs for test, count in found.items()}


def votes_to_decide(
    runs: int,
    lift: float,
    accuracy: float = 0.86,
    alpha: float = 0.05,
    paired: bool = False,
    disagreement: float = 0.1,
    most: int = 20_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Median votes until a true difference of ``lift`` is decided the right way, and the
    share of runs decided within ``most`` votes. A split: each vote on one of two variants,
    half each. ``paired``: a shadow answers every voted review too, disagreeing with the
    live variant on a share ``disagreement`` of them (every vote is a pair)."""
    needed = []
    for run in range(runs):
        rng = np.random.default_rng([seed, run, int(paired)])
        if paired:
            shadow, live = paired_votes(rng, most, accuracy, lift, disagreement)
            won, lost, log_ratio, started = paired_path(shadow, live)
            decided = started & (log_ratio >= np.log(1 / alpha)) & (won > lost)
        else:
            votes = stream(rng, ["champion", "challenger"], most, lift={"challenger": lift})
            mean, _, log_ratio, started = adaptive_path(
                votes.variants, votes.right, votes.shares, "champion", "challenger"
            )
            decided = started & (log_ratio >= np.log(1 / alpha)) & (mean > 0)
        if decided.any():
            needed.append(int(decided.argmax()) + 1)
    return (float(np.median(needed)) if needed else float("nan"), len(needed) / runs)


def paired_votes(
    rng: np.random.Generator, votes: int, accuracy: float, lift: float, disagreement: float
) -> tuple[np.ndarray, np.ndarray]:
    """The shadow's and the live variant's right (1) or wrong (0) on ``votes`` reviews: they
    disagree on a share ``disagreement``, where the shadow wins (psi + lift) / (2 psi) of the
    time, so that it is ``lift`` more accurate; elsewhere both are right at ``accuracy``."""
    if not 0 < lift <= disagreement:
        raise ValueError("the lift must lie in (0, disagreement]")
    disagrees = rng.random(votes) < disagreement
    shadow_wins = rng.random(votes) < (disagreement + lift) / (2 * disagreement)
    agreed = (rng.random(votes) < accuracy).astype(np.int64)
    shadow = np.where(disagrees, shadow_wins.astype(np.int64), agreed)
    live = np.where(disagrees, 1 - shadow_wins.astype(np.int64), agreed)
    return shadow, live


__all__ = [
    "DRIFTS",
    "Stream",
    "accuracy_at",
    "false_winner_rates",
    "named_a_winner",
    "paired_votes",
    "stream",
    "votes_to_decide",
]
