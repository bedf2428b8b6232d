"""Data capture: SageMaker's shape, hourly files, sampling, the disk bound, no text when asked,
and a full queue that drops records instead of waiting -- on real files."""

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from critic.apps.endpoint import create_app
from critic.errors import CriticError
from critic.serving.settings import ServerSettings
from critic.serving.sidecar.capture import (
    CaptureConfig,
    CaptureWriter,
    capture_files,
    capture_record,
    captured_reviews,
    validate_capture_file,
    validate_record,
)
from critic.serving.variants import VariantSpec

WHEN = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=timezone.utc)
REVIEWS = ["A wonderful, moving film!", "Boring, far too long.", 'Said "fine", I guess']
ANSWER = json.dumps({"predictions": [{"label": "positive", "probability": 0.9}]}).encode()


def offer(writer, variant="AllTraffic", reviews=REVIEWS, when=None):
    writer.offer(
        variant, json.dumps({"instances": reviews}).encode(), "application/json",
        ANSWER, "application/json", "answer-1", reviews, when,
    )  # fmt: skip


def test_a_record_has_sagemakers_shape_and_keeps_the_bodies_as_they_were():
    record = capture_record(b"A fine film", "text/plain", ANSWER, "application/json", "id-7", WHEN)
    assert validate_record(record) == []
    assert record["eventVersion"] == "0"
    assert record["eventMetadata"]["inferenceId"] == "id-7"
    assert record["eventMetadata"]["inferenceTime"] == "2026-03-14T15:09:26Z"
    endpoint_input = record["captureData"]["endpointInput"]
    # SageMaker base64-encodes every content type not declared as JSON or CSV.
    assert endpoint_input["mode"] == "INPUT" and endpoint_input["encoding"] == "BASE64"
    assert base64.b64decode(endpoint_input["data"]) == b"A fine film"
    endpoint_output = record["captureData"]["endpointOutput"]
    assert endpoint_output == {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": ANSWER.decode(),
        "encoding": "JSON",
    }
    assert captured_reviews(record) == (["A fine film"], [3])


def test_the_validator_names_what_departs_from_the_shape():
    record = capture_record(b'["x"]', "application/json", ANSWER, "application/json", None, WHEN)
    assert validate_record(record) == []
    record["eventVersion"] = "1"
    record["captureData"]["endpointOutput"]["mode"] = "INPUT"
    record["eventMetadata"]["inferenceTime"] = "yesterday"
    problems = validate_record(record)
    assert any("eventVersion" in p for p in problems)
    assert any("endpointOutput.mode" in p for p in problems)
    assert any("inferenceTime" in p for p in problems)
    assert validate_record([]) == ["a capture line must be a JSON object"]


def test_records_land_in_hourly_files_on_sagemakers_path_and_validate(tmp_path):
    writer = CaptureWriter(CaptureConfig(tmp_path, "reviews"))
    offer(writer, when=WHEN)
    offer(writer, when=WHEN + timedelta(minutes=20))
    offer(writer, variant="challenger", when=WHEN)
    offer(writer, when=WHEN + timedelta(hours=1))
    writer.close()
    files = capture_files(tmp_path)
    relative = sorted(f.relative_to(tmp_path).parent.as_posix() for f in files)
    assert relative == [
        "reviews/AllTraffic/2026/03/14/15",
        "reviews/AllTraffic/2026/03/14/16",
        "reviews/challenger/2026/03/14/15",
    ]
    assert all(f.name.startswith(("09-26-535-", "29-26-535-")) for f in files if "/15/" in str(f))
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 4 and writer.captured == 4
    assert all(validate_capture_file(f) == [] for f in files)
    assert captured_reviews(lines[0]) == (REVIEWS, [4, 4, 4])


def test_without_text_no_review_reaches_the_disk_but_word_counts_do(tmp_path):
    writer = CaptureWriter(CaptureConfig(tmp_path, "reviews", keep_text=False))
    offer(writer)
    writer.close()
    (path,) = capture_files(tmp_path)
    text = path.read_text()
    assert "wonderful" not in text and "Boring" not in text
    assert validate_capture_file(path) == []
    assert captured_reviews(json.loads(text)) == (None, [4, 4, 4])


def test_sampling_captures_about_the_share_asked(tmp_path):
    writer = CaptureWriter(CaptureConfig(tmp_path, "reviews", percent=25), seed=0)
    for _ in range(800):
        offer(writer, when=WHEN)
    writer.close()
    assert 150 <= writer.captured <= 250


def test_past_the_disk_bound_the_oldest_files_are_deleted(tmp_path):
    line_bytes = len(json.dumps(capture_record(b"x", "text/plain", ANSWER, "application/json",
                                               "answer-1", WHEN)))  # fmt: skip
    # A bound of about 12 records' worth, and 40 records over 40 hours: one file an hour.
    writer = CaptureWriter(CaptureConfig(tmp_path, "reviews", max_mb=12 * line_bytes / 2**20))
    for hour in range(40):
        offer(writer, reviews=["x"], when=WHEN + timedelta(hours=hour))
    writer.close()
    files = capture_files(tmp_path)
    assert writer.deleted_files > 0
    assert sum(f.stat().st_size for f in files) <= 13 * (line_bytes + 200)
    # What is left is the newest hours, the last one among them.
    assert files[-1].parent.name == (WHEN + timedelta(hours=39)).strftime("%H")
    assert len(files) < 40


def test_a_full_queue_drops_records_and_counts_them_instead_of_waiting(tmp_path):
    writer = CaptureWriter(CaptureConfig(tmp_path, "reviews"), max_queued=1)
    for _ in range(2000):
        offer(writer, when=WHEN)
    writer.close()
    assert writer.dropped > 0
    assert writer.captured + writer.dropped == 2000
    (path,) = capture_files(tmp_path)
    assert len(path.read_text().splitlines()) == writer.captured


def test_capture_settings_are_checked():
    with pytest.raises(CriticError, match="capture_percent"):
        ServerSettings(capture_percent=0)
    with pytest.raises(CriticError, match="capture_max_mb"):
        ServerSettings(capture_max_mb=-1)
    assert ServerSettings.from_env({"CRITIC_CAPTURE_TEXT": "false"}).capture_text is False
    with pytest.raises(CriticError, match="true or false"):
        ServerSettings.from_env({"CRITIC_CAPTURE_TEXT": "maybe"})


def test_the_endpoint_captures_what_it_answered(trained_bundle, tmp_path):
    settings = ServerSettings(capture_dir=str(tmp_path), feedback_db="off", endpoint_name="shop")
    app = create_app([VariantSpec("champion", trained_bundle)], settings)
    with TestClient(app) as client:
        answered = client.post(
            "/invocations", json={"instances": REVIEWS}, headers={"Accept": "application/json"}
        )
        client.post("/invocations", content=b"   ", headers={"Content-Type": "text/plain"})
        status = client.get("/api/ab/shadows").json()["capture"]
        client.app.state.endpoint.capture.flush()
    assert status["folder"] == str(tmp_path)
    (path,) = capture_files(tmp_path)
    assert path.relative_to(tmp_path).parts[:2] == ("shop", "champion")
    assert validate_capture_file(path) == []
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]  # the 400: none
    assert json.loads(record["captureData"]["endpointOutput"]["data"]) == answered.json()
    assert captured_reviews(record)[0] == REVIEWS
    first_id = answered.json()["predictions"][0]["id"]
    assert record["eventMetadata"]["inferenceId"] == first_id


def test_a_review_holding_unicode_line_breaks_stays_on_one_line(tmp_path):
    review = "Act one\u2028act two\x85act three\u2029the end, and “quotes” é"
    writer = CaptureWriter(CaptureConfig(tmp_path, "reviews"))
    offer(writer, reviews=[review])
    writer.close()
    (path,) = capture_files(tmp_path)
    (line,) = path.read_text(encoding="utf-8").splitlines()  # every Unicode line break
    assert captured_reviews(json.loads(line)) == ([review], [11])
