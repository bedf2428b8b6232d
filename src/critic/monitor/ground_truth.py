"""Ground truth: the true label of answers critic served, in SageMaker Model Monitor's shape.

Model Monitor's model-quality job merges captured answers with ground-truth records that
arrive later, one JSON line per answer, matched by id::

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<the answer's id>"}, "eventVersion": "0"}

``data`` is "1" for positive and "0" for negative (the labels themselves, ``positive`` or
``negative``, are read too). The id is the captured answer's: its ``inferenceId`` where one
was given (critic gives every answer its id, and the page's feedback names it), which is what
Model Monitor matches ``eventId`` against.

A vote on the page is ground truth too: "right" on an answer labelled positive says the
review is positive, "wrong" says it is negative. :func:`export_ground_truth` writes a
feedback file's votes in this shape, to one ``.jsonl`` file or to a folder in Model Monitor's
S3 layout (``yyyy/mm/dd/hh/feedback.jsonl``, by the hour of the vote); :func:`read_ground_truth`
reads either back, any other ``.jsonl`` of the same shape, and feedback files themselves.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from critic.errors import CriticError
from critic.fileio import write_text_atomic
from critic.serving.ab.dynamodb import DynamoFeedbackStore, is_dynamodb

EVENT_VERSION = "0"
FEEDBACK_SUFFIXES = (".sqlite", ".sqlite3", ".db")
EXPORT_NAME = "feedback.jsonl"
_LABELS = {"1": "positive", "0": "negative", "positive": "positive", "negative": "negative"}


class GroundTruthError(CriticError):
    """Ground truth that cannot be read or written as asked."""


def ground_truth_record(answer_id: str, label: str) -> dict:
    """One ground-truth line: the true ``label`` (positive/negative) of answer ``answer_id``."""
    if label not in ("positive", "negative"):
        raise GroundTruthError(f"a label must be positive or negative, got {label!r}")
    return {
        "groundTruthData": {"data": "1" if label == "positive" else "0", "encoding": "CSV"},
        "eventMetadata": {"eventId": answer_id},
        "eventVersion": EVENT_VERSION,
    }


def true_label(label: str, verdict: str) -> str:
    """The review's true label from a verdict on an answer's label."""
    if verdict == "right":
        return label
    return "negative" if label == "positive" else "positive"


def feedback_labels(path: Path | str) -> list[tuple[str, str, str]]:
    """(answer id, true label, when) of every vote in a feedback store that names its answer,
    oldest first: a SQLite file, read only (never changed, nor created), or the
    ``dynamodb://TABLE`` every server and the Lambda write to."""
    if is_dynamodb(str(path)):
        votes = DynamoFeedbackStore(str(path)).verdicts()
        return [
            (answer, true_label(label, verdict), when) for answer, label, verdict, when in votes
        ]
    path = Path(path)
    if not path.is_file():
        raise GroundTruthError(f"{path}: no such feedback file")
    try:
        with sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT answer_id, label, feedback, created_at FROM feedback"
                " WHERE answer_id IS NOT NULL ORDER BY id"
            ).fetchall()
    except sqlite3.Error as error:
        raise GroundTruthError(f"{path}: not a feedback file ({error})") from None
    return [(answer, true_label(label, verdict), when) for answer, label, verdict, when in rows]


def export_ground_truth(feedback: Path | str, to: Path) -> tuple[list[Path], int]:
    """A feedback file's votes as ground-truth lines: to one file when ``to`` ends in .jsonl,
    else to ``to/yyyy/mm/dd/hh/feedback.jsonl`` by the hour of each vote (Model Monitor's
    layout). The files written and the number of records."""
    rows = feedback_labels(feedback)
    to = Path(to)
    if to.suffix == ".jsonl":
        groups = {to: rows}
    else:
        groups: dict[Path, list] = {}
        for row in rows:
            when = row[2]  # ISO 8601: 2026-11-29T05:12:03.123+00:00
            hour = to / when[0:4] / when[5:7] / when[8:10] / when[11:13]
            groups.setdefault(hour / EXPORT_NAME, []).append(row)
        to.mkdir(parents=True, exist_ok=True)
    for path, group in groups.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            path,
            "".join(
                json.dumps(ground_truth_record(answer, label)) + "\n" for answer, label, _ in group
            ),
        )
    return list(groups), len(rows)


def parse_record(record) -> tuple[str, str]:
    """(answer id, positive/negative) of one ground-truth record; GroundTruthError if it is
    not one."""
    try:
        data = record["groundTruthData"]["data"]
        answer = record["eventMetadata"]["eventId"]
    except (KeyError, TypeError):
        raise GroundTruthError(
            "not a ground-truth record (groundTruthData.data and eventMetadata.eventId)"
        ) from None
    if not isinstance(answer, str) or not answer:
        raise GroundTruthError(f"eventMetadata.eventId must be a non-empty string, got {answer!r}")
    label = _LABELS.get(str(data).strip().lower())
    if label is None:
        raise GroundTruthError(f"label {data!r} is not one: give 1, 0, positive or negative")
    return answer, label


def read_ground_truth_file(path: Path) -> dict[str, str]:
    """The labels of one .jsonl file of ground-truth records, by answer id."""
    labels = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise GroundTruthError(f"{path}: cannot be read ({error})") from None
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            answer, label = parse_record(json.loads(line))
        except ValueError as error:  # GroundTruthError is no ValueError
            raise GroundTruthError(f"{path}:{number}: not JSON ({error})") from None
        except GroundTruthError as error:
            raise GroundTruthError(f"{path}:{number}: {error}") from None
        labels[answer] = label
    return labels


def read_ground_truth(sources: Iterable[Path]) -> dict[str, str]:
    """The true labels, by answer id, of every source: a feedback file (.sqlite), a .jsonl of
    ground-truth records, or a folder of either (searched all the way down). A later label of
    one answer replaces an earlier one."""
    labels: dict[str, str] = {}
    for source in sources:
        if is_dynamodb(str(source)):
            labels.update((answer, label) for answer, label, _ in feedback_labels(str(source)))
            continue
        source = Path(source)
        if source.is_dir():
            files = sorted(
                path
                for path in source.rglob("*")
                if path.is_file() and (path.suffix == ".jsonl" or path.suffix in FEEDBACK_SUFFIXES)
            )
            if not files:
                raise GroundTruthError(f"{source} holds no ground truth (*.jsonl, *.sqlite)")
        elif source.is_file():
            files = [source]
        else:
            raise GroundTruthError(f"{source}: no such ground-truth file or folder")
        for path in files:
            if path.suffix in FEEDBACK_SUFFIXES:
                labels.update((answer, label) for answer, label, _ in feedback_labels(path))
            else:
                labels.update(read_ground_truth_file(path))
    return labels
