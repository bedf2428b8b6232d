"""critic.sagemaker.aws: sessions, credentials and AWS errors as one-line CriticErrors."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from critic.errors import CriticError
from critic.sagemaker import delete_endpoint
from critic.sagemaker.aws import aws_errors, is_not_found
from support.aws import assert_one_line, quiet


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
