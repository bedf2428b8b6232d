"""critic.sagemaker.transform against moto's server on loopback: a Batch Transform job on the
model ``deploy`` made, and ``critic sagemaker transform`` as a user runs it."""

from __future__ import annotations

import json

import pytest

from critic.errors import CriticError
from critic.sagemaker import delete_endpoint, deploy, run_transform_job
from support.aws import BUCKET, ROLE, assert_one_line, quiet, recording_session
from support.cli import run_cli

INPUT = f"s3://{BUCKET}/batch/in/"
OUTPUT = f"s3://{BUCKET}/batch/out/"


@pytest.fixture(scope="module")
def endpoints(aws, archives):
    """One endpoint with one variant, one with two: the models a transform job runs on."""
    deploy([("only", archives.champion, 1)], "critic-one", ROLE, BUCKET, log=quiet)
    deploy(
        [("champion", archives.champion, 1), ("challenger", archives.challenger, 1)],
        "critic-two",
        ROLE,
        BUCKET,
        log=quiet,
    )
    yield aws
    # moto keeps its state for the whole process: the next test module must not find these.
    for name in ("critic-one", "critic-two"):
        delete_endpoint(name, log=quiet)


def test_a_transform_job_runs_on_the_endpoints_model_line_by_line_and_waits(endpoints):
    lines: list[str] = []
    job = run_transform_job(
        "critic-one", INPUT, OUTPUT, job_name="critic-batch-1", join_input=True, log=lines.append
    )
    assert (job.name, job.model_name, job.status) == (
        "critic-batch-1",
        "critic-one-only",
        "Completed",
    )
    described = endpoints.sagemaker.describe_transform_job(TransformJobName="critic-batch-1")
    assert described["ModelName"] == "critic-one-only"
    assert described["BatchStrategy"] == "MultiRecord"
    assert described["MaxPayloadInMB"] == 6
    assert described["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": INPUT}},
        "ContentType": "application/jsonlines",
        "SplitType": "Line",
        "CompressionType": "None",
    }
    assert described["TransformOutput"] == {
        "S3OutputPath": OUTPUT,
        "Accept": "application/jsonlines",
        "AssembleWith": "Line",
    }
    assert described["DataProcessing"]["JoinSource"] == "Input"
    # The handler must take a whole MultiRecord request: the job tells it how many lines fit.
    assert int(described["Environment"]["CRITIC_MAX_REVIEWS"]) >= 6 * 1024 * 1024 // 2
    assert f"the answers will be at {OUTPUT.rstrip('/')}/<input name>.out" in lines
    assert lines[-1] == "transform job critic-batch-1 is Completed"


def test_plain_text_goes_one_line_a_request_and_a_model_may_be_named_directly(endpoints):
    session, sent = recording_session("sagemaker.CreateTransformJob")
    job = run_transform_job(
        "critic-two-challenger", INPUT, OUTPUT, content_type="text/plain", job_name="critic-batch-2",
        wait=False, log=quiet, session=session,
    )  # fmt: skip
    assert (job.model_name, job.status) == ("critic-two-challenger", "InProgress")
    [request] = sent
    body = json.loads(request.body)
    assert body["BatchStrategy"] == "SingleRecord"
    assert body["TransformInput"]["ContentType"] == "text/plain"
    assert "DataProcessing" not in body


def test_an_endpoint_of_several_variants_needs_the_variant_named(endpoints):
    job = run_transform_job(
        "critic-two", INPUT, OUTPUT, variant="challenger", job_name="critic-batch-3", log=quiet
    )
    assert job.model_name == "critic-two-challenger"
    with pytest.raises(CriticError) as error:
        run_transform_job("critic-two", INPUT, OUTPUT, job_name="critic-batch-4", log=quiet)
    assert "has 2 variants (challenger, champion): name the one" in assert_one_line(error)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"model_or_endpoint": "nothing-here"}, "no model or endpoint named nothing-here"),
        ({"input_uri": "/local/file"}, "is not an S3 URI"),
        ({"content_type": "image/png"}, "not 'image/png'"),
        ({"content_type": "text/csv", "join_input": True}, "needs JSON lines input"),
        ({"variant": "nope"}, "endpoint critic-one has no variant nope; its variants: only"),
        ({"job_name": "critic-batch-1"}, "transform job critic-batch-1 already exists"),
        ({"instance_type": "m5.large"}, "is not a SageMaker instance type"),
    ],
)
def test_mistakes_are_one_line_and_start_no_job(endpoints, arguments, message):
    given = {
        "model_or_endpoint": "critic-one",
        "input_uri": INPUT,
        "output_uri": OUTPUT,
        "job_name": "critic-batch-never",
        "log": quiet,
        **arguments,
    }
    with pytest.raises(CriticError) as error:
        run_transform_job(**given)
    assert message in assert_one_line(error)
    names = [
        j["TransformJobName"]
        for j in endpoints.sagemaker.list_transform_jobs()["TransformJobSummaries"]
    ]
    assert "critic-batch-never" not in names


def test_critic_sagemaker_transform_from_the_command_line(endpoints):
    completed = run_cli(
        "sagemaker", "transform", "critic-one", "--input", INPUT, "--output", OUTPUT,
        "--job-name", "critic-batch-cli", timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.splitlines()[-1]) == {
        "transform_job": "critic-batch-cli",
        "model": "critic-one-only",
        "status": "Completed",
        "output": OUTPUT,
    }
    failed = run_cli(
        "sagemaker",
        "transform",
        "missing-model",
        "--input",
        INPUT,
        "--output",
        OUTPUT,
        timeout=120,
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("critic: error: there is no model or endpoint named missing")
    assert len(failed.stderr.strip().splitlines()) == 1
