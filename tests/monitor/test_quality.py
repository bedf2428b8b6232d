"""critic monitor --ground-truth on a real endpoint's capture and feedback: Rotten Tomatoes
snippets with their true labels (which the IMDB model gets wrong far more often) must be
flagged as a quality drop, held-out IMDB reviews must not; and ground truth round-trips
through its export, and bad ground truth is one line."""

import json
import sqlite3
import urllib.request

import pytest

from critic.data.prepare import load_splits
from critic.data.sources import load_embedded
from critic.data.split import stratified_sample
from critic.errors import CriticError
from critic.inference.bundle import save_training_result
from critic.monitor.ground_truth import (
    GroundTruthError,
    export_ground_truth,
    ground_truth_record,
    read_ground_truth,
)
from critic.monitor.quality import monitor_quality, write_quality_report
from critic.monitor.thresholds import QualityThresholds
from critic.serving.ab.feedback import FeedbackStore
from critic.training.train import train
from support.cli import run_cli
from support.data import small_nbsvm_config
from support.feedback import post_vote
from support.servers import running_server

MAX_REVIEWS = 2000
LIVE_REVIEWS = 200
LABELS = ("negative", "positive")

pytestmark = pytest.mark.slow


def quiet(line):
    pass


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, cache_dir):
    config = small_nbsvm_config()
    config = config.replace(data=config.data.replace(max_reviews=MAX_REVIEWS))
    out = tmp_path_factory.mktemp("quality") / "nbsvm"
    result = train(config, out, cache_dir=cache_dir, progress=False, log=lambda _: None)
    save_training_result(out, result)
    return out


def serve_and_capture(bundle, reviews, folder, vote_labels=None):
    """Send ``reviews`` (ten a request) through ``critic serve`` with capture and feedback on;
    with ``vote_labels`` (the true labels), vote on every answer through the feedback POST, as
    the page would. The answers, in order."""
    capture, feedback = folder / "capture", folder / "feedback.sqlite"
    answers = []
    args = ["serve", bundle, "--capture-dir", capture, "--feedback-db", feedback]
    with running_server(args) as server:
        for start in range(0, len(reviews), 10):
            request = urllib.request.Request(
                f"{server.url}/invocations",
                json.dumps(reviews[start : start + 10]).encode(),
                {"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answers += json.loads(response.read())["predictions"]
        for review, answer, truth in zip(reviews, answers, vote_labels or [], strict=False):
            verdict = "right" if answer["label"] == truth else "wrong"
            assert post_vote(server.url, "AllTraffic", answer, review, verdict) == 201
    return capture, feedback, answers


@pytest.fixture(scope="module")
def imdb_stream(bundle, tmp_path_factory):
    """Held-out IMDB reviews (the bundle's test split), every answer voted on on the page."""
    from critic.inference.predictor import Predictor

    test = load_splits(Predictor.load(bundle).bundle.config.data)["test"]
    test = stratified_sample(test, LIVE_REVIEWS, seed=0)
    truths = [LABELS[int(label)] for label in test.labels]
    capture, feedback, answers = serve_and_capture(
        bundle, test.texts, tmp_path_factory.mktemp("imdb"), truths
    )
    return capture, feedback, answers, truths


@pytest.fixture(scope="module")
def rotten_stream(bundle, tmp_path_factory):
    """Rotten Tomatoes snippets, no votes; their true labels come later, in a file."""
    snippets = stratified_sample(load_embedded("rotten_tomatoes"), LIVE_REVIEWS, seed=0)
    folder = tmp_path_factory.mktemp("rt")
    capture, _, answers = serve_and_capture(bundle, snippets.texts, folder)
    truths = [LABELS[int(label)] for label in snippets.labels]
    later = folder / "ground-truth.jsonl"
    later.write_text(
        "".join(
            json.dumps(ground_truth_record(answer["id"], truth)) + "\n"
            for answer, truth in zip(answers, truths, strict=True)
        )
    )
    return capture, later, answers, truths


def test_held_out_imdb_with_votes_is_no_quality_drop(imdb_stream, bundle):
    capture, feedback, answers, truths = imdb_stream
    report = monitor_quality(capture, bundle, [feedback], log=quiet)
    overall = report.variants["AllTraffic"]["overall"]
    right = sum(a["label"] == t for a, t in zip(answers, truths, strict=True))
    assert overall["answers"] == overall["labelled"] == LIVE_REVIEWS
    assert overall["label_share"] == 1.0
    assert overall["accuracy"] == pytest.approx(right / LIVE_REVIEWS)
    assert overall["judged"] and not report.dropped, overall
    low, high = overall["interval"]
    assert low < overall["accuracy"] < high
    assert report.baseline["accuracy"] > 0.7 and report.baseline["ece"] is not None
    print(f"held-out IMDB: accuracy {overall['accuracy']:.3f}, ECE {overall['ece']:.3f}")


def test_rotten_tomatoes_with_later_labels_is_a_quality_drop(rotten_stream, imdb_stream, bundle):
    capture, later, _, _ = rotten_stream
    report = monitor_quality(capture, bundle, [later], log=quiet)
    overall = report.variants["AllTraffic"]["overall"]
    imdb = monitor_quality(imdb_stream[0], bundle, [imdb_stream[1]], log=quiet)
    imdb_accuracy = imdb.variants["AllTraffic"]["overall"]["accuracy"]
    print(f"Rotten Tomatoes: accuracy {overall['accuracy']:.3f}, ECE {overall['ece']:.3f}")
    assert overall["labelled"] == LIVE_REVIEWS and overall["judged"]
    assert report.dropped
    assert overall["accuracy"] < imdb_accuracy - 0.1
    assert overall["interval"][1] < report.baseline["accuracy"] - 0.05
    assert "accuracy" in " ".join(overall["breaches"])
    assert "QUALITY DROP" in report.to_markdown()
    # Hour by hour too, every window with its own figures.
    assert all(w["labelled"] for w in report.variants["AllTraffic"]["windows"].values())


def test_unlabelled_answers_are_counted_and_too_few_labels_are_not_judged(
    rotten_stream, bundle, tmp_path
):
    capture, _, answers, truths = rotten_stream
    few = tmp_path / "few.jsonl"
    pairs = list(zip(answers, truths, strict=True))[:20]
    few.write_text("".join(json.dumps(ground_truth_record(a["id"], t)) + "\n" for a, t in pairs))
    report = monitor_quality(capture, bundle, [few], log=quiet)
    overall = report.variants["AllTraffic"]["overall"]
    assert overall["labelled"] == 20 and overall["label_share"] == pytest.approx(0.1)
    assert not overall["judged"] and not report.dropped
    assert "too few labelled answers" in report.to_markdown()


def test_feedback_exports_to_ground_truth_and_reads_back(imdb_stream, tmp_path):
    _, feedback, answers, truths = imdb_stream
    expected = {a["id"]: t for a, t in zip(answers, truths, strict=True)}
    assert read_ground_truth([feedback]) == expected
    one_file = tmp_path / "gt.jsonl"
    written, records = export_ground_truth(feedback, one_file)
    assert written == [one_file] and records == LIVE_REVIEWS
    assert read_ground_truth([one_file]) == expected
    first = json.loads(one_file.read_text().splitlines()[0])
    assert set(first) == {"groundTruthData", "eventMetadata", "eventVersion"}
    assert first["groundTruthData"]["encoding"] == "CSV"
    assert first["groundTruthData"]["data"] in ("0", "1")
    assert first["eventMetadata"]["eventId"] == answers[0]["id"]
    folder = tmp_path / "groundtruth"
    written, _ = export_ground_truth(feedback, folder)
    # Model Monitor's layout: yyyy/mm/dd/hh/*.jsonl
    assert all(len(path.relative_to(folder).parts) == 5 for path in written)
    assert read_ground_truth([folder]) == expected


def test_a_wrong_vote_means_the_other_label(tmp_path):
    db = tmp_path / "feedback.sqlite"
    store = FeedbackStore(db)
    store.record(review="a", variant="v", label="positive", feedback="wrong", answer_id="a1")
    store.record(review="b", variant="v", label="negative", feedback="right", answer_id="b1")
    store.record(review="c", variant="v", label="positive", feedback="right")  # no answer id
    assert read_ground_truth([db]) == {"a1": "negative", "b1": "negative"}


def test_critic_monitor_with_ground_truth_exits_1_on_a_drop_and_0_without(
    rotten_stream, imdb_stream, bundle, tmp_path
):
    gt = tmp_path / "imdb-gt"
    exported = run_cli("ground-truth", "export", imdb_stream[1], "--to", gt)
    assert exported.returncode == 0, exported.stderr
    assert f"wrote {LIVE_REVIEWS} record(s)" in exported.stderr
    calm = run_cli("monitor", imdb_stream[0], "--baseline", bundle, "--ground-truth", gt)
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert "# Model quality report" in calm.stdout and "no drop past the thresholds" in calm.stdout
    dropped = run_cli(
        "monitor", rotten_stream[0], "--baseline", bundle, "--ground-truth", rotten_stream[1],
        "--out", tmp_path / "rt",
        # Drift thresholds loose enough that only the quality drop can fail the command.
        "--psi", "100", "--ks-statistic", "0.99", "--label-share", "0.99", "--unknown-words", "0.99",
    )  # fmt: skip
    assert dropped.returncode == 1, dropped.stdout + dropped.stderr
    assert "Verdict: **QUALITY DROP**" in dropped.stdout
    assert "no drift past the thresholds" in dropped.stdout
    saved = json.loads((tmp_path / "rt" / "quality.json").read_text())
    assert saved["dropped"] is True
    assert (tmp_path / "rt" / "quality.md").is_file() and (tmp_path / "rt" / "drift.md").is_file()
    # A margin wide enough lets the snippets pass.
    loose = run_cli(
        "monitor", rotten_stream[0], "--baseline", bundle, "--ground-truth", rotten_stream[1],
        "--accuracy-margin", "0.9", "--max-ece", "1", "--psi", "100", "--ks-statistic", "0.99",
        "--label-share", "0.99", "--unknown-words", "0.99",
    )  # fmt: skip
    assert loose.returncode == 0, loose.stdout + loose.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMe', "gt.jsonl:2: not JSON"),
        (
            json.dumps(
                {
                    "groundTruthData": {"data": "maybe", "encoding": "CSV"},
                    "eventMetadata": {"eventId": "x"},
                    "eventVersion": "0",
                }
            ),
            "gt.jsonl:2: label 'maybe' is not one",
        ),
        (json.dumps({"label": "1"}), "gt.jsonl:2: not a ground-truth record"),
    ],
)
def test_bad_ground_truth_is_one_line(content, message, rotten_stream, bundle, tmp_path):
    bad = tmp_path / "gt.jsonl"
    bad.write_text(json.dumps(ground_truth_record("someid", "positive")) + "\n" + content + "\n")
    with pytest.raises(GroundTruthError, match=message.split(": ", 1)[1]):
        read_ground_truth([bad])
    run = run_cli("monitor", rotten_stream[0], "--baseline", bundle, "--ground-truth", bad)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert message in run.stderr and run.stderr.startswith("critic: error:")


def test_missing_or_foreign_ground_truth_is_one_line(rotten_stream, bundle, tmp_path):
    missing = run_cli(
        "monitor", rotten_stream[0], "--baseline", bundle, "--ground-truth", tmp_path / "nope"
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no such ground-truth file or folder" in missing.stderr
    not_feedback = tmp_path / "other.sqlite"
    with sqlite3.connect(not_feedback) as connection:
        connection.execute("CREATE TABLE t (x)")
    exported = run_cli("ground-truth", "export", not_feedback, "--to", tmp_path / "gt.jsonl")
    assert exported.returncode == 1 and "Traceback" not in exported.stderr
    assert "not a feedback file" in exported.stderr
    absent = run_cli("ground-truth", "export", tmp_path / "none.sqlite", "--to", tmp_path / "x")
    assert absent.returncode == 1 and "no such feedback file" in absent.stderr
    assert not (tmp_path / "none.sqlite").exists()


def test_quality_thresholds_are_checked():
    with pytest.raises(CriticError, match="max_ece"):
        QualityThresholds(max_ece=0)
    with pytest.raises(CriticError, match="min_labels"):
        QualityThresholds(min_labels=0)
    with pytest.raises(CriticError, match="accuracy_margin"):
        QualityThresholds(accuracy_margin=1.5)


def test_the_report_is_written(rotten_stream, bundle, tmp_path):
    report = monitor_quality(rotten_stream[0], bundle, [rotten_stream[1]], log=quiet)
    written = write_quality_report(report, tmp_path)
    assert [path.name for path in written] == ["quality.md", "quality.json"]
    assert "| AllTraffic | all |" in written[0].read_text()


def test_an_answer_without_its_own_id_is_named_by_the_capture_line():
    from critic.monitor.quality import answer_ids

    record = {"eventMetadata": {"eventId": "e1", "inferenceId": "i1"}}
    assert answer_ids(record, [{"label": "positive"}, {"label": "negative"}]) == ["i1", None]
    assert answer_ids({"eventMetadata": {"eventId": "e1"}}, [{"label": "positive"}]) == ["e1"]
    assert answer_ids(record, [{"label": "positive", "id": "a"}]) == ["a"]
