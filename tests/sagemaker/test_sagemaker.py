"""critic.sagemaker against moto's real server on loopback: deploy, invoke, shift weights,
delete, and submit training jobs; every bad input and AWS failure as a one-line CriticError.

Nothing here can reach AWS: the module starts moto on 127.0.0.1, points AWS_ENDPOINT_URL at it,
gives fake credentials and hides the user's AWS configuration files.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from critic.errors import CriticError
from critic.sagemaker import (
    VariantSpec,
    delete_endpoint,
    deploy,
    framework_image_uri,
    invoke,
    submit_training_job,
    update_weights,
)
from critic.sagemaker.aws import aws_errors, is_not_found
from critic.sagemaker.runtime import encode_reviews, model_error_message

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/critic-sagemaker"
BUCKET = "critic-test-bucket"
REGISTRY = f"763104351884.dkr.ecr.{REGION}.amazonaws.com"
CPU_INFERENCE_IMAGE = f"{REGISTRY}/pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker"
GPU_INFERENCE_IMAGE = f"{REGISTRY}/pytorch-inference:2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker"
CPU_TRAINING_IMAGE = f"{REGISTRY}/pytorch-training:2.6.0-cpu-py312-ubuntu22.04-sagemaker"
MODEL_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_REGION": REGION,
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
}


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws(moto_url):
    """Plain boto3 clients on the moto server, to look at what critic made; the bucket exists."""
    clients = SimpleNamespace(
        s3=boto3.session.Session().client("s3"),
        sagemaker=boto3.session.Session().client("sagemaker"),
        url=moto_url,
    )
    clients.s3.create_bucket(Bucket=BUCKET)
    return clients


def write_model_archive(path: Path, marker: str, with_code: bool = True) -> Path:
    """A small model.tar.gz shaped like critic's: bundle files at the top, code/ beside them."""
    files = {"config.json": json.dumps({"marker": marker}), "model.safetensors": marker * 50}
    if with_code:
        files["code/inference.py"] = "from critic.serving.handler import model_fn\n"
        files["code/requirements.txt"] = "numpy\n"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archives")
    not_a_tarball = folder / "notes.tar.gz"
    not_a_tarball.write_text("not a tarball")
    return SimpleNamespace(
        champion=write_model_archive(folder / "champion.tar.gz", "champion"),
        challenger=write_model_archive(folder / "challenger.tar.gz", "challenger"),
        without_code=write_model_archive(folder / "bare.tar.gz", "bare", with_code=False),
        not_a_tarball=not_a_tarball,
        missing=folder / "missing.tar.gz",
    )


def recording_session(*events: str) -> tuple[boto3.session.Session, list]:
    """A boto3 session that keeps every HTTP request of the named operations, as sent."""
    session = boto3.session.Session()
    sent: list = []
    for event in events:
        session.events.register(f"before-send.{event}", lambda request, **_: sent.append(request))
    return session, sent


def quiet(_: str) -> None:
    pass


def queue_endpoint_answers(moto_url: str, *answers: dict) -> None:
    """What moto's sagemaker-runtime answers next, in order (its documented test API)."""
    request = urllib.request.Request(
        f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps({"region": REGION, "results": list(answers)}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201


def model_names(aws, prefix: str) -> list[str]:
    # moto ignores list_models' NameContains, so the names are filtered here.
    names = [model["ModelName"] for model in aws.sagemaker.list_models()["Models"]]
    return [name for name in names if name.startswith(prefix)]


def assert_one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message.strip() == message
    return message


# --- deploy ----------------------------------------------------------------------------------


def test_deploy_uploads_each_archive_and_makes_models_a_config_and_an_in_service_endpoint(
    aws, archives
):
    lines: list[str] = []
    deployment = deploy(
        [("champion", archives.champion, 3), ("challenger", archives.challenger, 1)],
        "critic-ab",
        ROLE,
        BUCKET,
        log=lines.append,
    )

    for variant, archive in (("champion", archives.champion), ("challenger", archives.challenger)):
        key = f"critic/critic-ab/{variant}/model.tar.gz"
        uploaded = aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert uploaded == archive.read_bytes()
        model = aws.sagemaker.describe_model(ModelName=f"critic-ab-{variant}")
        assert model["ExecutionRoleArn"] == ROLE
        container = model["PrimaryContainer"]
        assert container["Image"] == CPU_INFERENCE_IMAGE
        assert container["ModelDataUrl"] == f"s3://{BUCKET}/{key}"
        assert container["Environment"] == MODEL_ENVIRONMENT

    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName="critic-ab")
    fields = ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType")
    assert [
        {**{k: v[k] for k in fields}, "InitialVariantWeight": v["InitialVariantWeight"]}
        for v in config["ProductionVariants"]
    ] == [
        {
            "VariantName": "champion",
            "ModelName": "critic-ab-champion",
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": 3.0,
        },
        {
            "VariantName": "challenger",
            "ModelName": "critic-ab-challenger",
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": 1.0,
        },
    ]
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="critic-ab")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "critic-ab"
    tags = aws.sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    assert {"Key": "critic:endpoint", "Value": "critic-ab"} in tags

    assert deployment.status == "InService"
    assert deployment.endpoint_arn == endpoint["EndpointArn"]
    assert deployment.image_uri == CPU_INFERENCE_IMAGE
    assert deployment.models == {
        "champion": "critic-ab-champion",
        "challenger": "critic-ab-challenger",
    }
    assert deployment.weights == {"champion": 3.0, "challenger": 1.0}
    assert deployment.model_data["challenger"] == (
        f"s3://{BUCKET}/critic/critic-ab/challenger/model.tar.gz"
    )
    text = "\n".join(lines)
    assert "champion 75%, challenger 25%" in text
    assert 'critic invoke critic-ab "a review"' in text
    assert (
        "aws sagemaker-runtime invoke-endpoint --region us-east-1 --endpoint-name critic-ab" in text
    )
    assert 'invoke_endpoint(EndpointName="critic-ab"' in text
    assert "critic delete-endpoint critic-ab" in text


def test_deploy_on_a_gpu_instance_uses_the_gpu_image_unless_an_image_is_named(aws, archives):
    lines: list[str] = []
    deployment = deploy(
        [VariantSpec("only", archives.champion)],  # the weight defaults to 1
        "critic-gpu",
        ROLE,
        BUCKET,
        instance_type="ml.g4dn.xlarge",
        instance_count=2,
        wait=False,
        log=lines.append,
    )
    assert deployment.status == "Creating"
    assert any("not waiting" in line for line in lines)
    model = aws.sagemaker.describe_model(ModelName="critic-gpu-only")
    assert model["PrimaryContainer"]["Image"] == GPU_INFERENCE_IMAGE
    variant = aws.sagemaker.describe_endpoint_config(EndpointConfigName="critic-gpu")[
        "ProductionVariants"
    ][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.g4dn.xlarge", 2)

    custom = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-critic:1.0"
    deploy(
        [("only", archives.champion, 1)],
        "critic-custom",
        ROLE,
        BUCKET,
        instance_type="ml.g4dn.xlarge",
        image_uri=custom,
        log=quiet,
    )
    model = aws.sagemaker.describe_model(ModelName="critic-custom-only")
    assert model["PrimaryContainer"]["Image"] == custom


@pytest.mark.parametrize(
    ("scope", "region", "instance_type", "expected"),
    [
        ("inference", "us-east-1", "ml.m5.large", CPU_INFERENCE_IMAGE),
        ("inference", "us-east-1", "ml.p3.2xlarge", GPU_INFERENCE_IMAGE),
        ("training", "us-east-1", "ml.c5.2xlarge", CPU_TRAINING_IMAGE),
        (
            "training",
            "eu-west-1",
            "ml.g5.xlarge",
            "763104351884.dkr.ecr.eu-west-1.amazonaws.com/"
            "pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-sagemaker",
        ),
        (
            "inference",
            "eu-south-1",
            "ml.m5.large",
            "692866216735.dkr.ecr.eu-south-1.amazonaws.com/"
            "pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker",
        ),
        (
            "inference",
            "cn-north-1",
            "ml.m5.large",
            "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/"
            "pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker",
        ),
    ],
)
def test_the_framework_image_follows_the_region_and_the_instance_type(
    scope, region, instance_type, expected
):
    assert framework_image_uri(scope, region, instance_type) == expected


@pytest.mark.parametrize(
    ("region", "instance_type", "message"),
    [
        ("us-east-1", "ml.inf2.xlarge", "Neuron image"),
        ("us-east-1", "ml.trn1.2xlarge", "Neuron image"),
        ("us-east-1", "ml.c7g.large", "Graviton"),
        ("xx-nowhere-1", "ml.m5.large", "pass image_uri"),
    ],
)
def test_an_image_the_defaults_cannot_provide_is_a_clear_error(region, instance_type, message):
    with pytest.raises(CriticError, match=message):
        framework_image_uri("inference", region, instance_type)


BAD_DEPLOYS = [
    ("a missing file", lambda a: {"variants": [("a", a.missing, 1)]}, "does not exist"),
    ("a zero weight", lambda a: {"variants": [("a", a.champion, 0)]}, "must be positive"),
    ("a negative weight", lambda a: {"variants": [("a", a.champion, -1)]}, "must be positive"),
    (
        "a weight that is not a number",
        lambda a: {"variants": [("a", a.champion, math.nan)]},
        "must be a number",
    ),
    (
        "two variants of one name",
        lambda a: {"variants": [("a", a.champion, 1), ("a", a.challenger, 1)]},
        "repeated: a",
    ),
    ("no variants", lambda a: {"variants": []}, "at least one variant"),
    (
        "a variant that is not a triple",
        lambda a: {"variants": [("a", a.champion)]},
        "each variant is",
    ),
    (
        "a leading hyphen",
        lambda a: {"endpoint_name": "-critic"},
        "endpoint name '-critic' is not valid",
    ),
    (
        "an underscore",
        lambda a: {"endpoint_name": "critic_bad"},
        "endpoint name 'critic_bad' is not valid",
    ),
    ("64 characters", lambda a: {"endpoint_name": "e" * 64}, "is not valid for SageMaker"),
    ("a bad variant name", lambda a: {"variants": [("a b", a.champion, 1)]}, "variant name 'a b'"),
    (
        "a model name over 63 characters",
        lambda a: {"endpoint_name": "e" * 40, "variants": [("v" * 30, a.champion, 1)]},
        "would be named",
    ),
    (
        "a file that is no tarball",
        lambda a: {"variants": [("a", a.not_a_tarball, 1)]},
        "not a gzip-compressed tar",
    ),
    (
        "an archive without the handler",
        lambda a: {"variants": [("a", a.without_code, 1)]},
        "has no code/inference.py",
    ),
    ("no instances", lambda a: {"instance_count": 0}, "instance_count must be"),
    (
        "a bad instance type",
        lambda a: {"instance_type": "m5.large"},
        "not a SageMaker instance type",
    ),
    ("a role that is no ARN", lambda a: {"role_arn": "critic-role"}, "not an IAM role ARN"),
    ("a bad bucket name", lambda a: {"bucket": "Critic_Bucket"}, "not a valid S3 bucket name"),
    (
        "a bucket with a key",
        lambda a: {"bucket": "s3://bucket/models"},
        "give the bucket name alone",
    ),
    ("a bad region", lambda a: {"region": "us-east1"}, "not an AWS region name"),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [pytest.param(change, message, id=name) for name, change, message in BAD_DEPLOYS],
)
def test_bad_deploy_input_is_a_clear_error_and_nothing_is_made(aws, archives, change, message):
    arguments = {
        "variants": [("a", archives.champion, 1)],
        "endpoint_name": "critic-bad",
        "role_arn": ROLE,
        "bucket": BUCKET,
        "log": quiet,
        **change(archives),
    }
    with pytest.raises(CriticError, match=message) as error:
        deploy(**arguments)
    assert_one_line(error)
    assert model_names(aws, "critic-bad") == []
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="critic/critic-bad/")


def test_deploying_to_a_bucket_that_does_not_exist_is_one_line_and_makes_nothing(aws, archives):
    with pytest.raises(CriticError) as error:
        deploy([("a", archives.champion, 1)], "critic-nobucket", ROLE, "no-such-bucket", log=quiet)
    message = assert_one_line(error)
    assert "S3 bucket no-such-bucket does not exist" in message
    assert "aws s3 mb s3://no-such-bucket --region us-east-1" in message
    assert model_names(aws, "critic-nobucket") == []


def test_a_bucket_in_another_region_is_refused_before_anything_is_uploaded(aws, archives):
    aws.s3.create_bucket(
        Bucket="critic-eu-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    with pytest.raises(CriticError, match="is in eu-west-1, but SageMaker runs in us-east-1"):
        deploy([("a", archives.champion, 1)], "critic-eu", ROLE, "critic-eu-bucket", log=quiet)
    assert "Contents" not in aws.s3.list_objects_v2(Bucket="critic-eu-bucket")


def test_deploying_over_an_existing_endpoint_is_refused(aws, archives):
    deploy([("a", archives.champion, 1)], "critic-twice", ROLE, BUCKET, log=quiet)
    with pytest.raises(CriticError, match="endpoint critic-twice already exists in us-east-1"):
        deploy([("b", archives.challenger, 1)], "critic-twice", ROLE, BUCKET, log=quiet)
    assert model_names(aws, "critic-twice-b") == []


def test_an_aws_error_half_way_is_one_line_and_the_models_made_are_removed(aws, archives):
    # Make the CreateEndpointConfig request name a model that does not exist, so that moto
    # itself refuses it with a real ValidationException.
    session = boto3.session.Session()

    def break_the_config(params, **_):
        params["ProductionVariants"][0]["ModelName"] = "no-such-model"

    session.events.register(
        "before-parameter-build.sagemaker.CreateEndpointConfig", break_the_config
    )
    lines: list[str] = []
    with pytest.raises(CriticError) as error:
        deploy(
            [("a", archives.champion, 1), ("b", archives.challenger, 1)],
            "critic-rollback",
            ROLE,
            BUCKET,
            log=lines.append,
            session=session,
        )
    message = assert_one_line(error)
    assert message.startswith(
        "creating endpoint config critic-rollback failed: ValidationException:"
    )
    assert "Could not find model" in message and "no-such-model" in message
    assert model_names(aws, "critic-rollback") == []
    assert any("removed what it had created" in line for line in lines)


def session_reporting_the_new_endpoint_as(status: str, reason: str | None = None):
    """A session on which DescribeEndpoint, once the endpoint is created, answers ``status``:
    moto's endpoints are InService at once, and SageMaker's slow or failed starts are what
    deploy's waiting must explain."""
    session = boto3.session.Session()
    created: list[bool] = []
    session.events.register("after-call.sagemaker.CreateEndpoint", lambda **_: created.append(True))

    def describe(**_):
        if not created:
            return None  # the real call: does the endpoint exist yet?
        answer = {"EndpointStatus": status}
        if reason:
            answer["FailureReason"] = reason
        return SimpleNamespace(status_code=200, headers={}), answer

    session.events.register("before-call.sagemaker.DescribeEndpoint", describe)
    return session


def test_an_endpoint_that_fails_to_start_is_a_clear_error_with_sagemakers_reason(aws, archives):
    session = session_reporting_the_new_endpoint_as(
        "Failed", "The primary container for production variant a did not pass the ping check."
    )
    with pytest.raises(CriticError) as error:
        deploy(
            [("a", archives.champion, 1)], "critic-fails", ROLE, BUCKET, log=quiet, session=session
        )
    message = assert_one_line(error)
    assert message.startswith(
        "endpoint critic-fails failed: The primary container for production variant a did not "
        "pass the ping check."
    )
    assert "/aws/sagemaker/Endpoints/critic-fails" in message
    assert "critic delete-endpoint critic-fails" in message


def test_waiting_for_an_endpoint_is_bounded(aws, archives):
    session = session_reporting_the_new_endpoint_as("Creating")
    with pytest.raises(CriticError) as error:
        deploy(
            [("a", archives.champion, 1)],
            "critic-slow",
            ROLE,
            BUCKET,
            log=quiet,
            session=session,
            wait_timeout_s=1,  # one look, no sleeping
        )
    message = assert_one_line(error)
    assert message.startswith("endpoint critic-slow is still Creating after 1 s")
    assert "billed while it runs" in message


# --- update_weights and delete_endpoint --------------------------------------------------------------


def test_update_weights_shifts_traffic_and_sends_only_the_named_variants(aws, archives):
    deploy(
        [("champion", archives.champion, 1), ("challenger", archives.challenger, 1)],
        "critic-weights",
        ROLE,
        BUCKET,
        log=quiet,
    )
    session, sent = recording_session("sagemaker.UpdateEndpointWeightsAndCapacities")
    lines: list[str] = []
    weights = update_weights(
        "critic-weights", {"challenger": 0.25}, log=lines.append, session=session
    )
    assert json.loads(sent[0].body) == {
        "EndpointName": "critic-weights",
        "DesiredWeightsAndCapacities": [{"VariantName": "challenger", "DesiredWeight": 0.25}],
    }
    assert weights == {"champion": 1.0, "challenger": 0.25}
    assert lines == ["endpoint critic-weights: champion 80%, challenger 20%"]
    # moto sets DesiredWeight and CurrentWeight at once; AWS moves CurrentWeight over minutes.
    variants = {
        v["VariantName"]: v
        for v in aws.sagemaker.describe_endpoint(EndpointName="critic-weights")[
            "ProductionVariants"
        ]
    }
    assert (variants["challenger"]["DesiredWeight"], variants["challenger"]["CurrentWeight"]) == (
        0.25,
        0.25,
    )
    assert variants["champion"]["CurrentWeight"] == 1.0

    update_weights("critic-weights", {"champion": 0, "challenger": 1}, log=quiet)
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="critic-weights")
    assert {v["VariantName"]: v["CurrentWeight"] for v in endpoint["ProductionVariants"]} == {
        "champion": 0.0,
        "challenger": 1.0,
    }


def test_update_weights_names_the_endpoints_variants_when_one_is_unknown(aws, archives):
    deploy(
        [("champion", archives.champion, 1), ("challenger", archives.challenger, 1)],
        "critic-unknown",
        ROLE,
        BUCKET,
        log=quiet,
    )
    with pytest.raises(CriticError) as error:
        update_weights("critic-unknown", {"champion": 1, "chalenger": 2}, log=quiet)
    assert assert_one_line(error) == (
        "endpoint critic-unknown has no variant chalenger; its variants: challenger, champion"
    )
    with pytest.raises(CriticError, match="no variant to send traffic to"):
        update_weights("critic-unknown", {"champion": 0, "challenger": 0}, log=quiet)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, "at least one variant"),
        ({"a": -1}, "must be zero or more"),
        ({"a": "half"}, "must be a number"),
        ({"a b": 1}, "variant name 'a b'"),
    ],
)
def test_bad_weights_are_a_clear_error(aws, weights, message):
    with pytest.raises(CriticError, match=message):
        update_weights("critic-weights", weights, log=quiet)


def test_update_weights_of_an_endpoint_that_does_not_exist_is_a_clear_error(aws):
    with pytest.raises(
        CriticError, match="there is no endpoint named critic-none in region us-east-1"
    ):
        update_weights("critic-none", {"a": 1}, log=quiet)


def test_delete_endpoint_removes_the_endpoint_its_config_and_its_models(aws, archives):
    deploy(
        [("champion", archives.champion, 1), ("challenger", archives.challenger, 1)],
        "critic-delete",
        ROLE,
        BUCKET,
        log=quiet,
    )
    lines: list[str] = []
    deleted = delete_endpoint("critic-delete", log=lines.append)

    assert deleted.endpoint_name == "critic-delete"
    assert deleted.endpoint_config_name == "critic-delete"
    assert deleted.models == ["critic-delete-champion", "critic-delete-challenger"]
    for describe, params in (
        (aws.sagemaker.describe_endpoint, {"EndpointName": "critic-delete"}),
        (aws.sagemaker.describe_endpoint_config, {"EndpointConfigName": "critic-delete"}),
        (aws.sagemaker.describe_model, {"ModelName": "critic-delete-champion"}),
        (aws.sagemaker.describe_model, {"ModelName": "critic-delete-challenger"}),
    ):
        with pytest.raises(ClientError, match="Could not find"):
            describe(**params)
    assert lines == [
        "deleted endpoint critic-delete",
        "deleted endpoint config critic-delete",
        "deleted model critic-delete-champion",
        "deleted model critic-delete-challenger",
    ]
    # The model data stays in S3, ready for the next deploy.
    keys = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="critic/critic-delete/")["Contents"]
    assert len(keys) == 2


def test_deleting_an_endpoint_that_does_not_exist_is_a_clear_error(aws):
    with pytest.raises(CriticError) as error:
        delete_endpoint("critic-never", log=quiet)
    assert assert_one_line(error) == "there is no endpoint named critic-never in region us-east-1"


# --- invoke ----------------------------------------------------------------------------------


def test_invoke_sends_a_list_as_json_instances_and_returns_the_answer_and_its_variant(
    aws, moto_url
):
    predictions = {"predictions": [{"label": "positive"}, {"label": "negative"}]}
    queue_endpoint_answers(
        moto_url,
        {
            "Body": json.dumps(predictions),
            "ContentType": "application/json",
            "InvokedProductionVariant": "challenger",
        },
    )
    session, sent = recording_session("sagemaker-runtime.InvokeEndpoint")
    result = invoke("critic-ab", ["A wonderful film.", "Très ennuyeux."], session=session)

    assert result.answer == predictions
    assert result.variant == "challenger"
    assert result.content_type == "application/json"
    (request,) = sent
    assert request.url.endswith("/endpoints/critic-ab/invocations")
    assert request.headers["Content-Type"] == b"application/json"
    assert request.headers["Accept"] == b"application/json"
    assert "X-Amzn-SageMaker-Target-Variant" not in request.headers
    assert json.loads(request.body) == {"instances": ["A wonderful film.", "Très ennuyeux."]}


def test_invoke_sends_one_review_as_text_to_the_target_variant_with_custom_attributes(
    aws, moto_url
):
    queue_endpoint_answers(
        moto_url,
        {
            "Body": "1",
            "ContentType": "text/plain",
            "InvokedProductionVariant": "champion",
            "CustomAttributes": "trace=42",
        },
    )
    session, sent = recording_session("sagemaker-runtime.InvokeEndpoint")
    result = invoke(
        "critic-ab",
        "Loved it — every minute.",
        target_variant="champion",
        accept="text/plain",
        custom_attributes="trace=42",
        session=session,
    )

    assert (result.answer, result.variant, result.custom_attributes) == (
        "1",
        "champion",
        "trace=42",
    )
    (request,) = sent
    assert request.headers["Content-Type"] == b"text/plain"
    assert request.headers["Accept"] == b"text/plain"
    assert request.headers["X-Amzn-SageMaker-Target-Variant"] == b"champion"
    assert request.headers["X-Amzn-SageMaker-Custom-Attributes"] == b"trace=42"
    assert request.body == "Loved it — every minute.".encode()


def test_an_error_answered_by_the_model_is_one_line_with_its_status_and_message(aws):
    # moto's runtime always answers 200, so the ModelError AWS sends when the container answers
    # an error is given to botocore directly, before any request goes out.
    error_response = {
        "Error": {"Code": "ModelError", "Message": "Received client error (400) from primary"},
        "OriginalStatusCode": 400,
        "OriginalMessage": json.dumps(
            {"status": 400, "message": "instance 0: the review is\nempty"}
        ),
        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/critic-ab",
        "ResponseMetadata": {"HTTPStatusCode": 424},
    }
    session = boto3.session.Session()
    session.events.register(
        "before-call.sagemaker-runtime.InvokeEndpoint",
        lambda **_: (SimpleNamespace(status_code=424, headers={}), error_response),
    )
    with pytest.raises(CriticError) as error:
        invoke("critic-ab", ["fine"], session=session)
    assert assert_one_line(error) == (
        "the model behind endpoint critic-ab answered 400: instance 0: the review is empty "
        "(container logs: arn:aws:logs:us-east-1:123456789012:log-group:"
        "/aws/sagemaker/Endpoints/critic-ab)"
    )
    without_logs = ClientError(
        {"Error": {"Code": "ModelError", "Message": "boom"}}, "InvokeEndpoint"
    )
    assert (
        model_error_message("e", without_logs)
        == "the model behind endpoint e answered an error: boom"
    )


@pytest.mark.parametrize(
    ("reviews", "content_type", "body"),
    [
        ('He said "fine", then left.', None, b'He said "fine", then left.'),
        (["good", "bad"], None, b'{"instances": ["good", "bad"]}'),
        ("good", "application/json", b'{"instances": ["good"]}'),
        (["a, b", 'say "hi"'], "text/csv", b'"a, b"\n"say ""hi"""\n'),
        (["good", "bad"], "application/jsonlines", b'"good"\n"bad"\n'),
    ],
)
def test_reviews_are_encoded_as_the_hosting_contract_reads_them(reviews, content_type, body):
    encoded, _ = encode_reviews(reviews, content_type)
    assert encoded == body


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"reviews": []}, "no reviews"),
        ({"reviews": ["fine", "  "]}, "review 2 is empty"),
        ({"reviews": ["a", "b"], "content_type": "text/plain"}, "text/plain carries one review"),
        ({"reviews": "a", "content_type": "application/xml"}, "cannot send reviews as"),
        ({"reviews": ["x" * (7 * 1024 * 1024)]}, "at most 6 MB"),
        ({"reviews": "a", "target_variant": "-x"}, "variant name '-x'"),
        ({"reviews": "a", "custom_attributes": "é"}, "printable ASCII"),
        ({"reviews": "a", "endpoint_name": "a_b"}, "endpoint name 'a_b'"),
    ],
)
def test_bad_invoke_input_is_a_clear_error(aws, arguments, message):
    with pytest.raises(CriticError, match=message):
        invoke(**{"endpoint_name": "critic-ab", **arguments})


# --- training jobs ----------------------------------------------------------------------------


def test_submit_training_job_uploads_critics_source_and_creates_the_job(aws, tmp_path):
    lines: list[str] = []
    job = submit_training_job(
        "critic-train-1",
        ROLE,
        BUCKET,
        {"epochs": 3, "model": "lstm", "max-reviews": 2000},
        data_s3_uri=f"s3://{BUCKET}/data/reviews.csv",
        log=lines.append,
    )

    source_key = "critic/jobs/critic-train-1/source/sourcedir.tar.gz"
    archive = aws.s3.get_object(Bucket=BUCKET, Key=source_key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = tar.getnames()
        entry = tar.extractfile("train_entry.py").read().decode()
        requirements = tar.extractfile("requirements.txt").read().decode().splitlines()
    assert {"train_entry.py", "requirements.txt", "critic/__init__.py", "critic/cli.py"} <= set(
        names
    )
    assert "critic/sagemaker/training.py" in names
    assert all(
        n.startswith("critic/") for n in names if n not in ("train_entry.py", "requirements.txt")
    )
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert 'main(["train", "--no-progress"])' in entry
    assert any(line.startswith("typer") for line in requirements)
    assert not any(line.startswith("torch") for line in requirements)

    described = aws.sagemaker.describe_training_job(TrainingJobName="critic-train-1")
    source_uri = f"s3://{BUCKET}/{source_key}"
    assert described["HyperParameters"] == {
        "epochs": "3",
        "model": '"lstm"',
        "max-reviews": "2000",
        "data": '"reviews.csv"',
        "sagemaker_program": '"train_entry.py"',
        "sagemaker_submit_directory": json.dumps(source_uri),
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": '"critic-train-1"',
        "sagemaker_region": '"us-east-1"',
    }
    assert described["AlgorithmSpecification"]["TrainingImage"] == CPU_TRAINING_IMAGE
    assert described["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert described["RoleArn"] == ROLE
    assert described["InputDataConfig"] == [
        {
            "ChannelName": "training",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{BUCKET}/data/reviews.csv",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "InputMode": "File",
        }
    ]
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/critic/jobs/"
    assert described["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 4 * 3600}

    assert job.status == "InProgress"
    assert job.source_uri == source_uri
    assert job.output_uri == f"s3://{BUCKET}/critic/jobs/critic-train-1/output/model.tar.gz"
    assert "data: reviews.csv from the training channel" in lines[0]
    assert any("aws logs tail /aws/sagemaker/TrainingJobs" in line for line in lines)


def test_the_uploaded_entry_script_runs_critic_train_with_the_jobs_settings(aws, tmp_path):
    if "critic-train-1" not in [
        j["TrainingJobName"] for j in aws.sagemaker.list_training_jobs()["TrainingJobSummaries"]
    ]:
        submit_training_job("critic-train-1", ROLE, BUCKET, {}, log=quiet)
    archive = aws.s3.get_object(
        Bucket=BUCKET, Key="critic/jobs/critic-train-1/source/sourcedir.tar.gz"
    )["Body"].read()
    code = tmp_path / "opt" / "ml" / "code"
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        # The "data" filter refuses unsafe members; Pythons before 3.10.12 lack it.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(code, **safe)
    # As the training toolkit runs it: flags on the command line, settings in the environment,
    # no SM_CHANNEL_TRAINING when the job has no data channel. An unknown hyper-parameter
    # shows that `critic train` read SM_HPS, without training anything.
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(("SM_", "AWS_"))
    }
    environment.update(SM_MODEL_DIR=str(tmp_path / "model"), SM_HPS=json.dumps({"epochz": 3}))
    finished = subprocess.run(
        [sys.executable, "train_entry.py", "--epochz", "3"],
        cwd=code,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 1, finished.stderr
    assert "unknown hyper-parameter(s) in SM_HPS: epochz" in finished.stderr
    # The script's folder comes first on sys.path, so the uploaded critic is the one imported.
    imported = subprocess.run(
        [sys.executable, "-c", "import critic; print(critic.__file__)"],
        cwd=code,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert Path(imported.stdout.strip()) == code / "critic" / "__init__.py"


def test_a_job_without_data_has_no_channel_and_waiting_reports_how_it_ended(aws):
    lines: list[str] = []
    job = submit_training_job(
        "critic-train-2",
        ROLE,
        BUCKET,
        {"epochs": 1},
        instance_type="ml.g4dn.xlarge",
        wait=True,
        log=lines.append,
        max_runtime_s=600,
    )
    described = aws.sagemaker.describe_training_job(TrainingJobName="critic-train-2")
    assert not described.get("InputDataConfig")
    assert "data" not in described["HyperParameters"]
    assert described["AlgorithmSpecification"]["TrainingImage"].endswith(
        "pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-sagemaker"
    )
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
    # moto completes a job at once.
    assert job.status == "Completed"
    assert lines[-1].startswith("training job critic-train-2 is Completed")


def test_a_training_job_name_that_exists_is_refused(aws):
    submit_training_job("critic-train-3", ROLE, BUCKET, {}, log=quiet)
    with pytest.raises(CriticError, match="training job critic-train-3 already exists"):
        submit_training_job("critic-train-3", ROLE, BUCKET, {}, log=quiet)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hyperparameters": {"sagemaker_program": "x.py"}}, "reserved for the training toolkit"),
        ({"hyperparameters": {"epochs": object()}}, "not JSON-serialisable"),
        ({"hyperparameters": {"data": "x" * 3000, "epochs": 1}}, "at most 2500"),
        ({"hyperparameters": {"data": "reviews.csv"}}, "no data_s3_uri was given"),
        ({"data_s3_uri": f"s3://{BUCKET}/data/aclImdb/"}, "looks like a folder"),
        ({"data_s3_uri": "https://example.com/reviews.csv"}, "is not an S3 URI"),
        ({"job_name": "critic_train"}, "training job name 'critic_train'"),
        ({"max_runtime_s": 0}, "max_runtime_s must be"),
        ({"instance_type": "ml.inf2.xlarge"}, "Neuron image"),
    ],
)
def test_bad_training_input_is_a_clear_error(aws, change, message):
    arguments = {
        "job_name": "critic-train-bad",
        "role_arn": ROLE,
        "bucket": BUCKET,
        "hyperparameters": {},
        "log": quiet,
        **change,
    }
    with pytest.raises(CriticError, match=message):
        submit_training_job(**arguments)
    assert "Contents" not in aws.s3.list_objects_v2(
        Bucket=BUCKET, Prefix="critic/jobs/critic-train-bad/"
    )


# --- sessions, credentials and errors ---------------------------------------------------------------


def test_an_aws_error_becomes_one_line_with_its_code_and_message(aws):
    with pytest.raises(CriticError) as error, aws_errors("looking up model ghost"):
        aws.sagemaker.describe_model(ModelName="ghost")
    assert assert_one_line(error) == (
        "looking up model ghost failed: ValidationException: Could not find model "
        "'arn:aws:sagemaker:us-east-1:123456789012:model/ghost'."
    )
    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded\nslow down"}}, "X"
    )
    with pytest.raises(CriticError) as error, aws_errors("invoking endpoint e"):
        raise throttled
    assert assert_one_line(error) == (
        "invoking endpoint e failed: ThrottlingException: Rate exceeded slow down "
        "(AWS is throttling these requests; try again in a moment)"
    )


@pytest.mark.parametrize(
    ("code", "message", "missing"),
    [
        ("ValidationException", 'Could not find endpoint "arn:aws:sagemaker:...".', True),
        # What AWS itself (unlike moto) says of a training job that does not exist.
        ("ValidationException", "Requested resource not found.", True),
        ("ResourceNotFound", "Resource not found.", True),
        ("ValidationException", "1 validation error detected: Value at 'endpointName'", False),
        ("AccessDeniedException", "not authorized to perform sagemaker:DescribeEndpoint", False),
    ],
)
def test_a_missing_resource_is_told_apart_from_other_errors(code, message, missing):
    error = ClientError({"Error": {"Code": code, "Message": message}}, "DescribeEndpoint")
    assert is_not_found(error) is missing


def test_missing_credentials_say_how_to_configure_them(aws, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CriticError) as error:
        delete_endpoint("critic-ab", log=quiet)
    message = assert_one_line(error)
    assert "no AWS credentials found" in message and "AWS_PROFILE" in message


def test_an_unreachable_aws_endpoint_is_a_clear_error(aws, monkeypatch):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(CriticError) as error:
        delete_endpoint("critic-ab", log=quiet)
    message = assert_one_line(error)
    assert f"cannot connect to http://127.0.0.1:{port}" in message
    assert "AWS_ENDPOINT_URL" in message


def test_a_missing_region_is_a_clear_error(aws, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(CriticError, match="no AWS region given"):
        delete_endpoint("critic-ab", log=quiet)
    # The argument wins over the environment; AWS_REGION counts as well.
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    with pytest.raises(CriticError, match="no endpoint named critic-ab in region eu-west-1"):
        delete_endpoint("critic-ab", log=quiet)
    with pytest.raises(CriticError, match="no endpoint named critic-ab in region us-west-2"):
        delete_endpoint("critic-ab", region="us-west-2", log=quiet)


def test_without_boto3_the_package_imports_and_a_call_says_how_to_install_it():
    script = (
        "import sys\n"
        "sys.modules['boto3'] = sys.modules['botocore'] = None  # as if not installed\n"
        "import critic.sagemaker as sagemaker\n"
        "from critic.errors import CriticError\n"
        "try:\n"
        "    sagemaker.delete_endpoint('critic-ab', region='us-east-1')\n"
        "except CriticError as error:\n"
        "    print(error)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 0, finished.stderr
    assert "pip install 'critic[aws]'" in finished.stdout
