"""critic.sagemaker.training against moto's server on loopback: submit training jobs, and the
uploaded entry script as the training toolkit runs it."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from critic.errors import CriticError
from critic.sagemaker import submit_training_job
from critic.sagemaker.training import MASTER_PORT, build_source_archive, torchrun_command
from support.aws import BUCKET, CPU_TRAINING_IMAGE, ROLE, quiet


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
    assert {
        "train_entry.py",
        "requirements.txt",
        "critic/__init__.py",
        "critic/cli/__init__.py",
    } <= set(names)
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
        ({"instance_count": 0}, "instance_count must be"),
        (
            {"instance_count": 2, "hyperparameters": {"model": "nbsvm"}},
            "nbsvm is fitted in one go by scikit-learn, on one machine",
        ),
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


def test_a_job_on_several_instances_asks_for_them_and_its_entry_script_can_start_torchrun(aws):
    job = submit_training_job(
        "critic-train-two", ROLE, BUCKET, {"epochs": 2}, instance_count=2, log=quiet
    )
    described = aws.sagemaker.describe_training_job(TrainingJobName=job.name)
    assert described["ResourceConfig"]["InstanceCount"] == 2
    assert described["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert "instance_count" not in described["HyperParameters"]
    archive = aws.s3.get_object(
        Bucket=BUCKET, Key="critic/jobs/critic-train-two/source/sourcedir.tar.gz"
    )["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        entry = tar.extractfile("train_entry.py").read().decode()
    assert "torchrun_command(os.environ)" in entry and "os.execv" in entry


def test_one_cpu_instance_trains_in_one_process():
    assert torchrun_command({"SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1"}) is None
    assert torchrun_command({}) is None  # not in a job at all


def test_each_host_of_a_job_starts_torchrun_with_its_rank_and_the_first_host_as_master():
    environ = {
        "SM_HOSTS": '["algo-2", "algo-1", "algo-3"]',  # in no particular order
        "SM_CURRENT_HOST": "algo-3",
        "SM_NUM_GPUS": "0",
        "SM_NUM_CPUS": "4",
    }
    command = torchrun_command(environ, python="python3")
    assert command[:3] == ["python3", "-m", "torch.distributed.run"]
    options = dict(zip(command[3:13:2], command[4:14:2], strict=True))
    assert options == {
        "--nnodes": "3",
        "--node_rank": "2",
        "--nproc_per_node": "1",
        "--master_addr": "algo-1",
        "--master_port": str(MASTER_PORT),
    }
    assert command[13:] == ["-m", "critic.cli", "train", "--no-progress"]


def test_gpus_get_a_process_each_and_the_sdks_master_address_wins():
    environ = {
        "SM_HOSTS": '["algo-1"]',
        "SM_CURRENT_HOST": "algo-1",
        "SM_NUM_GPUS": "4",
        "SM_MASTER_ADDR": "10.0.0.7",
        "SM_MASTER_PORT": "29400",
    }
    command = torchrun_command(environ)
    assert command[command.index("--nproc_per_node") + 1] == "4"
    assert command[command.index("--master_addr") + 1] == "10.0.0.7"
    assert command[command.index("--master_port") + 1] == "29400"


def test_a_current_host_outside_the_hosts_is_a_clear_error():
    with pytest.raises(CriticError, match="SM_CURRENT_HOST='algo-9' is not one of"):
        torchrun_command({"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-9"})
    with pytest.raises(CriticError, match="SM_HOSTS or SM_NUM_GPUS is malformed"):
        torchrun_command({"SM_HOSTS": "algo-1,algo-2"})


@pytest.mark.slow
def test_two_hosts_of_a_job_train_together_and_only_the_first_writes_the_bundle(
    tmp_path, cache_dir
):
    from support.cli import Process
    from support.servers import free_port

    code = tmp_path / "code"
    archive = tmp_path / "sourcedir.tar.gz"
    build_source_archive(archive)
    with tarfile.open(archive, mode="r:gz") as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(code, **safe)
    # Two processes on this machine, each pretending to be one instance of a 2-instance CPU
    # job; the master address SageMaker's launcher sets points at loopback.
    hosts = ["algo-1", "algo-2"]
    base = {name: None for name in os.environ if name.startswith("SM_")}  # None: removed
    base.update(
        SM_HOSTS=json.dumps(hosts), SM_NUM_GPUS="0", SM_NUM_CPUS="1",
        SM_MASTER_ADDR="127.0.0.1", SM_MASTER_PORT=str(free_port()), CRITIC_CACHE=str(cache_dir),
        SM_HPS=json.dumps({
            "epochs": 1, "max_reviews": 300, "vocab_size": 2000, "max_length": 200,
            "batch_size": 32, "device": "cpu",
        }),
    )  # fmt: skip
    started = []
    for host in hosts:
        model_dir = tmp_path / host / "model"
        model_dir.mkdir(parents=True)
        environment = {**base, "SM_CURRENT_HOST": host, "SM_MODEL_DIR": str(model_dir)}
        # Their output goes to files: a pipe read only once the other host has finished could
        # fill, and stop the host writing to it half-way through an epoch both must finish.
        started.append(
            Process([sys.executable, "train_entry.py", "--epochs", "1"], env=environment, cwd=code)
        )
    try:
        codes = [process.wait(timeout=300) for process in started]
    finally:
        for process in started:
            process.stop()
    outputs = [process.stdout() + process.stderr() for process in started]
    assert codes == [0, 0], outputs
    assert "--nnodes 2 --node_rank 1 --nproc_per_node 1" in outputs[1]
    sums = [re.search(r"rank \d of 2: weights checksum (\w+)", out).group(1) for out in outputs]
    assert sums[0] == sums[1], outputs
    assert (tmp_path / "algo-1" / "model" / "bundle.json").is_file()
    assert list((tmp_path / "algo-2" / "model").iterdir()) == []  # nothing to clash in S3
