"""The feedback store: a real SQLite file, WAL, parameterised, per-variant accuracy intervals."""

import math
import sqlite3

import pytest

from critic.serving.ab.feedback import (
    DuplicateFeedback,
    FeedbackError,
    FeedbackStore,
    accuracy_interval,
)


def wilson(right, total, z=1.959963984540054):
    """The Wilson score interval, written out from its formula."""
    p = right / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return centre - half, centre + half


@pytest.mark.parametrize(("right", "total"), [(0, 1), (1, 1), (7, 10), (50, 100), (99, 100)])
def test_the_accuracy_interval_is_wilsons(right, total):
    low, high = accuracy_interval(right, total)
    expected = wilson(right, total)
    assert low == pytest.approx(expected[0], abs=1e-9)
    assert high == pytest.approx(expected[1], abs=1e-9)
    assert 0 <= low <= right / total <= high <= 1


def test_a_new_store_is_a_wal_sqlite_file_with_the_feedback_table(tmp_path):
    path = tmp_path / "deep" / "feedback.sqlite"
    FeedbackStore(path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in connection.execute("PRAGMA table_info(feedback)")]
    assert columns == [
        "id", "created_at", "variant", "model", "review", "label", "probability", "rating",
        "feedback", "answer_id", "share", "pinned",
    ]  # fmt: skip


def test_records_keep_every_field_and_reviews_that_look_like_sql_stay_data(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    nasty = 'great\'); DROP TABLE feedback; -- "quoted" and <b>html</b>'
    first = store.record(
        review=nasty, variant="champion", model="lstm", label="positive",
        probability=0.83, rating=8, feedback="right",
    )  # fmt: skip
    second = store.record(review="dull", variant="challenger", label="negative", feedback="wrong")
    assert second == first + 1
    newest, oldest = store.rows()
    assert oldest["review"] == nasty
    assert (oldest["variant"], oldest["model"], oldest["label"]) == ("champion", "lstm", "positive")
    assert (oldest["probability"], oldest["rating"], oldest["feedback"]) == (0.83, 8, "right")
    assert oldest["created_at"].endswith("+00:00")
    assert newest["model"] is None and newest["probability"] is None


def test_the_summary_counts_per_variant_and_lists_variants_without_feedback(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    for verdict in ["right"] * 7 + ["wrong"] * 3:
        store.record(review="r", variant="champion", label="positive", feedback=verdict)
    store.record(review="r", variant="retired", label="negative", feedback="wrong")
    summary = {entry["variant"]: entry for entry in store.summary(["champion", "challenger"])}
    assert list(summary) == ["champion", "challenger", "retired"]
    champion = summary["champion"]
    assert (champion["feedback"], champion["right"], champion["wrong"]) == (10, 7, 3)
    assert champion["accuracy"] == pytest.approx(0.7)
    assert champion["interval"] == pytest.approx(list(wilson(7, 10)))
    assert summary["challenger"] == {
        "variant": "challenger", "feedback": 0, "right": 0, "wrong": 0,
        "accuracy": None, "interval": None,
    }  # fmt: skip
    assert summary["retired"]["accuracy"] == 0.0


def test_feedback_survives_reopening_the_file(tmp_path):
    path = tmp_path / "feedback.sqlite"
    FeedbackStore(path).record(review="r", variant="a", label="positive", feedback="right")
    assert FeedbackStore(path).summary(["a"])[0]["feedback"] == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"feedback": "maybe"}, "feedback must be one of"), ({"label": "neutral"}, "label must be")],
)
def test_a_bad_verdict_or_label_is_refused(tmp_path, changes, message):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    values = {"review": "r", "variant": "a", "label": "positive", "feedback": "right", **changes}
    with pytest.raises(FeedbackError, match=message):
        store.record(**values)
    assert store.rows() == []


def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path):
    path = tmp_path / "feedback.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(FeedbackError, match=r"feedback database .* not a database"):
        FeedbackStore(path)
    assert path.read_bytes().startswith(b"this is not sqlite")  # nothing overwritten


def test_a_newer_schema_is_refused_rather_than_guessed_at(tmp_path):
    path = tmp_path / "feedback.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(FeedbackError, match="schema 99"):
        FeedbackStore(path)


def test_a_version_1_file_gains_answer_ids_and_allocations_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL,"
            " variant TEXT NOT NULL, model TEXT, review TEXT NOT NULL, label TEXT NOT NULL,"
            " probability REAL, rating INTEGER, feedback TEXT NOT NULL);"
            "INSERT INTO feedback VALUES (1, '2026-01-01', 'a', 'lstm', 'Good.', 'positive',"
            " NULL, NULL, 'right');"
            "PRAGMA user_version = 1;"
        )
    store = FeedbackStore(path)
    store.record(review="Bad.", variant="a", label="negative", feedback="right", answer_id="x.y")
    rows = store.rows()
    assert [(row["review"], row["answer_id"]) for row in rows] == [("Bad.", "x.y"), ("Good.", None)]
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 3
    # The old row has no logged share (NaN: the A/B view uses the current one) nor a pin.
    votes = store.votes(["a"])
    assert votes.variants == ["a", "a"] and votes.right == [1, 1]
    assert math.isnan(votes.shares[0]) and votes.pinned == [False, False]


def test_each_vote_keeps_how_its_variant_was_chosen(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    store.record(review="A.", variant="a", label="positive", feedback="right", share=0.25)
    store.record(review="B.", variant="b", label="negative", feedback="wrong", pinned=True)
    votes = store.votes(["a", "b"])
    assert votes.variants == ["a", "b"] and votes.right == [1, 0]
    assert votes.shares[0] == 0.25 and math.isnan(votes.shares[1])
    assert votes.pinned == [False, True]
    with pytest.raises(FeedbackError, match="CHECK"):
        store.record(review="C.", variant="a", label="positive", feedback="right", share=1.5)


def test_an_answer_id_takes_one_verdict_and_the_key_survives_reopening(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    vote = {"review": "Fine.", "variant": "a", "label": "positive", "answer_id": "n.m"}
    store.record(**vote, feedback="right")
    with pytest.raises(DuplicateFeedback, match="already"):
        store.record(**vote, feedback="wrong")
    assert FeedbackStore(tmp_path / "f.sqlite").answer_key == store.answer_key
    assert FeedbackStore(tmp_path / "g.sqlite").answer_key != store.answer_key


def test_every_write_is_synchronous_full(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    with store._connect() as connection:
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_concurrent_writers_never_see_a_locked_database(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "f.sqlite"
    FeedbackStore(path)

    def write(number: int) -> int:
        # A store per thread, as the server's worker processes each have their own.
        return FeedbackStore(path).record(
            review=f"review {number}", variant="a", label="positive", feedback="right",
            answer_id=f"id.{number}",
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(write, range(200)))
    assert len(set(rows)) == 200
    assert len(FeedbackStore(path).rows(limit=1000)) == 200
