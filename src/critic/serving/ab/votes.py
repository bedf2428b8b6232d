"""What a vote on an answer is, for every feedback store: the verdicts and labels allowed,
the votes as a sequential test replays them, and the errors a store raises.

Standard library only (and critic.errors): the DynamoDB store builds on it, and the Lambda in
front of a SageMaker endpoint ships both in its zip, where numpy is not to be had.
"""

from __future__ import annotations

from dataclasses import dataclass

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
