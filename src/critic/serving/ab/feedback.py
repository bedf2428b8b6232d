"""Feedback on served answers, kept in SQLite: was the model right about this review?

One table, one row per click of "Right" or "Wrong" on the page (or per POST from any client):
the review, the variant and model that answered, what they answered, the verdict on it and
when. The file lives beside the served models by default; WAL mode lets the A/B page read
while answers are written, and every statement is parameterised -- a review is data, never SQL.

Each operation opens its own short connection: the server calls in from a pool of threads,
and SQLite connections are not to be shared between threads.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from critic.evaluation.abtest import accuracy_interval
from critic.serving.ab.answers import new_key

# What a vote is, shared with the DynamoDB store (light enough for the Lambda's zip).
from critic.serving.ab.votes import (
    DuplicateFeedback,
    FeedbackError,
    Votes,
    check_verdict,
)

SCHEMA_VERSION = 3
FEEDBACK_FILE = "feedback.sqlite"
SHADOW_ANSWERS_KEPT = 1_000_000  # about 60 MB of the file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id          INTEGER PRIMARY KEY,
    created_at  TEXT    NOT NULL,   -- UTC, ISO 8601
    variant     TEXT    NOT NULL,
    model       TEXT,
    review      TEXT    NOT NULL,
    label       TEXT    NOT NULL CHECK (label IN ('positive', 'negative')),
    probability REAL    CHECK (probability BETWEEN 0 AND 1),
    rating      INTEGER CHECK (rating BETWEEN 1 AND 10),
    feedback    TEXT    NOT NULL CHECK (feedback IN ('right', 'wrong'))
);
CREATE INDEX IF NOT EXISTS feedback_variant ON feedback (variant);
-- What each shadow answered to the live answers it was copied (by the live answer's id), so
-- that a verdict on the live answer is a verdict on the shadow's too (critic.serving.ab.shadows).
-- Only the latest SHADOW_ANSWERS_KEPT rows are kept: a vote comes minutes after its answer,
-- not days, and a busy endpoint copies millions of answers a day.
CREATE TABLE IF NOT EXISTS shadow_answers (
    id          INTEGER PRIMARY KEY,
    answer_id   TEXT NOT NULL,
    shadow      TEXT NOT NULL,
    label       TEXT NOT NULL CHECK (label IN ('positive', 'negative')),
    UNIQUE (answer_id, shadow)
);
-- The key of the answer ids (critic.serving.ab.answers): one per file, shared by every worker.
CREATE TABLE IF NOT EXISTS answer_key (id INTEGER PRIMARY KEY CHECK (id = 1), key BLOB NOT NULL);
"""
# Version 2: each verdict names the answer it judges, at most once. Rows from version 1 have
# no answer id (NULL), which the unique index allows any number of.
# Version 3: the probability with which the answer's variant was chosen (the weights of that
# moment, carried by its answer id), and whether a client named the variant instead: what the
# A/B test needs to stay valid when the weights move. Older rows have neither (NULL, 0).
_MIGRATIONS = {
    1: "ALTER TABLE feedback ADD COLUMN answer_id TEXT;",
    2: "ALTER TABLE feedback ADD COLUMN share REAL CHECK (share > 0 AND share <= 1);"
    " ALTER TABLE feedback ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;",
}
_AFTER_MIGRATIONS = "CREATE UNIQUE INDEX IF NOT EXISTS feedback_answer ON feedback (answer_id);"


def open_feedback(spec: str | Path):
    """The feedback store a setting names: ``dynamodb://TABLE`` or a SQLite file's path."""
    from critic.serving.ab.dynamodb import DynamoFeedbackStore, is_dynamodb

    return DynamoFeedbackStore(spec) if is_dynamodb(spec) else FeedbackStore(Path(spec))


@contextmanager
def connect(path: Path, synchronous: str) -> Iterator[sqlite3.Connection]:
    """One short connection to the feedback file (each table's store opens its own per
    operation: the server calls in from a pool of threads); commits on leaving, or rolls
    back on an error, then closes."""
    # closing() closes; the inner "with connection" commits, or rolls back on an error.
    with closing(sqlite3.connect(path, timeout=10)) as connection:
        connection.execute(f"PRAGMA synchronous={synchronous}")
        with connection:
            yield connection


class FeedbackStore:
    """The feedback table of one SQLite file; created on first use. (On more than one machine:
    critic.serving.ab.dynamodb.DynamoFeedbackStore, the same methods.)"""

    keeps_shadow_answers = True

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as connection:
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise FeedbackError(
                        f"feedback database {self.path} has schema {version}; this critic "
                        f"knows up to {SCHEMA_VERSION}"
                    )
                # WAL is a property of the file: set once, it holds for every later connection.
                connection.execute("PRAGMA journal_mode=WAL")
                fresh = not connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'feedback'"
                ).fetchone()
                connection.executescript(_SCHEMA)
                for step in range(1 if fresh else max(version, 1), SCHEMA_VERSION):
                    connection.executescript(_MIGRATIONS[step])
                connection.executescript(_AFTER_MIGRATIONS)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.execute(
                    "INSERT OR IGNORE INTO answer_key (id, key) VALUES (1, ?)", (new_key(),)
                )
                self.answer_key = bytes(
                    connection.execute("SELECT key FROM answer_key WHERE id = 1").fetchone()[0]
                )
        except (sqlite3.Error, OSError) as error:
            raise FeedbackError(f"feedback database {self.path}: {error}") from None

    def __str__(self) -> str:
        return str(self.path)

    def _connect(self):
        # FULL: a verdict answered 201 is on disk, even if the machine loses power next.
        return connect(self.path, synchronous="FULL")

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
    ) -> int:
        """Store one verdict on one answer; its row id. A second verdict on the same answer
        id is refused (:class:`DuplicateFeedback`). ``share``: the probability the variant was
        chosen with; ``pinned``: the client named the variant (see critic.serving.ab.answers)."""
        check_verdict(label, feedback)
        created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        try:
            with self._connect() as connection:
                cursor = connection.execute(
                    "INSERT INTO feedback (created_at, variant, model, review, label,"
                    " probability, rating, feedback, answer_id, share, pinned)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        created,
                        variant,
                        model,
                        review,
                        label,
                        probability,
                        rating,
                        feedback,
                        answer_id,
                        share,
                        int(pinned),
                    ),
                )
                return int(cursor.lastrowid)
        except sqlite3.IntegrityError as error:
            if "answer_id" in str(error):
                raise DuplicateFeedback("this answer already has its feedback") from None
            raise FeedbackError(f"feedback database {self.path}: {error}") from None
        except sqlite3.Error as error:
            raise FeedbackError(f"feedback database {self.path}: {error}") from None

    def rows(self, limit: int = 100) -> list[dict]:
        """The most recent rows, newest first."""
        with self._connect() as connection:
            connection.row_factory = sqlite3.Row
            cursor = connection.execute(
                "SELECT * FROM feedback ORDER BY id DESC LIMIT ?", (int(limit),)
            )
            return [dict(row) for row in cursor.fetchall()]

    def votes(self, variants: Sequence[str], after: int = 0) -> Votes:
        """Every verdict on these variants in the order given (only those after the row id
        ``after``: a rollout's, say): what a sequential test replays."""
        marks = ", ".join("?" * len(variants))
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT variant, feedback = 'right', share, pinned FROM feedback"
                f" WHERE variant IN ({marks}) AND id > ? ORDER BY id",
                [*variants, after],
            ).fetchall()
        return Votes(
            [variant for variant, *_ in rows],
            [int(right) for _, right, *_ in rows],
            [math.nan if share is None else float(share) for *_, share, _ in rows],
            [bool(pinned) for *_, pinned in rows],
        )

    def last_id(self) -> int:
        """The row id of the latest verdict (0 before any): where a later count starts."""
        with self._connect() as connection:
            return int(
                connection.execute("SELECT COALESCE(MAX(id), 0) FROM feedback").fetchone()[0]
            )

    def add_shadow_answers(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """(live answer id, shadow, the shadow's label) rows; a row already there is kept, and
        beyond the latest ``SHADOW_ANSWERS_KEPT`` the oldest go."""
        if not rows:
            return
        with self._connect() as connection:
            connection.executemany(
                "INSERT OR IGNORE INTO shadow_answers (answer_id, shadow, label) VALUES (?, ?, ?)",
                rows,
            )
            connection.execute(
                "DELETE FROM shadow_answers WHERE id <= (SELECT MAX(id) FROM shadow_answers) - ?",
                (SHADOW_ANSWERS_KEPT,),
            )

    def shadow_pairs(self, shadow: str, live_variant: str) -> tuple[list[int], list[int]]:
        """For every verdict on ``live_variant``'s answers that ``shadow`` also answered, in
        the order the verdicts came: whether the shadow was right (the verdict tells the
        review's true label) and whether the live answer was."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT s.label = CASE WHEN f.feedback = 'right' THEN f.label"
                " WHEN f.label = 'positive' THEN 'negative' ELSE 'positive' END,"
                " f.feedback = 'right'"
                " FROM feedback f JOIN shadow_answers s ON s.answer_id = f.answer_id"
                " WHERE s.shadow = ? AND f.variant = ? ORDER BY f.id",
                (shadow, live_variant),
            ).fetchall()
        return [int(shadow_right) for shadow_right, _ in rows], [int(live) for _, live in rows]

    def summary(self, variants: Sequence[str] = ()) -> list[dict]:
        """Per variant: how many verdicts, how many "right", the accuracy and its 95% interval.

        ``variants`` are listed even without feedback (the page shows them all); variants
        found only in the file (served earlier) follow.
        """
        with self._connect() as connection:
            counts = {
                variant: (int(total), int(right))
                for variant, total, right in connection.execute(
                    "SELECT variant, COUNT(*), SUM(feedback = 'right') FROM feedback"
                    " GROUP BY variant ORDER BY variant"
                )
            }
        return summary_rows(counts, variants)


def summary_rows(counts: dict[str, tuple[int, int]], variants: Sequence[str]) -> list[dict]:
    """The summary of (verdicts, right) per variant: ``variants`` first, even without
    feedback, then those only the store knows (served earlier)."""
    names = list(variants) + [name for name in sorted(counts) if name not in variants]
    summary = []
    for name in names:
        total, right = counts.get(name, (0, 0))
        low, high = accuracy_interval(right, total) if total else (None, None)
        summary.append(
            {
                "variant": name,
                "feedback": total,
                "right": right,
                "wrong": total - right,
                "accuracy": right / total if total else None,
                "interval": None if low is None else [low, high],
            }
        )
    return summary
