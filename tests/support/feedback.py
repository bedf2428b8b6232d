"""Votes written straight into a feedback file, for the A/B view's decision to read."""

from __future__ import annotations

import sqlite3

from critic.serving.ab.feedback import FeedbackStore


def seed(feedback_db, accuracies: dict[str, float], votes_each: int) -> None:
    """Interleaved votes, as they would come, in place of any before: variant by variant,
    right on the first ``accuracy`` share of every ten (exact shares, no chance)."""
    FeedbackStore(feedback_db)  # the schema
    rows = [
        ("2026-01-01T00:00:00Z", variant, f"review {index}", "positive",
         "right" if index % 10 < round(accuracy * 10) else "wrong")
        for index in range(votes_each)
        for variant, accuracy in accuracies.items()
    ]  # fmt: skip
    with sqlite3.connect(feedback_db) as connection:
        connection.execute("DELETE FROM feedback")
        connection.executemany(
            "INSERT INTO feedback (created_at, variant, review, label, feedback)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
