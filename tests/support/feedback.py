"""Votes written straight into a feedback file, for the A/B view's decision to read."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request

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


def post_vote(
    url: str, variant: str, prediction: dict, review: str = "A fine film.", verdict="right"
) -> int:
    """A verdict on one answer the endpoint at ``url`` gave (``prediction``: with its id), as
    the page posts it; the status answered."""
    vote = {"review": review, "variant": variant, "label": prediction["label"],
            "feedback": verdict, "answer_id": prediction["id"]}  # fmt: skip
    request = urllib.request.Request(
        f"{url}/api/feedback", json.dumps(vote).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
