"""The Lambda function for API Gateway (critic.sagemaker.lambda_handler), called with a
recorded-shape API Gateway proxy event; its InvokeEndpoint calls reach a local `critic serve`
through boto3's endpoint URL. Packaged by `critic package --lambda`, it answers reviews
without importing critic when feedback is off (tests/sagemaker/test_lambda_feedback.py has the
feedback table, answer ids and votes)."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from critic.sagemaker import lambda_handler
from critic.sagemaker.lambda_package import CRITIC_MODULES
from support.cli import run_cli
from support.servers import free_port, running_server

EVENT = json.loads((Path(__file__).parent / "data" / "apigateway_proxy_event.json").read_text())
ENDPOINT = "critic-lambda"


@pytest.fixture(scope="module")
def local_endpoint(moto_url, trained_bundle):
    """`critic serve` as the endpoint ENDPOINT; boto3's sagemaker-runtime sent to it."""
    with (
        running_server(
            ["serve", "--variant", f"champion={trained_bundle}",
             "--endpoint-name", ENDPOINT, "--feedback-db", "off"]
        ) as server,
        pytest.MonkeyPatch.context() as patch,
    ):  # fmt: skip
        patch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
        yield server.url


@pytest.fixture
def function(local_endpoint, monkeypatch):
    """The handler as Lambda runs it: its endpoint from the environment, a fresh client."""
    monkeypatch.setenv("CRITIC_ENDPOINT_NAME", ENDPOINT)
    monkeypatch.delenv("CRITIC_FEEDBACK_TABLE", raising=False)
    monkeypatch.setattr(lambda_handler, "_runtime", None)
    return lambda_handler.handler


def event(**changes):
    recorded = copy.deepcopy(EVENT)
    headers = changes.pop("headers", None)
    if headers is not None:
        recorded["headers"] = {**recorded["headers"], **headers}
    return {**recorded, **changes}


def truth(url: str, review: str) -> dict:
    request = urllib.request.Request(
        f"{url}/invocations?explain=true",
        data=json.dumps({"instances": [review]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["predictions"][0]


def test_a_recorded_event_gets_the_endpoints_answer_with_cors_headers(function, local_endpoint):
    response = function(event(), None)
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is False
    assert response["headers"]["Content-Type"] == "application/json"
    assert "X-Critic-Answer-Id" not in response["headers"]  # no feedback table, no ids
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response["headers"]["Access-Control-Allow-Methods"]
    body = json.loads(response["body"])
    assert body["variant"] == "champion"  # InvokedProductionVariant
    (prediction,) = body["predictions"]
    expected = truth(local_endpoint, EVENT["body"])
    assert (prediction["label"], prediction["rating"]) == (expected["label"], expected["rating"])
    assert prediction["score"] == pytest.approx(expected["score"])
    assert prediction["words"]  # ?explain=true reached the model as a custom attribute


def test_a_base64_json_body_of_several_reviews_gets_one_answer_each(function):
    payload = json.dumps({"instances": ["Superb, I loved it.", "Dull and far too long."]})
    response = function(
        event(
            body=base64.b64encode(payload.encode()).decode(),
            isBase64Encoded=True,
            headers={"content-type": "application/json"},
            queryStringParameters=None,
        )
    )
    assert response["statusCode"] == 200
    predictions = json.loads(response["body"])["predictions"]
    assert len(predictions) == 2 and all("words" not in p for p in predictions)


def test_an_options_preflight_is_answered_with_cors_headers_alone(function):
    response = function(event(httpMethod="OPTIONS", body=None))
    assert response["statusCode"] == 204 and response["body"] == ""
    assert "X-Amzn-SageMaker-Target-Variant" in response["headers"]["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(
    ("changes", "words"),
    [({"body": ""}, "the request body is empty"),
     ({"body": None}, "the request body is empty"),
     ({"body": "   \n"}, "review 1 is empty"),
     ({"body": "!!not base64!!", "isBase64Encoded": True}, "does not decode"),
     ({"body": base64.b64encode(b"\xff\xfe").decode(), "isBase64Encoded": True}, "not UTF-8"),
     ({"body": "{", "headers": {"content-type": "application/json"}}, "not valid JSON"),
     ({"body": "[" * 100_000, "headers": {"content-type": "application/json"}},
      "not valid JSON"),  # nested past Python's recursion limit
     ({"body": "{\"instances\": []}", "headers": {"content-type": "application/json"}},
      "at least one review"),
     ({"body": "{\"score\": 3}", "headers": {"content-type": "application/json"}},
      "send a review as text"),
     ({"queryStringParameters": {"explain": "perhaps"}}, "explain must be true or false")],
)  # fmt: skip
def test_an_unusable_request_is_a_400_with_a_json_message(function, changes, words):
    response = function(event(**changes))
    assert response["statusCode"] == 400
    assert words in json.loads(response["body"])["message"]
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"


def test_an_endpoint_error_is_a_502_with_a_json_message(function, monkeypatch):
    monkeypatch.setenv("CRITIC_ENDPOINT_NAME", "critic-elsewhere")
    response = function(event())
    assert response["statusCode"] == 502
    message = json.loads(response["body"])["message"]
    assert "critic-elsewhere" in message and "not found" in message and "\n" not in message


def test_an_unknown_variant_is_the_endpoints_answer_not_a_verdict(function):
    response = function(event(headers={"X-Amzn-SageMaker-Target-Variant": "nobody"}))
    assert response["statusCode"] == 502
    assert "nobody" in json.loads(response["body"])["message"]


def test_an_unreachable_endpoint_is_a_502(function, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{free_port()}")
    response = function(event())
    assert response["statusCode"] == 502
    assert "critic-lambda" in json.loads(response["body"])["message"]


def test_without_an_endpoint_name_the_function_says_what_to_set(function, monkeypatch):
    monkeypatch.delenv("CRITIC_ENDPOINT_NAME")
    response = function(event())
    assert response["statusCode"] == 500
    assert "CRITIC_ENDPOINT_NAME" in json.loads(response["body"])["message"]


def test_the_packaged_function_answers_reviews_without_importing_critic_when_feedback_is_off(
    local_endpoint, tmp_path
):
    out = tmp_path / "api.zip"
    completed = run_cli("package", "--lambda", out, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert "lambda_handler.handler" in completed.stdout
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == ["lambda_handler.py", *CRITIC_MODULES]
    # As Lambda would: the zip on the path; without a feedback table the review path does not
    # import critic at all (an import of it would fail).
    script = (
        "import json, sys; sys.modules['critic'] = None; sys.path.insert(0, sys.argv[1]); "
        "import lambda_handler; "
        "print(json.dumps(lambda_handler.handler(json.loads(sys.argv[2]), None)))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script, str(out), json.dumps(EVENT)],
        capture_output=True, text=True, timeout=60,
        env={**without_feedback(os.environ), "CRITIC_ENDPOINT_NAME": ENDPOINT, "PYTHONPATH": ""},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    response = json.loads(ran.stdout)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["variant"] == "champion"
    assert "X-Critic-Answer-Id" not in response["headers"]  # ids come with a feedback table


def without_feedback(environment) -> dict:
    return {name: value for name, value in environment.items() if name != "CRITIC_FEEDBACK_TABLE"}


def test_package_refuses_a_lambda_file_that_is_not_a_zip(tmp_path):
    completed = run_cli("package", "--lambda", tmp_path / "api.tar")
    assert completed.returncode == 1
    assert completed.stderr.strip().endswith("a Lambda package is a .zip file")
