"""critic.sagemaker.model_registry and the register / approve / versions / deploy --model-package
commands, against moto's server on loopback: versions of a model in a model package group,
with the bundle's figures, approved before deploy serves them; every mistake one line."""

from __future__ import annotations

import json

import pytest

from critic.errors import CriticError
from critic.sagemaker import (
    ModelPackageVariant,
    approve_model,
    deploy,
    describe_model_version,
    list_model_versions,
    register_model,
)
from critic.sagemaker.model_registry import metadata_properties, model_quality_statistics
from support.aws import (
    BUCKET,
    CPU_INFERENCE_IMAGE,
    MODEL_ENVIRONMENT,
    ROLE,
    assert_one_line,
    model_names,
    quiet,
    write_archive,
)
from support.cli import run_cli

METRICS = {
    "model": "lstm",
    "test_accuracy": 0.8632,
    "test_loss": 0.3311,
    "test_ece_before": 0.0412,
    "test_ece_after": 0.0123,
    "val_accuracy": 0.871,
    "test_reviews": 2500,
    "epochs": 5,
    "history": [{"epoch": 1, "val_loss": 0.4}],  # not a figure: left out
    "stop_reason": "completed all epochs",
}
ACCOUNT = "123456789012"


def packaged_archive(path, metrics=METRICS):
    """A model.tar.gz shaped like critic package's: the bundle's files (metrics.json among
    them) at the top, code/inference.py beside them."""
    files = {"metrics.json": json.dumps(metrics), "code/inference.py": "# handler\n"}
    if metrics is None:
        del files["metrics.json"]
    return write_archive(path, files)


def package_arn(group: str, version: int, region: str = "us-east-1") -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:model-package/{group}/{version}"


@pytest.fixture(scope="module")
def registered(aws, tmp_path_factory):
    """Two versions of group critic-reviews: the first pending, the second approved."""
    folder = tmp_path_factory.mktemp("registry")
    first = packaged_archive(folder / "first.tar.gz")
    second = packaged_archive(folder / "second.tar.gz", {**METRICS, "test_accuracy": 0.9})
    lines: list[str] = []
    pending = register_model(first, "critic-reviews", BUCKET, log=lines.append)
    approved = register_model(
        second, "critic-reviews", BUCKET, approval="Approved", log=lines.append
    )
    return pending, approved, first, lines


def test_register_creates_the_group_and_a_pending_version_with_the_bundles_figures(aws, registered):
    pending, _, archive, lines = registered
    assert pending.arn == package_arn("critic-reviews", 1)
    assert (pending.group, pending.version, pending.approval) == (
        "critic-reviews",
        1,
        "PendingManualApproval",
    )
    assert "created model package group critic-reviews" in lines
    assert f"approve it with critic sagemaker approve {pending.arn}" in " ".join(lines)

    described = aws.sagemaker.describe_model_package(ModelPackageName=pending.arn)
    (container,) = described["InferenceSpecification"]["Containers"]
    # The container critic sagemaker deploy creates for a model.tar.gz.
    assert container["Image"] == CPU_INFERENCE_IMAGE
    assert container["Environment"] == MODEL_ENVIRONMENT
    bucket, key = container["ModelDataUrl"].removeprefix("s3://").split("/", 1)
    assert bucket == BUCKET and key.startswith("critic/model-packages/critic-reviews/")
    assert aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == archive.read_bytes()
    assert "text/plain" in described["InferenceSpecification"]["SupportedContentTypes"]

    properties = described["CustomerMetadataProperties"]
    assert properties["critic:model"] == "lstm"
    assert properties["test_accuracy"] == "0.8632" and properties["test_ece_after"] == "0.0123"
    assert properties["test_reviews"] == "2500" and "history" not in properties
    assert described["ModelPackageDescription"] == (
        "critic lstm, test accuracy 0.8632, test ECE 0.0123"
    )
    statistics = described["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["ContentDigest"].startswith("sha256:")
    key = statistics["S3Uri"].removeprefix(f"s3://{BUCKET}/")
    stored = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    accuracy = stored["binary_classification_metrics"]["accuracy"]
    assert accuracy["value"] == 0.8632
    assert accuracy["standard_deviation"] == pytest.approx((0.8632 * 0.1368 / 2500) ** 0.5)
    assert stored["dataset"] == {"item_count": 2500}


def test_a_second_register_adds_the_next_version_to_the_same_group(aws, registered):
    _, approved, _, lines = registered
    assert approved.arn == package_arn("critic-reviews", 2)
    assert approved.approval == "Approved" and approved.figures["test_accuracy"] == "0.9"
    assert lines.count("created model package group critic-reviews") == 1
    groups = aws.sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == ["critic-reviews"]


def test_versions_are_listed_oldest_first_with_their_approval_and_figures(registered):
    pending, approved, _, _ = registered
    listed = list_model_versions("critic-reviews")
    assert [(v.arn, v.version) for v in listed] == [(pending.arn, 1), (approved.arn, 2)]
    assert listed[1].to_dict()["figures"]["test_accuracy"] == "0.9"
    assert listed[1].to_dict()["approval"] == "Approved"


def test_deploy_serves_an_approved_version_from_its_package_and_uploads_nothing(aws, registered):
    _, approved, _, _ = registered
    deployment = deploy(
        [ModelPackageVariant("AllTraffic", approved.arn)], "critic-registry", ROLE, None, log=quiet
    )
    assert deployment.status == "InService"
    model = aws.sagemaker.describe_model(ModelName="critic-registry-AllTraffic")
    assert model["PrimaryContainer"] == {"ModelPackageName": approved.arn}
    assert model["ExecutionRoleArn"] == ROLE
    assert deployment.model_data == {"AllTraffic": approved.model_data}
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="critic/critic-registry/")
    assert listed["KeyCount"] == 0
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName="critic-registry")
    assert [v["ModelName"] for v in config["ProductionVariants"]] == ["critic-registry-AllTraffic"]


def test_a_version_and_an_archive_share_one_endpoint_by_weight(aws, registered, archives):
    _, approved, _, _ = registered
    deploy(
        [ModelPackageVariant("champion", approved.arn, 3), ("challenger", archives.challenger, 1)],
        "critic-mixed",
        ROLE,
        BUCKET,
        log=quiet,
    )
    champion = aws.sagemaker.describe_model(ModelName="critic-mixed-champion")
    challenger = aws.sagemaker.describe_model(ModelName="critic-mixed-challenger")
    assert champion["PrimaryContainer"] == {"ModelPackageName": approved.arn}
    assert challenger["PrimaryContainer"]["ModelDataUrl"] == (
        f"s3://{BUCKET}/critic/critic-mixed/challenger/model.tar.gz"
    )
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName="critic-mixed")
    assert {v["VariantName"]: v["InitialVariantWeight"] for v in config["ProductionVariants"]} == {
        "champion": 3.0,
        "challenger": 1.0,
    }


def test_deploy_refuses_a_version_that_is_not_approved_and_makes_nothing(aws, registered):
    pending, _, _, _ = registered
    with pytest.raises(CriticError) as error:
        deploy([ModelPackageVariant("AllTraffic", pending.arn)], "critic-pending", ROLE, None)
    message = assert_one_line(error)
    assert f"model package {pending.arn} is PendingManualApproval, not Approved" in message
    assert f"critic sagemaker approve {pending.arn}" in message
    assert model_names(aws, "critic-pending") == []
    assert aws.sagemaker.list_endpoints(NameContains="critic-pending")["Endpoints"] == []


def test_approve_and_reject_change_a_versions_approval(aws, tmp_path):
    archive = packaged_archive(tmp_path / "model.tar.gz")
    version = register_model(archive, "critic-approvals", BUCKET, log=quiet)
    lines: list[str] = []
    approved = approve_model(version.arn, note="looked at the figures", log=lines.append)
    assert approved.approval == "Approved"
    assert lines == [f"{version.arn}: PendingManualApproval -> Approved"]
    described = aws.sagemaker.describe_model_package(ModelPackageName=version.arn)
    assert described["ApprovalDescription"] == "looked at the figures"
    assert approve_model(version.arn, status="Rejected", log=quiet).approval == "Rejected"
    assert describe_model_version(version.arn).approval == "Rejected"
    with pytest.raises(CriticError, match="is Rejected, not Approved"):
        deploy([ModelPackageVariant("AllTraffic", version.arn)], "critic-rejected", ROLE, None)


def test_an_unknown_group_is_one_line(aws):
    with pytest.raises(CriticError) as error:
        list_model_versions("never-registered")
    message = assert_one_line(error)
    assert "there is no model package group never-registered in region us-east-1" in message


def test_an_unknown_version_is_one_line(aws):
    missing = package_arn("critic-reviews", 99)
    for call in (
        lambda: describe_model_version(missing),
        lambda: approve_model(missing, log=quiet),
        lambda: deploy([ModelPackageVariant("AllTraffic", missing)], "critic-missing", ROLE, None),
    ):
        with pytest.raises(CriticError) as error:
            call()
        assert f"there is no model package {missing} in region us-east-1" in assert_one_line(error)
    assert model_names(aws, "critic-missing") == []


@pytest.mark.parametrize(
    "arn",
    [
        "critic-reviews/1",
        "arn:aws:sagemaker:us-east-1:123456789012:model/critic-reviews",
        "arn:aws:sagemaker:us-east-1:12345:model-package/critic-reviews/1",
        "arn:aws:sagemaker:us-east-1:123456789012:model-package/-bad-/1",
        "",
    ],
)
def test_a_bad_arn_is_refused_before_any_aws_call(arn):
    for call in (
        lambda: ModelPackageVariant("AllTraffic", arn),
        lambda: describe_model_version(arn),
        lambda: approve_model(arn),
    ):
        with pytest.raises(CriticError) as error:
            call()
        assert "is not a SageMaker model package ARN" in assert_one_line(error)


def test_a_version_of_another_region_is_refused_with_the_region_to_use(aws):
    other = package_arn("critic-reviews", 1, region="eu-west-1")
    with pytest.raises(CriticError) as error:
        describe_model_version(other)
    assert "is in region eu-west-1, not us-east-1" in assert_one_line(error)
    assert "--region eu-west-1" in str(error.value)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"group": "bad_name"}, "model package group name 'bad_name' is not valid"),
        ({"approval": "Rejected"}, "approval must be one of PendingManualApproval, Approved"),
        ({"bucket": "Not A Bucket"}, "is not a valid S3 bucket name"),
        ({"artifact": "missing"}, "does not exist"),
        ({"artifact": "without metrics"}, "holds no metrics.json"),
        ({"instance_type": "m5.large"}, "is not a SageMaker instance type"),
    ],
)
def test_bad_registrations_are_refused_in_one_line_and_make_nothing(
    aws, tmp_path, changes, expected
):
    arguments = {
        "artifact": packaged_archive(tmp_path / "model.tar.gz"),
        "group": "critic-refused",
        "bucket": BUCKET,
        **changes,
    }
    if arguments["artifact"] == "missing":
        arguments["artifact"] = tmp_path / "missing.tar.gz"
    elif arguments["artifact"] == "without metrics":
        arguments["artifact"] = packaged_archive(tmp_path / "bare.tar.gz", metrics=None)
    with pytest.raises(CriticError) as error:
        register_model(
            arguments.pop("artifact"), arguments.pop("group"), arguments.pop("bucket"), **arguments
        )
    assert expected in assert_one_line(error)
    groups = aws.sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert "critic-refused" not in [g["ModelPackageGroupName"] for g in groups]


def test_the_figures_are_text_sagemaker_accepts():
    properties = metadata_properties({"model": "my model (v2) ~ best!", "test_accuracy": 1})
    assert properties == {"critic:model": "my model _v2_ _ best_", "test_accuracy": "1"}
    assert metadata_properties({"test_loss": float("nan"), "epochs": None, "model": "x"}) == {
        "critic:model": "x"
    }
    statistics = model_quality_statistics({"test_accuracy": 0.5})
    assert statistics["binary_classification_metrics"] == {"accuracy": {"value": 0.5}}
    assert "dataset" not in statistics


# --- the commands, as a user runs them ---------------------------------------------------------


def critic(*args, check=False):
    return run_cli(*args, check=check, timeout=180)


def one_error_line(completed) -> str:
    assert completed.returncode == 1, completed.stdout + completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in completed.stderr, completed.stderr
    return lines[0]


def test_register_approve_versions_and_deploy_a_bundle_from_the_command_line(aws, nbsvm_bundle):
    group = "critic-cli-registry"
    registered = critic("sagemaker", "register", nbsvm_bundle, "--group", group, "--bucket", BUCKET)
    assert registered.returncode == 0, registered.stderr
    version = json.loads(registered.stdout.splitlines()[-1])
    arn = version["arn"]
    assert arn == package_arn(group, 1) and version["approval"] == "PendingManualApproval"
    saved = json.loads((nbsvm_bundle / "metrics.json").read_text())
    assert float(version["figures"]["test_accuracy"]) == pytest.approx(saved["test_accuracy"])
    assert version["figures"]["critic:model"] == "nbsvm"
    assert f"critic sagemaker approve {arn}" in registered.stdout

    refused = critic(
        "sagemaker",
        "deploy",
        "--model-package",
        arn,
        "--endpoint",
        "critic-cli-reg",
        "--role",
        ROLE,
    )
    assert "is PendingManualApproval, not Approved" in one_error_line(refused)

    approved = critic("sagemaker", "approve", arn, "--note", "checked")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout.splitlines()[-1])["approval"] == "Approved"
    listed = critic("sagemaker", "versions", group)
    assert [json.loads(line)["approval"] for line in listed.stdout.splitlines()] == ["Approved"]

    deployed = critic(
        "sagemaker",
        "deploy",
        "--model-package",
        arn,
        "--endpoint",
        "critic-cli-reg",
        "--role",
        ROLE,
    )
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(deployed.stdout.splitlines()[-1]) == {
        "endpoint": "critic-cli-reg",
        "status": "InService",
    }
    model = aws.sagemaker.describe_model(ModelName="critic-cli-reg-AllTraffic")
    assert model["PrimaryContainer"] == {"ModelPackageName": arn}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["versions", "never-registered"], "there is no model package group never-registered"),
        (["approve", "not-an-arn"], "'not-an-arn' is not a SageMaker model package ARN"),
        (
            ["deploy", "--model-package", "arn:aws:sagemaker:us-east-1:1:model-package/x/1",
             "--endpoint", "e", "--role", ROLE],
            "is not a SageMaker model package ARN",
        ),
        (
            ["approve", package_arn("critic-reviews", 99)],
            f"there is no model package {package_arn('critic-reviews', 99)}",
        ),
        (
            ["deploy", "model.tar.gz", "--model-package", package_arn("critic-reviews", 1),
             "--endpoint", "e", "--role", ROLE],
            "give it without an ARTIFACT or --variant",
        ),
        (
            ["register", "missing.tar.gz", "--group", "g", "--bucket", BUCKET,
             "--approval", "Maybe"],
            "approval must be one of PendingManualApproval, Approved, got 'Maybe'",
        ),
        (["deploy", "missing.tar.gz", "--endpoint", "e", "--role", ROLE], "does not exist"),
    ],
    ids=[
        "unknown group", "bad arn", "bad arn to deploy", "unknown version", "package and artifact",
        "bad approval", "artifact without bucket",
    ],
)  # fmt: skip
def test_the_registry_commands_say_a_mistake_in_one_line(aws, args, expected):
    assert expected in one_error_line(critic("sagemaker", *args))


def test_an_archive_deployed_without_a_bucket_is_told_to_give_one(aws, archives):
    completed = critic(
        "sagemaker", "deploy", archives.champion, "--endpoint", "critic-nobucket", "--role", ROLE
    )
    assert "give a bucket (--bucket): the model.tar.gz files are uploaded to it" in (
        one_error_line(completed)
    )
