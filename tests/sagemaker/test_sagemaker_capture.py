"""SageMaker's data capture brought down for critic monitor: files in S3 (moto's server) on
SageMaker's layout, copied into a folder that ``critic monitor`` reads like critic's own."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from critic.errors import CriticError
from critic.inference.predictor import Predictor
from critic.sagemaker import deploy
from critic.sagemaker.capture import DataCapture, download_capture
from critic.serving.sidecar.capture import capture_record, validate_record
from support.aws import BUCKET, ROLE, assert_one_line, quiet
from support.cli import run_cli

REVIEWS = [
    "A warm, funny film with a lovely cast; I smiled all the way through it.",
    "Dull and far too long. The plot made no sense and the acting was wooden.",
    "One of the best films of the year, moving and beautifully shot.",
    "I want those two hours back: a lazy, boring and badly written mess.",
]


def sagemaker_capture_lines(bundle, when: dt.datetime) -> str:
    """What SageMaker writes for four calls of one review each: the request as sent
    (JSON, kept as text since the content type is declared JSON) and critic's answer."""
    predictor = Predictor.load(bundle)
    lines = []
    for review in REVIEWS:
        answer = predictor.predict(review)
        body = json.dumps({"predictions": [answer]}).encode()
        record = capture_record(
            json.dumps({"instances": [review]}).encode(),
            "application/json",
            body,
            "application/json",
            None,  # SageMaker names the call's inferenceId only when the caller gave one
            when,
        )
        assert validate_record(record) == []
        lines.append(json.dumps(record))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def captured_endpoint(aws, archives, nbsvm_bundle):
    deploy(
        [("AllTraffic", archives.champion, 1)],
        "critic-watch",
        ROLE,
        BUCKET,
        log=quiet,
        data_capture=DataCapture(100),
    )
    when = dt.datetime.now(dt.UTC)
    key = (
        f"critic/critic-watch/capture/critic-watch/AllTraffic/{when:%Y/%m/%d/%H}/"
        f"{when:%M-%S}-123-0d6b7c1e.jsonl"
    )
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=sagemaker_capture_lines(nbsvm_bundle, when))
    aws.s3.put_object(
        Bucket=BUCKET, Key="critic/critic-watch/capture/critic-watch/notes.txt", Body=b"x"
    )
    return key


def test_download_copies_the_capture_on_sagemakers_layout_and_only_what_is_new(
    captured_endpoint, tmp_path
):
    lines: list[str] = []
    first = download_capture("critic-watch", tmp_path, log=lines.append)
    relative = captured_endpoint.removeprefix("critic/critic-watch/capture/")
    assert first.files == [tmp_path / relative]
    assert first.source == f"s3://{BUCKET}/critic/critic-watch/capture/critic-watch/"
    assert len((tmp_path / relative).read_text().splitlines()) == len(REVIEWS)
    assert not list(tmp_path.rglob("*.part"))  # written under a temporary name, then renamed

    again = download_capture("critic-watch", tmp_path, log=lines.append)
    assert again.files == [] and again.unchanged == 1
    assert "1 already there" in lines[-1]

    recent = download_capture("critic-watch", tmp_path / "recent", hours=1, log=quiet)
    assert len(recent.files) == 1
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    old = download_capture("critic-watch", tmp_path / "old", hours=1, log=quiet, now=future)
    assert old.files == []


def test_critic_monitor_reads_what_was_brought_down(captured_endpoint, nbsvm_bundle, tmp_path):
    fetched = run_cli("sagemaker", "capture", "critic-watch", "--to", tmp_path / "capture")
    assert fetched.returncode == 0, fetched.stderr
    answer = json.loads(fetched.stdout.splitlines()[-1])
    assert answer["files"] == 1 and answer["folder"] == str(tmp_path / "capture")

    report = run_cli(
        "monitor", tmp_path / "capture", "--baseline", nbsvm_bundle, "--out", tmp_path / "report"
    )
    assert report.returncode in (0, 1), report.stderr  # drift or not: both are answers
    assert "Traceback" not in report.stderr
    written = json.loads((tmp_path / "report" / "drift.json").read_text())
    assert written["overall"]["reviews"] == len(REVIEWS) and written["unreadable"] == []


def test_an_endpoint_that_does_not_capture_says_how_to_turn_it_on(aws, archives, tmp_path):
    deploy([("AllTraffic", archives.champion, 1)], "critic-blind", ROLE, BUCKET, log=quiet)
    with pytest.raises(CriticError, match="does not capture its traffic") as error:
        download_capture("critic-blind", tmp_path, log=quiet)
    assert "--data-capture PERCENT" in assert_one_line(error)
    missing = run_cli("sagemaker", "capture", "no-such-endpoint", "--to", tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "there is no endpoint named no-such-endpoint" in missing.stderr


def test_a_bad_share_to_capture_is_one_line():
    with pytest.raises(CriticError, match="whole percent from 1 to 100") as error:
        DataCapture(0)
    assert_one_line(error)
