"""The AWS commands of ``critic`` end to end: real processes, boto3 against moto's server."""

import json

import boto3
import pytest

from support.aws import ROLE
from support.cli import run_cli
from support.servers import running_server

BUCKET = "critic-cli-bucket"


def critic(*args, check=True, env=None, **options):
    """``critic ARGS``, which must succeed unless ``check`` is false (see run_cli)."""
    return run_cli(*args, check=check, env=env, timeout=180, **options)


@pytest.fixture(scope="module")
def sagemaker(moto_url):
    # A fresh session reads the environment moto_url set; boto3's default session may have
    # been made, and kept, by an earlier test without it.
    session = boto3.session.Session()
    session.client("s3").create_bucket(Bucket=BUCKET)
    return session.client("sagemaker")


def test_deploy_update_weights_and_delete_an_endpoint(
    sagemaker, trained_bundle, second_bundle, tmp_path
):
    archive = tmp_path / "challenger.tar.gz"
    critic("package", second_bundle, "--out", archive)
    deployed = critic(
        "sagemaker", "deploy", "--endpoint", "critic-cli", "--role", ROLE, "--bucket", BUCKET,
        "--variant", f"champion={trained_bundle}:0.9", "--variant", f"challenger={archive}:0.1",
    )  # fmt: skip
    assert json.loads(deployed.stdout.splitlines()[-1]) == {
        "endpoint": "critic-cli",
        "status": "InService",
    }
    assert "delete-endpoint critic-cli" in deployed.stdout  # how to stop the billing
    config = sagemaker.describe_endpoint_config(EndpointConfigName="critic-cli")
    assert {
        (v["VariantName"], v["InitialVariantWeight"]) for v in config["ProductionVariants"]
    } == {
        ("champion", 0.9),
        ("challenger", 0.1),
    }
    keys = {
        o["Key"]
        for o in boto3.session.Session().client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    }
    assert keys == {
        "critic/critic-cli/champion/model.tar.gz",
        "critic/critic-cli/challenger/model.tar.gz",
    }

    updated = critic("sagemaker", "update-weights", "critic-cli", "champion=0.5", "challenger=0.5")
    assert json.loads(updated.stdout.splitlines()[-1])["weights"] == {
        "champion": 0.5,
        "challenger": 0.5,
    }
    variants = sagemaker.describe_endpoint(EndpointName="critic-cli")["ProductionVariants"]
    assert {v["VariantName"]: v["DesiredWeight"] for v in variants} == {
        "champion": 0.5,
        "challenger": 0.5,
    }

    deleted = critic("sagemaker", "delete-endpoint", "critic-cli")
    assert json.loads(deleted.stdout.splitlines()[-1])["models"] == [
        "critic-cli-champion",
        "critic-cli-challenger",
    ]
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert not [
        m for m in sagemaker.list_models()["Models"] if m["ModelName"].startswith("critic-cli")
    ]


def test_aws_mistakes_are_one_line(sagemaker, trained_bundle):
    group = ["sagemaker"]
    missing = critic(*group, "delete-endpoint", "never-made", check=False)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "never-made" in missing.stderr
    bad_weight = critic(*group, "update-weights", "x", "champion", check=False)
    assert bad_weight.returncode == 1 and "expected VARIANT=WEIGHT" in bad_weight.stderr
    no_bucket = critic(
        *group,
        "deploy",
        trained_bundle,
        "--endpoint",
        "e1",
        "--role",
        ROLE,
        "--bucket",
        "no-such-bucket",
        check=False,
    )
    assert no_bucket.returncode == 1 and len(no_bucket.stderr.strip().splitlines()) == 1


def test_sagemaker_train_submits_a_training_job_with_the_options_given(sagemaker):
    command, job_name, spelled = ["sagemaker", "train"], "critic-job-1", "critic sagemaker train"
    submitted = critic(
        *command, "--role", ROLE, "--bucket", BUCKET, "--job-name", job_name,
        "--model", "lstm", "--epochs", "4", "--vocab-size", "8000", "--ngram-dim", "8",
        "--instance-count", "2",
    )  # fmt: skip
    assert json.loads(submitted.stdout.splitlines()[-1])["training_job"] == job_name
    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    assert job["ResourceConfig"]["InstanceCount"] == 2
    hyperparameters = {k: json.loads(v) for k, v in job["HyperParameters"].items()}
    assert hyperparameters["epochs"] == 4 and hyperparameters["vocab_size"] == 8000
    assert hyperparameters["ngram_dim"] == 8  # every config field travels, none listed by hand
    assert "max_length" not in hyperparameters  # unchanged options keep critic's defaults
    assert "role" not in hyperparameters and "job_name" not in hyperparameters
    assert "instance_count" not in hyperparameters
    assert hyperparameters["sagemaker_program"] == "train_entry.py"
    needs_role = critic(*command, "--bucket", BUCKET, check=False)
    assert needs_role.returncode == 1 and f"{spelled} needs --role" in needs_role.stderr
    old_spelling = critic("train", "--sagemaker", "--role", ROLE, check=False)
    assert old_spelling.returncode == 2 and "No such option: --sagemaker" in old_spelling.stderr


def test_invoke_calls_a_local_endpoint_through_boto3(trained_bundle):
    with running_server(["serve", trained_bundle]) as server:
        env = {
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": server.url,
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
        }  # fmt: skip
        answer = json.loads(
            critic("sagemaker", "invoke", "critic", "A wonderful film!", "Dull.", env=env).stdout
        )
        assert answer["variant"] == "AllTraffic" and len(answer["predictions"]) == 2
        one = json.loads(
            critic("sagemaker", "invoke", "critic", "Just one review.", env=env).stdout
        )
        assert len(one["predictions"]) == 1
        from_stdin = critic(
            "sagemaker", "invoke", "critic", input="Loved it.\n\nHated it.\n", env=env, check=False
        )
        assert len(json.loads(from_stdin.stdout)["predictions"]) == 2  # the blank line skipped
        empty = critic("sagemaker", "invoke", "critic", "   ", env=env, check=False)
        assert empty.returncode == 1 and "empty" in empty.stderr and "Traceback" not in empty.stderr
