"""What the tests that talk to AWS share: the names they deploy under, and helpers that build
model archives, record the requests boto3 sends, and queue what moto's runtime answers.

Nothing can reach AWS: the moto_url fixture (tests/conftest.py) starts moto's server on
127.0.0.1 for each test module, points AWS_ENDPOINT_URL at it, gives fake credentials and hides
the user's AWS configuration files; tests/sagemaker/conftest.py adds the aws and archives
fixtures.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import urllib.request
from pathlib import Path

import boto3
import pytest

AWS_TEST_REGION = "us-east-1"
REGION = AWS_TEST_REGION
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


def moto_environment(tmp_path_factory, threaded: bool = True):
    """A generator for a fixture: moto's server on a free loopback port, empty, and an
    environment that sends boto3 there (fake credentials, the user's AWS files hidden);
    stopped after. ``threaded`` False answers one request at a time: moto's own DynamoDB
    transactions are not safe to run at once (DynamoDB's are), and its checks of a
    condition are what the tests of concurrent writers judge."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    class SerialMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, app, threaded=False)
            self._server_ready_event.set()
            self._server.serve_forever()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    kind = ThreadedMotoServer if threaded else SerialMotoServer
    server = kind(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto keeps its state in this process, across servers: each module starts with none of
    # what an earlier module made (its documented reset call).
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()
    hidden = tmp_path_factory.mktemp("no-aws-config")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", AWS_TEST_REGION)
        patch.setenv("AWS_ENDPOINT_URL", url)
        patch.setenv("AWS_CONFIG_FILE", str(hidden / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(hidden / "credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield url
    server.stop()


def write_model_archive(path: Path, marker: str, with_code: bool = True) -> Path:
    """A small model.tar.gz shaped like critic's: bundle files at the top, code/ beside them."""
    files = {"config.json": json.dumps({"marker": marker}), "model.safetensors": marker * 50}
    if with_code:
        files["code/inference.py"] = "from critic.serving.handler import model_fn\n"
        files["code/requirements.txt"] = "numpy\n"
    return write_archive(path, files)


def write_archive(path: Path, files: dict[str, str]) -> Path:
    """A model.tar.gz holding ``files`` (name in the archive -> text)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


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


class StubbedSession:
    """A boto3 session whose clients of some services answer from botocore Stubbers, for the
    SageMaker calls moto's server does not implement (UpdateEndpoint, inference experiments).

    A Stubber checks every request it is given against the real service model, so a parameter
    SageMaker would refuse fails the test; clients of every other service (S3, CloudWatch) are
    plain ones, on moto's server. ``stubbers[service]`` queues the answers, in order.
    """

    def __init__(self, *services: str):
        from botocore.stub import Stubber

        self._session = boto3.session.Session()
        self.region_name = self._session.region_name
        self._clients = {service: self._session.client(service) for service in services}
        self.stubbers = {service: Stubber(client) for service, client in self._clients.items()}
        for stubber in self.stubbers.values():
            stubber.activate()

    def client(self, service: str, **options):
        if service in self._clients:
            return self._clients[service]
        return self._session.client(service, **options)

    def assert_no_pending_responses(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


def moto_endpoint(name: str, variants: list[tuple[str, float]]) -> None:
    """An endpoint as SageMaker's control plane describes it, in moto: a model per variant
    (NAME-VARIANT), a config and the endpoint, with these weights."""
    sagemaker = boto3.session.Session().client("sagemaker")
    config = []
    for variant, weight in variants:
        sagemaker.create_model(
            ModelName=f"{name}-{variant}",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": "critic:test", "ModelDataUrl": f"s3://b/{variant}.tar.gz"},
        )
        config.append(
            {"VariantName": variant, "ModelName": f"{name}-{variant}", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": weight}
        )  # fmt: skip
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=config)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)


def remove_moto_endpoint(name: str, variants: list[str]) -> None:
    """What moto_endpoint made, gone again."""
    sagemaker = boto3.session.Session().client("sagemaker")
    sagemaker.delete_endpoint(EndpointName=name)
    sagemaker.delete_endpoint_config(EndpointConfigName=name)
    for variant in variants:
        sagemaker.delete_model(ModelName=f"{name}-{variant}")
