"""What a vote on an answer is, for every feedback store: the verdicts and labels allowed,
the votes as a sequential test replays them, and the errors a store raises.

Standard library only (and critic.errors): the DynamoDB store builds on it, and the Lambda in
front of a SageMaker endpoint ships both in its zip, where numpy is not to be had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from critic.errors import CriticError

VERDICTS = ("right", "wrong")
LABELS = ("positive", "negative")


@dataclass(frozen=True)
class Votes:
    """Verdicts in the order they came, one entry per verdict in each list."""

    variants: list[str]
    right: list[int]
    """1 where the answer was right."""
    shares: list[float]
    """The probability its variant was chosen with; NaN where none was logged (older rows)."""
    pinned: list[bool]
    """Whether a client named the variant (not chosen at random)."""


class FeedbackError(CriticError):
    """The feedback store cannot be opened or written."""


class DuplicateFeedback(FeedbackError):
    """The answer named already has its verdict."""


def check_verdict(label: str, feedback: str) -> None:
    """What every store refuses before it writes anything."""
    if feedback not in VERDICTS:
        raise FeedbackError(f"feedback must be one of {', '.join(VERDICTS)}")
    if label not in LABELS:
        raise FeedbackError(f"label must be one of {', '.join(LABELS)}")


class FeedbackBackend(Protocol):
    """What the page, the A/B view and the rollouts ask of a feedback store: the SQLite file
    (critic.serving.ab.feedback.FeedbackStore) and the DynamoDB table
    (critic.serving.ab.dynamodb.DynamoFeedbackStore) both answer it."""

    answer_key: bytes
    path: Path | None
    """The SQLite file; None for a table shared by several machines."""
    keeps_shadow_answers: bool

    def record(
        self,
        *,
        review: str,
        variant: str,
        label: str,
        feedback: str,
        model: str | None = None,
        probability: float | None = None,
        rating: int | None = None,
        answer_id: str | None = None,
        share: float | None = None,
        pinned: bool = False,
    ) -> int: ...

    def rows(self, limit: int = 100) -> list[dict]: ...

    def votes(self, variants: Sequence[str], after: int = 0) -> Votes: ...

    def last_id(self) -> int: ...

    def summary(self, variants: Sequence[str] = ()) -> list[dict]: ...

    def add_shadow_answers(self, rows: Sequence[tuple[str, str, str]]) -> None: ...

    def shadow_pairs(self, shadow: str, live_variant: str) -> tuple[list[int], list[int]]: ...
