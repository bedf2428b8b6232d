"""critic.apps.batch: files in, one answer line per input line out, as SageMaker Batch Transform
(SplitType=Line) writes them; resumed after a real SIGKILL without losing or repeating a line."""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from critic.apps.batch import (
    TransformFailed,
    TransformSettings,
    answer_stream,
    count_lines,
    read_records,
    transform_file,
    transform_files,
)
from critic.errors import CriticError
from critic.inference.predictor import Predictor
from support.cli import Process, run_cli
from support.data import NEGATIVE, POSITIVE
from support.servers import running_server

REVIEWS = POSITIVE + NEGATIVE


@pytest.fixture(scope="module")
def predictor(nbsvm_bundle) -> Predictor:
    return Predictor.load(nbsvm_bundle)


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def without_id(prediction: dict) -> dict:
    return {key: value for key, value in prediction.items() if key != "id"}


# --- records ----------------------------------------------------------------------------------


def test_records_are_lines_whatever_their_ending_and_the_last_needs_none():
    data = b"one\r\ntwo\n\nfour"
    records = list(read_records(io.BytesIO(data)))
    assert [(r.line, r.data, r.end) for r in records] == [
        (1, b"one", 5),
        (2, b"two", 9),
        (3, b"", 10),
        (4, b"four", 14),
    ]


def test_a_quoted_csv_field_may_span_lines_and_is_one_record_that_keeps_its_line_number():
    data = b'id,text\n1,"two\nlines, ""quoted"""\n2,plain\n'
    records = list(read_records(io.BytesIO(data), csv_quoting=True))
    assert [(r.line, r.lines) for r in records] == [(1, 1), (2, 2), (4, 1)]
    assert records[1].data == b'1,"two\nlines, ""quoted"""'
    assert records[-1].end == len(data)


def test_lines_are_counted_with_or_without_a_final_line_ending(tmp_path):
    (tmp_path / "a").write_bytes(b"a\nb\nc")
    (tmp_path / "b").write_bytes(b"a\nb\nc\n")
    (tmp_path / "c").write_bytes(b"")
    assert [count_lines(tmp_path / name) for name in "abc"] == [3, 3, 0]


# --- answers ----------------------------------------------------------------------------------


def test_every_line_gets_one_answer_in_order_and_a_blank_line_an_error_record_on_its_line(
    predictor, tmp_path
):
    lines = [REVIEWS[0], "", REVIEWS[4], "   ", "<br/> :-)", REVIEWS[1]]
    source = tmp_path / "reviews.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = transform_file(predictor, source, tmp_path / "out", TransformSettings(batch_size=2))

    answers = lines_of(tmp_path / "out" / "reviews.txt.out")
    assert len(answers) == len(lines) and result.records == 6 and result.errors == 3
    expected = predictor.predict([REVIEWS[0], REVIEWS[4], REVIEWS[1]])
    assert [answers[0], answers[2], answers[5]] == expected
    assert answers[1] == {"line": 2, "status": 400, "message": "the review is empty"}
    assert answers[3] == {"line": 4, "status": 400, "message": "the review is empty"}
    assert answers[4]["line"] == 5 and "no words to judge" in answers[4]["message"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["reviews.txt.out"]


def test_json_lines_take_strings_objects_and_instances_and_answer_each_on_its_line(
    predictor, tmp_path
):
    rows = [
        json.dumps({"text": REVIEWS[0], "id": 1}),
        json.dumps(REVIEWS[5]),
        json.dumps({"review": REVIEWS[2]}),
        json.dumps({"instances": [REVIEWS[3], {"text": REVIEWS[6]}]}),
        "{not json",
        json.dumps({"id": 6}),
        json.dumps({"instances": [REVIEWS[3], ""]}),
        "\xff",
    ]
    source = tmp_path / "reviews.jsonl"
    source.write_bytes("\n".join(rows).encode("utf-8").replace("\xff".encode(), b"\xff"))
    transform_file(predictor, source, tmp_path, TransformSettings())

    answers = lines_of(tmp_path / "reviews.jsonl.out")
    assert len(answers) == len(rows)
    assert answers[:3] == predictor.predict([REVIEWS[0], REVIEWS[5], REVIEWS[2]])
    assert answers[3] == {"predictions": predictor.predict([REVIEWS[3], REVIEWS[6]])}
    assert answers[4]["line"] == 5 and "not valid JSON" in answers[4]["message"]
    assert answers[5] == {
        "line": 6,
        "status": 400,
        "message": "the line: an object needs a 'text' field",
    }
    assert answers[6] == {"line": 7, "status": 400, "message": "instance 1: the review is empty"}
    assert answers[7] == {
        "line": 8,
        "status": 400,
        "message": "the line is not valid UTF-8 (byte 0)",
    }


def test_csv_reads_the_review_from_its_named_column(predictor, tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text(
        f'id,body\n1,"{REVIEWS[0]}"\n2\n3,"{REVIEWS[4]}"\n', encoding="utf-8", newline=""
    )
    transform_file(predictor, source, tmp_path, TransformSettings(text_column="body"))
    answers = lines_of(tmp_path / "reviews.csv.out")
    assert [answers[0], answers[2]] == predictor.predict([REVIEWS[0], REVIEWS[4]])
    assert answers[1]["line"] == 3 and "the row has 1 field(s)" in answers[1]["message"]


def test_joined_json_keeps_the_input_object_and_adds_sagemaker_output(predictor, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"text": REVIEWS[0], "id": 7}) + "\n" + json.dumps(REVIEWS[4]) + "\n\n"
    )
    transform_file(predictor, source, tmp_path, TransformSettings(join_input=True))
    first, second, third = lines_of(tmp_path / "in.jsonl.out")
    assert first == {"text": REVIEWS[0], "id": 7, "SageMakerOutput": predictor.predict(REVIEWS[0])}
    assert second == {
        "SageMakerInput": REVIEWS[4],
        "SageMakerOutput": predictor.predict(REVIEWS[4]),
    }
    assert third == {
        "SageMakerInput": "",
        "SageMakerOutput": {"line": 3, "status": 400, "message": "the line is empty"},
    }


def test_joined_csv_appends_the_answer_columns_to_the_header_and_every_row(predictor, tmp_path):
    import csv

    source = tmp_path / "in.csv"
    source.write_text(f'id,text\n1,"{REVIEWS[0]}"\n2,\n', encoding="utf-8", newline="")
    transform_file(predictor, source, tmp_path, TransformSettings(join_input=True))
    rows = list(csv.reader((tmp_path / "in.csv.out").open(encoding="utf-8", newline="")))
    expected = predictor.predict(REVIEWS[0])
    assert rows[0] == [
        "id", "text", "label", "probability", "score", "rating", "domain_score", "typical", "error"
    ]  # fmt: skip
    assert rows[1][:3] == ["1", REVIEWS[0], expected["label"]]
    assert float(rows[1][3]) == expected["probability"] and rows[1][5] == str(expected["rating"])
    assert float(rows[1][6]) == expected["domain"]["score"]
    assert rows[1][7] == str(expected["domain"]["typical"]).lower()
    assert rows[2] == ["2", "", "", "", "", "", "", "", "line 3: the review is empty"]


def test_fail_on_error_names_the_line_and_writes_nothing(predictor, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text(f"{REVIEWS[0]}\n{REVIEWS[1]}\n\n{REVIEWS[2]}\n")
    out = tmp_path / "out"
    with pytest.raises(TransformFailed, match=r"in\.txt: line 3: the review is empty$"):
        transform_file(predictor, source, out, TransformSettings(fail_on_error=True, batch_size=1))
    assert list(out.iterdir()) == []


def test_the_stream_reader_answers_stdin_a_chunk_at_a_time(predictor):
    stream = io.BytesIO(f"{REVIEWS[0]}\n\n{REVIEWS[4]}".encode())
    lines = b"".join(answer_stream(predictor, stream, batch_size=1)).splitlines()
    assert [json.loads(line) for line in lines] == [
        predictor.predict(REVIEWS[0]),
        {"line": 2, "status": 400, "message": "the review is empty"},
        predictor.predict(REVIEWS[4]),
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"content_type": "image/png"}, "cannot read 'image/png'"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"text_column": " "}, "text_column must name a column"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(CriticError, match=message):
        TransformSettings(**settings)


def test_content_type_spellings_are_those_of_the_endpoint():
    assert TransformSettings(content_type="application/x-ndjson").content_type == (
        "application/jsonlines"
    )


def test_bad_inputs_fail_before_the_model_is_loaded(tmp_path):
    (tmp_path / "a.csv").write_text("id,review\n1,good\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.csv").write_text("text\nfine\n")
    no_bundle = tmp_path / "no-bundle"
    cases = [
        ([tmp_path / "missing.txt"], "missing.txt does not exist"),
        ([tmp_path / "a.csv"], "no column 'text' in the CSV header (columns: id, review)"),
        ([tmp_path / "sub" / "a.csv", tmp_path / "a.csv"], "would both write"),
    ]
    for inputs, message in cases:
        with pytest.raises(CriticError, match=re.escape(message)):
            transform_files(no_bundle, inputs, tmp_path / "out", TransformSettings())


# --- resume -----------------------------------------------------------------------------------

_RUN = """
import sys
from pathlib import Path
from critic.apps.batch import TransformSettings, transform_files
bundle, source, out = map(Path, sys.argv[1:4])
settings = TransformSettings(batch_size=8, checkpoint_seconds=0)
log = lambda line: print(line, file=sys.stderr)
for result in transform_files(bundle, [source], out, settings, show_progress=False, log=log):
    print(result.resumed_at_line)
"""


def _run(bundle: Path, source: Path, out: Path) -> Process:
    return Process(
        [sys.executable, "-c", _RUN, str(bundle), str(source), str(out)],
        env={"PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_a_run_killed_at_a_random_moment_resumes_to_the_same_bytes(nbsvm_bundle, tmp_path):
    generator = random.Random()
    seed = generator.randrange(10**6)
    generator.seed(seed)
    lines = [
        "" if generator.random() < 0.01 else f"{generator.choice(REVIEWS)} ({number})"
        for number in range(6000)
    ]
    source = tmp_path / "reviews.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = TransformSettings(batch_size=8)
    transform_files(nbsvm_bundle, [source], tmp_path / "whole", settings, show_progress=False)
    whole = (tmp_path / "whole" / "reviews.txt.out").read_bytes()
    assert whole.count(b"\n") == len(lines)

    out = tmp_path / "resumed"
    progress = out / ".reviews.txt.out.progress.json"
    killed = _run(nbsvm_bundle, source, out)
    process = killed.process
    deadline = time.monotonic() + 120
    while not progress.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(generator.uniform(0.0, 0.5))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, f"finished before the kill (seed {seed})"
    assert not (out / "reviews.txt.out").exists()  # never a half-written answer file

    again = _run(nbsvm_bundle, source, out)
    try:
        code = again.wait(timeout=300)
    finally:
        again.stop()
    assert code == 0, again.stderr()
    resumed_at = int(again.stdout().strip())
    assert 1 < resumed_at <= len(lines), f"seed {seed}"
    assert (out / "reviews.txt.out").read_bytes() == whole, f"seed {seed}"
    assert sorted(p.name for p in out.iterdir()) == ["reviews.txt.out"]


def test_a_changed_input_is_not_resumed_but_started_again(predictor, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text(f"{REVIEWS[0]}\n{REVIEWS[1]}\n")
    out = tmp_path / "out"
    # Leave the progress of a run over another version of the file behind.
    stale = TransformSettings(fail_on_error=False)
    transform_file(predictor, source, out, stale)
    (out / ".in.txt.out.partial").write_bytes(b'{"stale": true}\n')
    (out / ".in.txt.out.progress.json").write_text(
        json.dumps({"identity": {"input": str(source)}, "next_line": 2, "offset": 5})
    )
    source.write_text(f"{REVIEWS[4]}\n")
    result = transform_file(predictor, source, out, stale)
    assert result.resumed_at_line is None
    assert lines_of(out / "in.txt.out") == [predictor.predict(REVIEWS[4])]


# --- the endpoint, as Batch Transform drives it -------------------------------------------------


@pytest.fixture(scope="module")
def endpoint(nbsvm_bundle, tmp_path_factory):
    """``critic serve`` of the n-gram bundle, a real process on a loopback port."""
    feedback = tmp_path_factory.mktemp("feedback") / "feedback.sqlite"
    with running_server(
        ["serve", nbsvm_bundle, "--workers", "1", "--feedback-db", feedback]
    ) as server:
        yield server.url


def _http(url: str, body: bytes | None = None, content_type: str = "", accept: str = ""):
    import urllib.request

    headers = {"Content-Type": content_type, "Accept": accept} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.headers.get("Content-Type"), response.read()


def test_the_endpoint_tells_batch_transform_to_send_many_records_per_request(endpoint):
    status, content_type, body = _http(f"{endpoint}/execution-parameters")
    assert status == 200 and content_type == "application/json"
    assert json.loads(body) == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


@pytest.mark.parametrize("content_type", ["application/jsonlines", "text/csv"])
def test_a_multi_record_body_gets_one_answer_per_record_the_same_as_the_transform_writes(
    endpoint, predictor, tmp_path, content_type
):
    # What SageMaker sends with SplitType=Line and MultiRecord: whole lines, concatenated.
    reviews = [REVIEWS[0], 'Commas, and "quotes", in it', REVIEWS[5], REVIEWS[2]]
    if content_type == "text/csv":
        body = "".join('"' + review.replace('"', '""') + '"\n' for review in reviews)
        source = tmp_path / "in.csv"
        source.write_text("text\n" + body, encoding="utf-8")
    else:
        body = "".join(json.dumps({"text": review}) + "\n" for review in reviews)
        source = tmp_path / "in.jsonl"
        source.write_text(body, encoding="utf-8")
    status, answered_type, answer = _http(
        f"{endpoint}/invocations", body.encode(), content_type, "application/jsonlines"
    )
    assert status == 200 and answered_type == "application/jsonlines"
    served = [without_id(json.loads(line)) for line in answer.splitlines()]
    assert len(served) == len(reviews)

    transform_file(predictor, source, tmp_path, TransformSettings())
    assert served == lines_of(tmp_path / f"{source.name}.out")


def test_the_sagemaker_handler_takes_a_whole_multi_record_request_when_the_job_says_so(
    monkeypatch,
):
    from sagemaker_inference.errors import GenericInferenceToolkitError

    from critic.serving.handler import input_fn

    body = "".join(json.dumps(f"review {number}") + "\n" for number in range(1500))
    with pytest.raises(GenericInferenceToolkitError, match="1500 reviews in one request"):
        input_fn(body, "application/jsonlines")
    monkeypatch.setenv("CRITIC_MAX_REVIEWS", "3000000")  # what critic sagemaker transform sets
    reviews, explain = input_fn(body, "application/jsonlines")
    assert len(reviews) == 1500 and reviews[-1] == "review 1499" and explain is False


def test_critic_transform_answers_files_and_a_bad_input_is_one_line(nbsvm_bundle, tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": REVIEWS[0]}) + "\n\n")
    (tmp_path / "columns.csv").write_text("id,review\n1,good\n")
    out = tmp_path / "out"
    done = run_cli(
        "transform", nbsvm_bundle, tmp_path / "in.jsonl", "--output", out, "--join-input"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "input": str(tmp_path / "in.jsonl"), "output": str(out / "in.jsonl.out"),
        "records": 2, "errors": 1,
    }  # fmt: skip
    assert [sorted(answer) for answer in lines_of(out / "in.jsonl.out")] == [
        ["SageMakerOutput", "text"],
        ["SageMakerInput", "SageMakerOutput"],
    ]
    for args, message in [
        ([tmp_path / "missing.txt"], "missing.txt does not exist"),
        ([tmp_path / "in.jsonl", "--content-type", "image/png"], "cannot read 'image/png'"),
        ([tmp_path / "columns.csv"], "no column 'text' in the CSV header"),
        ([tmp_path / "in.jsonl", "--fail-on-error"], "in.jsonl: line 2: the line is empty"),
    ]:
        failed = run_cli("transform", nbsvm_bundle, *args, "--output", tmp_path / "failed")
        assert failed.returncode == 1
        assert failed.stderr.startswith("critic: error: ") and message in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert not (tmp_path / "failed").exists() or list((tmp_path / "failed").iterdir()) == []
