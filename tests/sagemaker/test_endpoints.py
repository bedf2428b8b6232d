"""critic.sagemaker.endpoints against moto's server on loopback: deploy, shift weights and
delete endpoints; every bad input and AWS failure as a one-line CriticError that makes nothing."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from critic.errors import CriticError
from critic.sagemaker import VariantSpec, delete_endpoint, deploy, update_weights
from support.aws import (
    BUCKET,
    CPU_INFERENCE_IMAGE,
    GPU_INFERENCE_IMAGE,
    MODEL_ENVIRONMENT,
    ROLE,
    assert_one_line,
    model_names,
    quiet,
    recording_session,
    write_model_archive,
)


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
    assert 'critic sagemaker invoke critic-ab "a review"' in text
    assert (
        "aws sagemaker-runtime invoke-endpoint --region us-east-1 --endpoint-name critic-ab" in text
    )
    assert 'invoke_endpoint(EndpointName="critic-ab"' in text
    assert "critic sagemaker delete-endpoint critic-ab" in text


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


BAD_DEPLOYS = [
    ("a missing file", lambda a: {"variants": [("a", a.missing, 1)]}, "does not exist"),
    (
        "a zero weight",
        lambda a: {"variants": [("a", a.champion, 0)]},
        "the weight of variant 'a' must be positive, got 0",
    ),
    (
        "a spec out of the draw",  # fine for critic serve; an endpoint starts with traffic
        lambda a: {"variants": [VariantSpec("a", a.champion, 0)]},
        "the weight of variant 'a' must be positive, got 0.0",
    ),
    (
        "a negative weight",
        lambda a: {"variants": [("a", a.champion, -1)]},
        "the weight of variant 'a' must be positive, got -1",
    ),
    (
        "a weight that is not a number",
        lambda a: {"variants": [("a", a.champion, math.nan)]},
        "the weight of variant 'a' must be a number, got nan",
    ),
    (
        "two variants of one name",
        lambda a: {"variants": [("a", a.champion, 1), ("a", a.challenger, 1)]},
        "variant names must differ; repeated: a",
    ),
    (
        "two specs of one name",
        lambda a: {"variants": [VariantSpec("a", a.champion), VariantSpec("a", a.challenger)]},
        "variant names must differ; repeated: a",
    ),
    (
        "eleven variants",
        lambda a: {"variants": [(f"v{i}", a.champion, 1) for i in range(11)]},
        "an endpoint holds at most 10 variants, got 11",
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
    (
        "a bad variant name",
        lambda a: {"variants": [("a b", a.champion, 1)]},
        "variant name 'a b' is not valid for SageMaker: use 1-63 letters, digits and hyphens",
    ),
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
    with pytest.raises(CriticError) as error:
        deploy(**arguments)
    assert message in assert_one_line(error)
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
    assert "critic sagemaker delete-endpoint critic-fails" in message


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


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("../../root/.ssh/authorized_keys", "file", "climbs out of its folder"),
        ("/opt/ml/model/code/inference.py", "file", "has an absolute name"),
        ("code/evil.py", "link", "is a link (to '/etc/passwd')"),
    ],
)
def test_a_model_archive_that_would_unpack_outside_its_folder_is_refused(
    aws, tmp_path, name, kind, reason
):
    import io
    import tarfile

    archive = write_model_archive(tmp_path / "model.tar.gz", "crafted")
    crafted = tmp_path / "crafted.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(crafted, "w:gz") as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member))
        info = tarfile.TarInfo(name)
        if kind == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            target.addfile(info)
        else:
            info.size = 4
            target.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(CriticError) as error:
        deploy([("a", crafted, 1)], "critic-crafted", ROLE, BUCKET, log=quiet)
    message = assert_one_line(error)
    assert "is refused" in message and reason in message
    assert model_names(aws, "critic-crafted") == []
