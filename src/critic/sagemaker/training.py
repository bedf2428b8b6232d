"""Run ``critic train`` as a SageMaker training job on the PyTorch training image.

The job brings critic with it, the way the SageMaker Python SDK ships a ``source_dir``: the
installed ``critic`` package, an entry script and a requirements.txt are packed into
``sourcedir.tar.gz``, uploaded, and named in the hyper-parameters ``sagemaker_program`` and
``sagemaker_submit_directory``; the container's training toolkit downloads it, pip-installs the
requirements and runs the script. Inside, the container sets ``SM_MODEL_DIR``,
``SM_CHANNEL_TRAINING`` and ``SM_HPS``, which ``critic train`` reads; SageMaker then uploads
what it wrote to ``SM_MODEL_DIR``:

    s3://BUCKET/critic/jobs/JOB/source/sourcedir.tar.gz   critic/, train_entry.py, requirements.txt
    s3://BUCKET/critic/jobs/JOB/output/model.tar.gz       the trained bundle

That model.tar.gz is the bundle alone; package it for serving before deploying it.

With ``instance_count`` N > 1 the job trains data-parallel on N instances: SageMaker runs the
entry script on every one, and there :func:`torchrun_command` turns it into ``torchrun
--nnodes N --node_rank I --master_addr FIRST-HOST -m critic.cli train`` (the same
:mod:`critic.training.distributed` path as ``torchrun`` on one machine), from ``SM_HOSTS``,
``SM_CURRENT_HOST`` and ``SM_NUM_GPUS``. Rank 0, on the first host, alone writes the bundle;
SageMaker gathers every host's ``SM_MODEL_DIR``, so the others leave theirs empty.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.config import ModelConfig, setting
from critic.errors import CriticError
from critic.fileio import package_files, write_atomic
from critic.sagemaker.aws import (
    aws_errors,
    check_bucket,
    connect,
    describe_or_none,
    upload_file,
    wait_until,
)
from critic.sagemaker.checks import (
    bucket_name,
    check_instance_type,
    check_name,
    check_positive_int,
    check_role_arn,
    parse_s3_uri,
)
from critic.sagemaker.images import check_image_uri, framework_image_uri

Log = Callable[[str], None]

ENTRY_SCRIPT_NAME = "train_entry.py"
ENTRY_SCRIPT = '''\
"""Entry point of a SageMaker training job: `critic train`, configured by the container.

SageMaker's training toolkit runs this file from the unpacked sourcedir.tar.gz, so the critic
package beside it is importable. It also passes the hyper-parameters as command-line flags;
`critic train` takes them from SM_HPS instead, so the command line is set here.
"""

import os

from critic.cli import main
from critic.sagemaker.training import torchrun_command

if __name__ == "__main__":
    # `critic train` recognises a training job by SM_MODEL_DIR, SM_HPS and SM_CHANNEL_TRAINING;
    # SageMaker sets the last only when a "training" channel exists, and the embedded data
    # needs none.
    os.environ.setdefault("SM_CHANNEL_TRAINING", "/opt/ml/input/data/training")
    command = torchrun_command(os.environ)
    if command is None:  # one instance, one process
        # A progress bar redrawn in CloudWatch becomes thousands of log lines.
        main(["train", "--no-progress"])
    else:  # several instances (or GPUs): torchrun takes this process's place
        print("sagemaker: " + " ".join(command), flush=True)
        os.execv(command[0], command)
'''
SOURCE_ARCHIVE_NAME = "sourcedir.tar.gz"
TRAINING_CHANNEL = "training"
# What `critic train --data` reads without a channel: the data sets inside the package.
BUILT_IN_DATA = ("embedded", "imdb", "rotten_tomatoes")
MAX_HYPERPARAMETERS = 100  # SageMaker's limits
MAX_HYPERPARAMETER_KEY = 256
MAX_HYPERPARAMETER_VALUE = 2500
WAIT_DELAY_S = 30
MASTER_PORT = 7777
INSTANCE_TYPE = "ml.m5.xlarge"
# What the container sets inside a training job; critic train reads them (job_settings).
JOB_VARIABLES = ("SM_MODEL_DIR", "SM_CHANNEL_TRAINING", "SM_HPS")
"""The port the master host listens on, as SageMaker's training toolkit uses for torchrun."""


@dataclass(frozen=True)
class TrainingJobOptions:
    """Where and how a SageMaker training job runs: never sent to it as hyper-parameters.
    Each field is an option of ``critic sagemaker train``."""

    role: str | None = setting(None, "The job's IAM execution role ARN.")
    bucket: str | None = setting(None, "S3 bucket for code and output.")
    instance_type: str = setting(INSTANCE_TYPE, "Training instance type.")
    instance_count: int = setting(
        1, "Instances to train on; more than one trains data-parallel (torchrun on each)."
    )
    job_name: str | None = setting(None, "Job name (default: critic-MODEL-TIME).")
    region: str | None = setting(None, "AWS region (default: from the environment).")
    wait: bool = setting(False, "Wait for the job to end.")


@dataclass(frozen=True)
class TrainingJob:
    """What :func:`submit_training_job` started."""

    name: str
    arn: str
    region: str
    status: str
    """``InProgress`` when not waiting; else ``Completed`` or ``Stopped``."""
    image_uri: str
    source_uri: str
    output_uri: str
    """Where SageMaker puts the trained bundle: ``.../JOB/output/model.tar.gz``."""
    hyperparameters: dict[str, str] = field(default_factory=dict)
    """As sent: every value JSON-encoded."""


def runtime_requirements() -> list[str]:
    """critic's declared dependencies for requirements.txt, without torch and the extras.

    torch is left out on purpose: the image's own build matches its CUDA, and pip would
    otherwise download gigabytes to replace it.
    """
    from importlib import metadata

    try:
        declared = metadata.requires("critic") or []
    except metadata.PackageNotFoundError:
        return []
    kept = []
    for requirement in declared:
        spec, _, marker = requirement.partition(";")
        if "extra" in marker:
            continue
        match = re.match(r"[A-Za-z0-9._-]+", spec.strip())
        if match is None or match.group(0).lower() == "torch":
            continue
        kept.append(requirement.strip())
    return kept


def build_source_archive(out: Path) -> list[str]:
    """Write sourcedir.tar.gz: the ``critic`` package (no caches), the entry script and a
    requirements.txt. Returns the archive's member names."""
    import critic

    package = Path(critic.__file__).resolve().parent
    texts = {
        ENTRY_SCRIPT_NAME: ENTRY_SCRIPT,
        "requirements.txt": "".join(f"{line}\n" for line in runtime_requirements()),
    }
    members: list[str] = []

    def write(temporary: Path) -> None:
        members.clear()
        with tarfile.open(temporary, "w:gz", dereference=True) as archive:
            for relative in package_files(package):
                name = f"critic/{relative.as_posix()}"
                archive.add(package / relative, arcname=name, recursive=False)
                members.append(name)
            for name, text in texts.items():
                data = text.encode("utf-8")
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
                members.append(name)

    write_atomic(Path(out), write)
    return members


def encode_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """Each value JSON-encoded, as the SageMaker Python SDK sends them; the training toolkit
    decodes them again into SM_HPS, so ``3`` arrives as a number and ``"lstm"`` as a string."""
    if not isinstance(hyperparameters, Mapping):
        raise CriticError(
            f"hyper-parameters must be a mapping of names to values, not {type(hyperparameters).__name__}"
        )
    encoded = {}
    for key, value in hyperparameters.items():
        if not isinstance(key, str) or not key or len(key) > MAX_HYPERPARAMETER_KEY:
            raise CriticError(f"hyper-parameter name {key!r} must be a string of 1-256 characters")
        if key.startswith("sagemaker_"):
            raise CriticError(
                f"hyper-parameter {key}: names starting with sagemaker_ are reserved for the "
                "training toolkit"
            )
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as error:
            raise CriticError(f"hyper-parameter {key} is not JSON-serialisable ({error})") from None
        if len(text) > MAX_HYPERPARAMETER_VALUE:
            raise CriticError(
                f"hyper-parameter {key} is {len(text)} characters once encoded; SageMaker takes "
                f"at most {MAX_HYPERPARAMETER_VALUE}"
            )
        encoded[key] = text
    return encoded


def submit_training_job(
    job_name: str,
    role_arn: str,
    bucket: str,
    hyperparameters: Mapping[str, Any],
    instance_type: str = INSTANCE_TYPE,
    data_s3_uri: str | None = None,
    image_uri: str | None = None,
    region: str | None = None,
    wait: bool = False,
    log: Log = print,
    *,
    max_runtime_s: int = 4 * 3600,
    volume_size_gb: int = 30,
    session: Any = None,
    instance_count: int = 1,
) -> TrainingJob:
    """Start ``critic train`` as SageMaker training job ``job_name`` on ``instance_count``
    instances of ``instance_type`` (more than one: data-parallel, see :func:`torchrun_command`).

    ``hyperparameters`` are ``critic train``'s options by name (``{"epochs": 5, "model":
    "lstm"}``). With ``data_s3_uri`` the data is copied into the job's "training" channel and
    the ``data`` hyper-parameter names the file or folder in it (taken from the URI when it
    ends in a file name); without it the job trains on the embedded IMDB reviews. The job is
    stopped after ``max_runtime_s``. With ``wait``, returns when the job has ended, and a
    failed job is a CriticError with SageMaker's reason. ``session`` is an optional
    ``boto3.session.Session``; the default reads the environment.
    """
    check_name("training job", job_name)
    check_role_arn(role_arn)
    bucket = bucket_name(bucket)
    settings = dict(hyperparameters) if isinstance(hyperparameters, Mapping) else hyperparameters
    _check_instances(instance_type, instance_count, settings)
    if image_uri is not None:
        check_image_uri(image_uri)
    check_positive_int("max_runtime_s", max_runtime_s)
    check_positive_int("volume_size_gb", volume_size_gb)
    encode_hyperparameters(settings)  # fail on a bad one before anything else
    _resolve_data(settings, data_s3_uri, log)

    aws = connect(region, session)
    image = image_uri or framework_image_uri("training", aws.region, instance_type)
    s3, sagemaker = aws.client("s3"), aws.client("sagemaker")
    _refuse_existing_job(sagemaker, job_name, aws.region)
    check_bucket(aws, s3, bucket)

    prefix = f"critic/jobs/{job_name}"
    with tempfile.TemporaryDirectory(prefix="critic-source-") as folder:
        archive = Path(folder) / SOURCE_ARCHIVE_NAME
        members = build_source_archive(archive)
        log(f"uploading critic's source ({len(members)} files) to s3://{bucket}/{prefix}/source/")
        source_uri = upload_file(s3, archive, bucket, f"{prefix}/source/{SOURCE_ARCHIVE_NAME}")

    encoded = encode_hyperparameters(settings)
    encoded.update(
        {
            "sagemaker_program": json.dumps(ENTRY_SCRIPT_NAME),
            "sagemaker_submit_directory": json.dumps(source_uri),
            "sagemaker_container_log_level": json.dumps(20),
            "sagemaker_job_name": json.dumps(job_name),
            "sagemaker_region": json.dumps(aws.region),
        }
    )
    if len(encoded) > MAX_HYPERPARAMETERS:
        raise CriticError(
            f"at most {MAX_HYPERPARAMETERS - 5} hyper-parameters, got {len(settings)}"
        )
    request = _job_request(
        job_name,
        role_arn,
        image,
        encoded,
        bucket,
        (instance_type, instance_count),
        volume_size_gb,
        max_runtime_s,
        data_s3_uri,
    )
    with aws_errors(f"creating training job {job_name}"):
        created = sagemaker.create_training_job(**request)
    output_uri = f"s3://{bucket}/{prefix}/output/model.tar.gz"
    log(
        f"started training job {job_name} in {aws.region} on {instance_count} x {instance_type} "
        f"({image}); "
        f"stopped after {max_runtime_s / 3600:g} h at most"
    )
    log(
        "follow it: aws logs tail /aws/sagemaker/TrainingJobs --follow "
        f"--log-stream-name-prefix {job_name} --region {aws.region}"
    )
    log(f"the trained bundle will be at {output_uri}")
    status = "InProgress"
    if wait:
        status = _wait_until_done(sagemaker, job_name, aws.region, max_runtime_s, log)
    return TrainingJob(
        name=job_name,
        arn=created["TrainingJobArn"],
        region=aws.region,
        status=status,
        image_uri=image,
        source_uri=source_uri,
        output_uri=output_uri,
        hyperparameters=encoded,
    )


def _check_instances(instance_type: str, instance_count: int, settings: Any) -> None:
    check_instance_type(instance_type)
    check_positive_int("instance_count", instance_count)
    if instance_count == 1 or not isinstance(settings, Mapping):
        return
    from critic.models import NBSVM_KIND, model_kind, model_names  # torch: only when it matters

    model = settings.get("model")
    if model in model_names() and model_kind(model) == NBSVM_KIND:
        raise CriticError(
            "nbsvm is fitted in one go by scikit-learn, on one machine: train it with "
            "instance_count 1"
        )


def _resolve_data(settings: dict, data_s3_uri: str | None, log: Log) -> None:
    """Point the ``data`` hyper-parameter at the training channel's file, or refuse a ``data``
    that names a channel file no URI fills."""
    data = settings.get("data")
    if data_s3_uri is not None:
        _, key = parse_s3_uri(data_s3_uri)
        if data is None:
            last = key.rsplit("/", 1)[-1]
            if not last or "." not in last:
                raise CriticError(
                    f"{data_s3_uri} looks like a folder: set the hyper-parameter data to the "
                    "file or folder `critic train --data` should read inside the training channel"
                )
            settings["data"] = last
            log(f"data: {last} from the training channel ({data_s3_uri})")
        elif data in BUILT_IN_DATA:
            log(f"note: data={data} trains on built-in reviews; {data_s3_uri} is copied but unused")
    elif data is not None and data not in BUILT_IN_DATA:
        raise CriticError(
            f"hyper-parameter data={data!r} names something in the training channel, but no "
            f"data_s3_uri was given to fill it (built-in data: {', '.join(BUILT_IN_DATA)})"
        )


def _refuse_existing_job(sagemaker: Any, job_name: str, region: str) -> None:
    existing = describe_or_none(
        sagemaker.describe_training_job,
        f"looking up training job {job_name}",
        TrainingJobName=job_name,
    )
    if existing is not None:
        raise CriticError(
            f"training job {job_name} already exists in {region} "
            f"({existing.get('TrainingJobStatus')}); job names are unique per account and "
            "region for good: pick another (adding the date is the usual way)"
        )


def _job_request(
    job_name: str,
    role_arn: str,
    image: str,
    hyperparameters: dict[str, str],
    bucket: str,
    instances: tuple[str, int],
    volume_size_gb: int,
    max_runtime_s: int,
    data_s3_uri: str | None,
) -> dict[str, Any]:
    """CreateTrainingJob's request: the instances (type, count), the image, the channel when
    there is data (copied whole to every instance: each rank reads all of it, then its share)."""
    instance_type, instance_count = instances
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "RoleArn": role_arn,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/critic/jobs/"},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
        "Tags": [{"Key": "critic:training-job", "Value": job_name}],
    }
    if data_s3_uri is not None:
        request["InputDataConfig"] = [
            {
                "ChannelName": TRAINING_CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": data_s3_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
        ]
    return request


def _wait_until_done(
    sagemaker: Any, job_name: str, region: str, max_runtime_s: int, log: Log
) -> str:
    """Wait with boto3's ``training_job_completed_or_stopped`` waiter, bounded by the job's own
    stopping condition plus an hour for starting instances and uploading the model."""
    logs = (
        f"aws logs tail /aws/sagemaker/TrainingJobs --log-stream-name-prefix {job_name} "
        f"--region {region}"
    )
    wait_until(
        sagemaker,
        "training_job_completed_or_stopped",
        f"training job {job_name}",
        delay_s=WAIT_DELAY_S,
        attempts=math.ceil((max_runtime_s + 3600) / WAIT_DELAY_S),
        status_key="TrainingJobStatus",
        failed=lambda status, reason, error: (
            f"training job {job_name} is {status or 'unknown'}: {reason or error}; its logs: {logs}"
        ),
        stopped_waiting=(
            f"stopped waiting; training job {job_name} carries on (stop it with aws "
            f"sagemaker stop-training-job --training-job-name {job_name} --region {region})"
        ),
        log=log,
        TrainingJobName=job_name,
    )
    with aws_errors(f"describing training job {job_name}"):
        answer = sagemaker.describe_training_job(TrainingJobName=job_name)
    status = answer.get("TrainingJobStatus", "unknown")
    artifacts = answer.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    log(f"training job {job_name} is {status}" + (f": {artifacts}" if artifacts else ""))
    return status


def torchrun_command(environ: Mapping[str, str], python: str = sys.executable) -> list[str] | None:
    """How the entry script starts ``critic train`` on this host of a training job: None for
    one process (one instance, no more than one GPU), else torchrun's command line.

    From SageMaker's variables: ``SM_HOSTS`` (all hosts), ``SM_CURRENT_HOST`` (its index in
    the sorted hosts is the node rank) and ``SM_NUM_GPUS`` (one process per GPU; one per CPU
    instance, its threads using all the cores). The master is ``SM_MASTER_ADDR`` and
    ``SM_MASTER_PORT`` when set (the SageMaker SDK's own launchers set them), else the first
    sorted host on port 7777, as the training toolkit's torch_distributed does.
    """
    try:
        hosts = sorted(json.loads(environ.get("SM_HOSTS") or "[]"))
        gpus = int(environ.get("SM_NUM_GPUS") or 0)
    except (TypeError, ValueError) as error:
        raise CriticError(f"SM_HOSTS or SM_NUM_GPUS is malformed ({error})") from None
    processes_per_host = max(gpus, 1)
    if len(hosts) <= 1 and processes_per_host == 1:
        return None
    nodes = max(len(hosts), 1)
    current = environ.get("SM_CURRENT_HOST", hosts[0] if hosts else "")
    if hosts and current not in hosts:
        raise CriticError(f"SM_CURRENT_HOST={current!r} is not one of SM_HOSTS {hosts}")
    master = environ.get("SM_MASTER_ADDR") or (hosts[0] if hosts else "127.0.0.1")
    port = environ.get("SM_MASTER_PORT") or str(MASTER_PORT)
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(nodes),
        "--node_rank",
        str(hosts.index(current) if hosts else 0),
        "--nproc_per_node",
        str(processes_per_host),
        "--master_addr",
        master,
        "--master_port",
        port,
        "-m",
        "critic.cli",
        "train",
        "--no-progress",
    ]


JOB_OPTION_NAMES = tuple(TrainingJobOptions.__dataclass_fields__)


def job_settings(environ: Mapping[str, str] | None = None) -> dict | None:
    """Inside a SageMaker training job (the container set ``SM_MODEL_DIR``,
    ``SM_CHANNEL_TRAINING`` and ``SM_HPS``): ``critic train``'s settings by option name, from
    the hyper-parameters (strings, typed later like the command line's), with ``data`` a path
    in the training channel and ``out`` the model folder. None outside a job."""
    environ = os.environ if environ is None else environ
    if not all(name in environ for name in JOB_VARIABLES):
        return None
    try:
        hyperparameters = json.loads(environ["SM_HPS"] or "{}")
    except ValueError as error:
        raise CriticError(f"SM_HPS is not valid JSON ({error})") from None
    if not isinstance(hyperparameters, dict):
        raise CriticError("SM_HPS must be a JSON object of hyper-parameters")
    settings = {key.replace("-", "_"): value for key, value in hyperparameters.items()}
    data = settings.get("data")
    if data is None or data in BUILT_IN_DATA:
        settings.setdefault("data", "embedded")
    else:
        settings["data"] = str(Path(environ["SM_CHANNEL_TRAINING"]) / data)
    settings["out"] = environ["SM_MODEL_DIR"]
    for name in JOB_OPTION_NAMES:  # where the job ran, never a setting of the training
        settings.pop(name, None)
    return settings


def submit_training(
    settings: Mapping[str, Any], options: TrainingJobOptions, log: Log = print
) -> TrainingJob:
    """``critic sagemaker train``: the training settings given (by option name, None: not
    given, so the job keeps the model's recipe and the defaults) become the job's
    hyper-parameters; ``data`` s3://... becomes its training channel, another data source
    travels by name. The job's machine picks its own device."""
    for required in ("role", "bucket"):
        if not getattr(options, required):
            raise CriticError(f"critic sagemaker train needs --{required}")
    hyperparameters = {
        name: value
        for name, value in settings.items()
        if value is not None and name not in ("data", "device")
    }
    data = settings.get("data")
    data_s3_uri = data if data and data.startswith("s3://") else None
    if data and data_s3_uri is None:
        hyperparameters["data"] = data
    model = settings.get("model") or ModelConfig.name
    name = options.job_name or f"critic-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    return submit_training_job(
        name,
        options.role,
        options.bucket,
        hyperparameters,
        instance_type=options.instance_type,
        data_s3_uri=data_s3_uri,
        region=options.region,
        wait=options.wait,
        log=log,
        instance_count=options.instance_count,
    )
