"""critic.sagemaker.shadow_tests: start, stop and describe an endpoint's shadow test.

moto's server does not implement inference experiments, so SageMaker answers from botocore
Stubbers (support.aws.StubbedSession): each test queues every SageMaker call it expects, with
the exact request, in order, and the Stubber checks each request against the service model. S3
is moto's server, where the uploaded artifact is read back."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from typer.testing import CliRunner

from critic.errors import CriticError
from critic.sagemaker import (
    ShadowTest,
    describe_shadow_test,
    start_shadow_test,
    stop_shadow_test,
)
from support.aws import (
    BUCKET,
    CPU_INFERENCE_IMAGE,
    GPU_INFERENCE_IMAGE,
    MODEL_ENVIRONMENT,
    REGION,
    ROLE,
    StubbedSession,
    assert_one_line,
)
from support.cli import run_cli

NOW = datetime(2026, 12, 3, 9, 45, tzinfo=timezone.utc)
STAMP = "20261203-094500"
ACCOUNT = "123456789012"
CAPTURED = {
    "JsonContentTypes": ["application/json", "application/jsonlines"],
    "CsvContentTypes": ["text/csv"],
}


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


def described_endpoint(name: str, variants: list[tuple[str, float, int]], status="InService"):
    """DescribeEndpoint's answer: (variant, current weight, current instance count) each."""
    return {
        "EndpointName": name,
        "EndpointArn": arn("endpoint", name),
        "EndpointConfigName": name,
        "EndpointStatus": status,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "CurrentWeight": weight,
                "DesiredWeight": weight,
                "CurrentInstanceCount": count,
                "DesiredInstanceCount": count,
            }
            for variant, weight, count in variants
        ],
        "CreationTime": NOW - timedelta(days=3),
        "LastModifiedTime": NOW - timedelta(days=3),
    }


def described_config(name: str, variants: list[tuple[str, str]]):
    """DescribeEndpointConfig's answer: (variant, instance type) each, one instance at first."""
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": arn("endpoint-config", name),
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": f"{name}-{variant}",
                "InitialInstanceCount": 1,
                "InstanceType": instance_type,
                "InitialVariantWeight": 1.0,
            }
            for variant, instance_type in variants
        ],
        "CreationTime": NOW - timedelta(days=3),
    }


def listing(endpoint: str):
    return {
        "NameContains": f"{endpoint}-shadow",
        "Type": "ShadowMode",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
    }


def summary(name: str, status: str):
    return {
        "Name": name,
        "Type": "ShadowMode",
        "Status": status,
        "CreationTime": NOW - timedelta(days=1),
        "LastModifiedTime": NOW - timedelta(days=1),
    }


def variant_config(model: str, variant: str, instance_type="ml.m5.large", count=1):
    return {
        "ModelName": model,
        "VariantName": variant,
        "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": instance_type, "InstanceCount": count},
        },
    }


def described_test(name: str, endpoint: str, status="Running", source="AllTraffic", percent=50):
    shadow_model = f"{endpoint}-shadow-20261201-000000"
    return {
        "Arn": arn("inference-experiment", name),
        "Name": name,
        "Type": "ShadowMode",
        "Status": status,
        "Schedule": {"StartTime": NOW - timedelta(days=1), "EndTime": NOW + timedelta(days=6)},
        "EndpointMetadata": {"EndpointName": endpoint, "EndpointStatus": "InService"},
        "ModelVariants": [
            {**variant_config(f"{endpoint}-{source}", source), "Status": "InService"},
            {**variant_config(shadow_model, "shadow"), "Status": "InService"},
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": source,
            "ShadowModelVariants": [
                {"ShadowModelVariantName": "shadow", "SamplingPercentage": percent}
            ],
        },
        "DataStorageConfig": {"Destination": f"s3://{BUCKET}/critic/{endpoint}/shadow-capture"},
    }


def uploaded_keys(aws, endpoint: str) -> list[str]:
    answer = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"critic/{endpoint}/")
    return [entry["Key"] for entry in answer.get("Contents", [])]


class NoAws:
    """A session that fails the test if anything asks it for a client."""

    region_name = REGION

    def client(self, service, **_):
        raise AssertionError(f"no AWS call was expected, but a {service} client was made")


def test_a_shadow_test_copies_the_endpoints_one_variant_to_a_new_model(aws, archives):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    endpoint = "critic-one"
    model = f"{endpoint}-shadow-{STAMP}"
    key = f"critic/{endpoint}/shadow/{STAMP}/model.tar.gz"
    tags = [{"Key": "critic:endpoint", "Value": endpoint}]
    stub.add_response(
        "describe_endpoint",
        described_endpoint(endpoint, [("AllTraffic", 1.0, 1)]),
        {"EndpointName": endpoint},
    )
    stub.add_response(
        "describe_endpoint_config",
        described_config(endpoint, [("AllTraffic", "ml.m5.large")]),
        {"EndpointConfigName": endpoint},
    )
    # An old test, over: no reason to look closer, and none to refuse.
    stub.add_response(
        "list_inference_experiments",
        {"InferenceExperiments": [summary(f"{endpoint}-shadow-20261101-000000", "Completed")]},
        listing(endpoint),
    )
    stub.add_response(
        "create_model",
        {"ModelArn": arn("model", model)},
        {
            "ModelName": model,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": CPU_INFERENCE_IMAGE,
                "Environment": MODEL_ENVIRONMENT,
                "ModelDataUrl": f"s3://{BUCKET}/{key}",
            },
            "Tags": tags,
        },
    )
    stub.add_response(
        "create_inference_experiment",
        {"InferenceExperimentArn": arn("inference-experiment", f"{endpoint}-shadow-{STAMP}")},
        {
            "Name": f"{endpoint}-shadow-{STAMP}",
            "Type": "ShadowMode",
            "Schedule": {"StartTime": NOW, "EndTime": NOW + timedelta(days=7)},
            "RoleArn": ROLE,
            "EndpointName": endpoint,
            "ModelVariants": [
                variant_config(f"{endpoint}-AllTraffic", "AllTraffic"),
                variant_config(model, "shadow"),
            ],
            "ShadowModeConfig": {
                "SourceModelVariantName": "AllTraffic",
                "ShadowModelVariants": [
                    {"ShadowModelVariantName": "shadow", "SamplingPercentage": 100}
                ],
            },
            "DataStorageConfig": {
                "Destination": f"s3://{BUCKET}/critic/{endpoint}/shadow-capture",
                "ContentType": CAPTURED,
            },
            "Tags": tags,
        },
    )
    lines: list[str] = []

    test = start_shadow_test(
        endpoint, archives.challenger, ROLE, BUCKET, session=session, now=NOW, log=lines.append
    )

    session.assert_no_pending_responses()
    assert aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == (
        archives.challenger.read_bytes()
    )
    assert test == ShadowTest(
        name=f"{endpoint}-shadow-{STAMP}",
        endpoint_name=endpoint,
        source_variant="AllTraffic",
        shadow_variant="shadow",
        shadow_model=model,
        percent=100,
        starts=NOW,
        ends=NOW + timedelta(days=7),
        status="Creating",
        data_destination=f"s3://{BUCKET}/critic/{endpoint}/shadow-capture",
    )
    assert test.to_dict()["ends"] == "2026-12-10T09:45:00+00:00"
    text = "\n".join(lines)
    assert "billed while the test runs" in text
    assert f"critic sagemaker shadow {endpoint} --stop" in text
    assert "100% of the requests to AllTraffic" in text


def test_of_two_production_variants_the_one_with_the_largest_weight_is_shadowed(aws, archives):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    endpoint = "critic-two"
    model = f"{endpoint}-gpu-{STAMP}"
    stub.add_response(
        "describe_endpoint",
        # Autoscaling took the challenger to 3 instances: the test keeps what runs.
        described_endpoint(endpoint, [("champion", 0.3, 1), ("challenger", 0.7, 3)]),
        {"EndpointName": endpoint},
    )
    stub.add_response(
        "describe_endpoint_config",
        described_config(endpoint, [("champion", "ml.m5.large"), ("challenger", "ml.c5.xlarge")]),
        {"EndpointConfigName": endpoint},
    )
    stub.add_response("list_inference_experiments", {"InferenceExperiments": []}, listing(endpoint))
    stub.add_response("create_model", {"ModelArn": arn("model", model)})
    stub.add_response(
        "create_inference_experiment",
        {"InferenceExperimentArn": arn("inference-experiment", f"{endpoint}-shadow-{STAMP}")},
        {
            "Name": f"{endpoint}-shadow-{STAMP}",
            "Type": "ShadowMode",
            "Schedule": {"StartTime": NOW, "EndTime": NOW + timedelta(days=1.5)},
            "RoleArn": ROLE,
            "EndpointName": endpoint,
            "ModelVariants": [
                variant_config(f"{endpoint}-challenger", "challenger", "ml.c5.xlarge", 3),
                variant_config(model, "gpu", "ml.g4dn.xlarge", 2),
            ],
            "ShadowModeConfig": {
                "SourceModelVariantName": "challenger",
                "ShadowModelVariants": [
                    {"ShadowModelVariantName": "gpu", "SamplingPercentage": 20}
                ],
            },
            "DataStorageConfig": {
                "Destination": f"s3://{BUCKET}/critic/{endpoint}/shadow-capture",
                "ContentType": CAPTURED,
            },
            "Tags": [{"Key": "critic:endpoint", "Value": endpoint}],
        },
    )
    lines: list[str] = []

    test = start_shadow_test(
        endpoint,
        archives.champion,
        ROLE,
        f"s3://{BUCKET}/",
        variant="gpu",
        percent=20,
        duration_days=1.5,
        instance_type="ml.g4dn.xlarge",
        instance_count=2,
        session=session,
        now=NOW,
        log=lines.append,
    )

    session.assert_no_pending_responses()
    assert (test.source_variant, test.shadow_variant, test.percent) == ("challenger", "gpu", 20)
    assert "champion 30%, challenger 70%" in lines[0]
    assert "challenger, the one with the largest weight" in lines[0]
    assert any(GPU_INFERENCE_IMAGE in line for line in lines)
    assert uploaded_keys(aws, endpoint) == [f"critic/{endpoint}/gpu/{STAMP}/model.tar.gz"]


def test_an_endpoint_with_a_running_shadow_test_is_refused_and_nothing_is_made(aws, archives):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    endpoint = "critic-busy"
    running = f"{endpoint}-shadow-20261201-000000"
    stub.add_response(
        "describe_endpoint",
        described_endpoint(endpoint, [("AllTraffic", 1.0, 1)]),
        {"EndpointName": endpoint},
    )
    stub.add_response(
        "describe_endpoint_config",
        described_config(endpoint, [("AllTraffic", "ml.m5.large")]),
        {"EndpointConfigName": endpoint},
    )
    stub.add_response(
        "list_inference_experiments",
        {"InferenceExperiments": [summary(running, "Running")]},
        listing(endpoint),
    )
    stub.add_response(
        "describe_inference_experiment", described_test(running, endpoint), {"Name": running}
    )
    # No create_model is queued: the Stubber would fail the test on one.

    with pytest.raises(CriticError) as error:
        start_shadow_test(endpoint, archives.challenger, ROLE, BUCKET, session=session, now=NOW)

    message = assert_one_line(error)
    assert f"already has a shadow test, {running} (Running)" in message
    assert f"critic sagemaker shadow {endpoint} --stop" in message
    session.assert_no_pending_responses()
    assert uploaded_keys(aws, endpoint) == []


BAD_STARTS = [
    ("no share of the requests", {"percent": 0}, "whole percentage from 1 to 100, got 0"),
    ("more than all of them", {"percent": 101}, "from 1 to 100, got 101"),
    ("a fraction of a percent", {"percent": 12.5}, "from 1 to 100, got 12.5"),
    ("more than SageMaker's 30 days", {"duration_days": 31}, "at most 30 days"),
    ("no time at all", {"duration_days": 0}, "more than 0"),
    ("a shadow name SageMaker refuses", {"variant": "no_underscores"}, "variant name"),
    ("a model name too long", {"variant": "v" * 40}, "SageMaker allows 63"),
    ("a role that is not an ARN", {"role_arn": "critic"}, "is not an IAM role ARN"),
    ("a bucket with a key", {"bucket": "b/key"}, "give the bucket name alone"),
    ("an odd instance type", {"instance_type": "m5.large"}, "not a SageMaker instance type"),
    ("no instances", {"instance_count": 0}, "instance_count must be a whole number"),
]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [(changes, expected) for _, changes, expected in BAD_STARTS],
    ids=[what for what, _, _ in BAD_STARTS],
)
def test_bad_inputs_are_refused_in_one_line_before_any_aws_call(archives, changes, expected):
    arguments = {"role_arn": ROLE, "bucket": BUCKET, **changes}
    with pytest.raises(CriticError) as error:
        start_shadow_test("critic-bad", archives.challenger, session=NoAws(), now=NOW, **arguments)
    assert expected in assert_one_line(error)


@pytest.mark.parametrize(
    ("archive", "expected"),
    [("missing", "does not exist"), ("without_code", "has no code/inference.py")],
)
def test_an_artifact_deploy_would_refuse_is_refused_before_any_aws_call(
    archives, archive, expected
):
    with pytest.raises(CriticError) as error:
        start_shadow_test("critic-bad", getattr(archives, archive), ROLE, BUCKET, session=NoAws())
    assert expected in assert_one_line(error)


@pytest.mark.parametrize(
    ("status", "variant", "expected"),
    [
        ("Updating", "shadow", "endpoint critic-odd is Updating; a shadow test can start once"),
        ("InService", "AllTraffic", "already has a production variant named AllTraffic"),
    ],
    ids=["an endpoint not in service", "a shadow named like a production variant"],
)
def test_what_only_the_endpoint_can_tell_is_refused_once_it_is_described(
    aws, archives, status, variant, expected
):
    session = StubbedSession("sagemaker")
    session.stubbers["sagemaker"].add_response(
        "describe_endpoint",
        described_endpoint("critic-odd", [("AllTraffic", 1.0, 1)], status=status),
        {"EndpointName": "critic-odd"},
    )
    with pytest.raises(CriticError) as error:
        start_shadow_test(
            "critic-odd", archives.challenger, ROLE, BUCKET, variant=variant, session=session
        )
    assert expected in assert_one_line(error)
    session.assert_no_pending_responses()
    assert uploaded_keys(aws, "critic-odd") == []


def test_a_missing_endpoint_is_one_line(aws, archives):
    session = StubbedSession("sagemaker")
    session.stubbers["sagemaker"].add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message='Could not find endpoint "critic-gone".',
        expected_params={"EndpointName": "critic-gone"},
    )
    with pytest.raises(CriticError) as error:
        start_shadow_test("critic-gone", archives.challenger, ROLE, BUCKET, session=session)
    assert assert_one_line(error) == "there is no endpoint named critic-gone in region us-east-1"
    session.assert_no_pending_responses()


def test_a_failed_create_inference_experiment_deletes_the_model_it_made(aws, archives):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    endpoint = "critic-fails"
    model = f"{endpoint}-shadow-{STAMP}"
    stub.add_response(
        "describe_endpoint",
        described_endpoint(endpoint, [("AllTraffic", 1.0, 1)]),
        {"EndpointName": endpoint},
    )
    stub.add_response(
        "describe_endpoint_config",
        described_config(endpoint, [("AllTraffic", "ml.m5.large")]),
        {"EndpointConfigName": endpoint},
    )
    stub.add_response("list_inference_experiments", {"InferenceExperiments": []}, listing(endpoint))
    stub.add_response("create_model", {"ModelArn": arn("model", model)})
    stub.add_client_error(
        "create_inference_experiment",
        service_error_code="ValidationException",
        service_message="The role cannot be assumed\nby SageMaker.",
    )
    stub.add_response("delete_model", {}, {"ModelName": model})
    lines: list[str] = []

    with pytest.raises(CriticError) as error:
        start_shadow_test(
            endpoint, archives.challenger, ROLE, BUCKET, session=session, now=NOW, log=lines.append
        )

    assert assert_one_line(error) == (
        f"creating shadow test {endpoint}-shadow-{STAMP} failed: ValidationException: "
        "The role cannot be assumed by SageMaker."
    )
    session.assert_no_pending_responses()
    assert f"deleted model {model} again" in lines[-1]


def stopping(endpoint: str, status="Running"):
    """A session whose SageMaker finds the endpoint's test (and an old one) and describes it."""
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    name = f"{endpoint}-shadow-20261201-000000"
    stub.add_response(
        "list_inference_experiments",
        {
            "InferenceExperiments": [
                summary(name, status),
                summary(f"{endpoint}-shadow-20261101-000000", "Completed"),
            ]
        },
        listing(endpoint),
    )
    if status == "Running":
        stub.add_response(
            "describe_inference_experiment", described_test(name, endpoint), {"Name": name}
        )
    return session, name


def test_stop_keeps_the_source_and_removes_the_shadow(aws):
    session, name = stopping("critic-stop")
    session.stubbers["sagemaker"].add_response(
        "stop_inference_experiment",
        {"InferenceExperimentArn": arn("inference-experiment", name)},
        {
            "Name": name,
            "ModelVariantActions": {"AllTraffic": "Retain", "shadow": "Remove"},
            "DesiredState": "Completed",
            "Reason": "critic: stop; keep AllTraffic, remove shadow",
        },
    )
    lines: list[str] = []

    test = stop_shadow_test("critic-stop", session=session, log=lines.append)

    session.assert_no_pending_responses()
    assert (test.name, test.status, test.percent) == (name, "Stopping", 50)
    assert test.shadow_model == "critic-stop-shadow-20261201-000000"
    assert "AllTraffic serves on as before" in lines[0]
    assert f"s3://{BUCKET}/critic/critic-stop/shadow-capture" in lines[-1]


def test_stop_with_promote_puts_the_shadow_in_the_sources_place(aws):
    session, name = stopping("critic-promote")
    session.stubbers["sagemaker"].add_response(
        "stop_inference_experiment",
        {"InferenceExperimentArn": arn("inference-experiment", name)},
        {
            "Name": name,
            "ModelVariantActions": {"AllTraffic": "Remove", "shadow": "Promote"},
            "DesiredModelVariants": [
                variant_config("critic-promote-shadow-20261201-000000", "shadow")
            ],
            "DesiredState": "Completed",
            "Reason": "critic: promote shadow in place of AllTraffic",
        },
    )
    lines: list[str] = []

    stop_shadow_test("critic-promote", promote=True, session=session, log=lines.append)

    session.assert_no_pending_responses()
    assert "becomes the production variant of endpoint critic-promote" in lines[0]


def test_stop_without_a_running_test_is_one_line(aws):
    session, _ = stopping("critic-idle", status="Completed")
    with pytest.raises(CriticError) as error:
        stop_shadow_test("critic-idle", session=session)
    assert "endpoint critic-idle has no shadow test running in us-east-1" in assert_one_line(error)
    session.assert_no_pending_responses()


def test_describe_finds_the_endpoints_latest_test_and_not_a_similarly_named_endpoints(aws):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    # Endpoint critic-ab-shadow-2's tests start with critic-ab-shadow- too.
    other = "critic-ab-shadow-2-shadow-20261202-000000"
    ours = "critic-ab-shadow-20261201-000000"
    stub.add_response(
        "list_inference_experiments",
        {"InferenceExperiments": [summary(other, "Running"), summary(ours, "Completed")]},
        listing("critic-ab"),
    )
    stub.add_response(
        "describe_inference_experiment",
        described_test(other, "critic-ab-shadow-2"),
        {"Name": other},
    )
    stub.add_response(
        "describe_inference_experiment",
        described_test(ours, "critic-ab", status="Completed", source="champion"),
        {"Name": ours},
    )

    test = describe_shadow_test("critic-ab", session=session)

    session.assert_no_pending_responses()
    assert test is not None
    assert (test.name, test.endpoint_name, test.status) == (ours, "critic-ab", "Completed")
    assert (test.source_variant, test.shadow_variant) == ("champion", "shadow")
    assert test.starts == NOW - timedelta(days=1)


def test_describe_an_endpoint_without_shadow_tests_is_none(aws):
    session = StubbedSession("sagemaker")
    session.stubbers["sagemaker"].add_response(
        "list_inference_experiments", {"InferenceExperiments": []}, listing("critic-new")
    )
    assert describe_shadow_test("critic-new", session=session) is None
    session.assert_no_pending_responses()


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch):
    """Run ``critic ARGS`` in this process, boto3's default session being ``session``."""
    from critic.cli import app

    def run(*args, session=None):
        if session is not None:
            monkeypatch.setattr(boto3.session, "Session", lambda *_, **__: session)
        return CliRunner().invoke(app, [str(arg) for arg in args])

    return run


def test_the_shadow_command_stops_a_test_and_prints_it_as_json(aws, cli):
    session, name = stopping("critic-cli")
    session.stubbers["sagemaker"].add_response(
        "stop_inference_experiment", {"InferenceExperimentArn": arn("inference-experiment", name)}
    )
    result = cli("sagemaker", "shadow", "critic-cli", "--stop", session=session)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.splitlines()[-1])
    assert (answer["name"], answer["status"], answer["endpoint"]) == (
        name,
        "Stopping",
        "critic-cli",
    )
    session.assert_no_pending_responses()


def test_the_shadow_command_status_of_an_endpoint_without_tests(aws, cli):
    session = StubbedSession("sagemaker")
    session.stubbers["sagemaker"].add_response(
        "list_inference_experiments", {"InferenceExperiments": []}, listing("critic-cli")
    )
    result = cli("sagemaker", "shadow", "critic-cli", "--status", session=session)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1]) == {
        "endpoint": "critic-cli",
        "shadow_test": None,
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--stop", "ARTIFACT"], "--stop takes no ARTIFACT"),
        ([], "give an ARTIFACT to start a shadow test"),
        (["--promote"], "--promote goes with --stop"),
        (["--stop", "--status"], "give --stop or --status, not both"),
        (["ARTIFACT"], "needs --role and --bucket"),
    ],
    ids=["stop with an artifact", "nothing to do", "promote alone", "stop and status", "no role"],
)
def test_the_shadow_command_refuses_bad_combinations_before_any_aws_call(
    archives, cli, args, expected
):
    args = [archives.challenger if arg == "ARTIFACT" else arg for arg in args]
    result = cli("sagemaker", "shadow", "critic-cli", *args, session=NoAws())
    assert isinstance(result.exception, CriticError), result.output
    assert expected in str(result.exception)
    assert "\n" not in str(result.exception)


def test_the_shadow_command_says_a_bad_combination_in_one_line_on_stderr(archives):
    completed = run_cli("sagemaker", "shadow", "critic-cli", archives.challenger, "--stop")
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        "critic: error: --stop takes no ARTIFACT: the artifact starts a test"
    ]


def test_the_shadow_command_starts_a_test_now_and_prints_it_as_json(aws, archives, cli):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    endpoint = "critic-cli-start"
    stub.add_response(
        "describe_endpoint",
        described_endpoint(endpoint, [("AllTraffic", 1.0, 1)]),
        {"EndpointName": endpoint},
    )
    stub.add_response(
        "describe_endpoint_config",
        described_config(endpoint, [("AllTraffic", "ml.m5.large")]),
        {"EndpointConfigName": endpoint},
    )
    stub.add_response("list_inference_experiments", {"InferenceExperiments": []}, listing(endpoint))
    stub.add_response("create_model", {"ModelArn": arn("model", f"{endpoint}-next")})
    stub.add_response(
        "create_inference_experiment",
        {"InferenceExperimentArn": arn("inference-experiment", f"{endpoint}-shadow")},
    )
    before = datetime.now(timezone.utc).replace(microsecond=0)

    result = cli(
        "sagemaker", "shadow", endpoint, archives.challenger, "--role", ROLE, "--bucket", BUCKET,
        "--variant", "next", "--percent", "25", "--days", "2", session=session,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    session.assert_no_pending_responses()
    answer = json.loads(result.output.splitlines()[-1])
    starts = datetime.fromisoformat(answer["starts"])
    assert before <= starts <= datetime.now(timezone.utc)
    assert datetime.fromisoformat(answer["ends"]) - starts == timedelta(days=2)
    assert (answer["shadow_variant"], answer["percent"], answer["status"]) == (
        "next",
        25,
        "Creating",
    )
    assert uploaded_keys(aws, endpoint) == [
        f"critic/{endpoint}/next/{starts:%Y%m%d-%H%M%S}/model.tar.gz"
    ]
    assert f"critic sagemaker shadow {endpoint} --stop" in result.output
