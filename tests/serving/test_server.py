"""``critic serve`` as a real process on a loopback port, called with urllib and with boto3."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from support.cli import run_cli
from support.servers import free_port, running_server

TOKEN = "admin-token-for-tests"
REVIEWS = [
    "A wonderful, moving film! The cast is superb.",
    "Not good. Boring and far too long.",
    "It was fine, I guess? Some good scenes, some bad.",
    "I don't think I have ever laughed so much.",
]


@pytest.fixture(scope="module")
def server(trained_bundle, second_bundle):
    with running_server(
        ["serve", "--variant", f"champion={trained_bundle}:0.9", "--variant", f"challenger={second_bundle}:0.1",
         "--admin-token", TOKEN, "--endpoint-name", "critic-reviews", "--batch-wait-ms", "20"]
    ) as server:  # fmt: skip
        yield server.url


def post(url, body, content_type="text/plain", headers=None, path="/invocations"):
    request = urllib.request.Request(
        f"{url}{path}",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": content_type, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def runtime(server):
    # boto3's own SageMaker Runtime client, pointed at the local endpoint: it signs the request
    # (with throw-away credentials) and parses the answer exactly as it would SageMaker's.
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}),
    )


def test_boto3_invoke_endpoint_works_unchanged(runtime):
    response = runtime.invoke_endpoint(
        EndpointName="critic-reviews",
        Body=json.dumps({"instances": REVIEWS}),
        ContentType="application/json",
        Accept="application/json",
        TargetVariant="challenger",
        CustomAttributes="request-id=42",
    )
    assert response["InvokedProductionVariant"] == "challenger"
    assert response["ContentType"] == "application/json"
    assert response["CustomAttributes"] == "request-id=42"
    predictions = json.loads(response["Body"].read())["predictions"]
    assert len(predictions) == len(REVIEWS)


NO_WORDS = "<br /><br /> :-) !!!"  # markup and symbols: a review with no words


def test_boto3_raises_model_error_for_what_the_model_refuses_as_against_sagemaker(server, runtime):
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        runtime.invoke_endpoint(
            EndpointName="critic-reviews", Body=NO_WORDS.encode(), ContentType="text/plain"
        )
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["ResponseMetadata"]["RequestId"]
    assert error["OriginalStatusCode"] == 400
    quoted = json.loads(error["OriginalMessage"])
    assert quoted["status"] == 400 and "has no words" in quoted["message"]
    assert error["Error"]["Message"].startswith("Received client error (400) from primary")
    # critic's container contract answers the same review itself, with the body quoted above.
    status, _, body = post(server, NO_WORDS)
    assert status == 400 and json.loads(body) == quoted


def test_boto3_sees_what_sagemaker_refuses_itself_as_a_validation_error(runtime):
    with pytest.raises(runtime.exceptions.ValidationError, match="Endpoint elsewhere not found"):
        runtime.invoke_endpoint(EndpointName="elsewhere", Body=b"Great", ContentType="text/plain")
    with pytest.raises(runtime.exceptions.ValidationError, match="no variant 'nobody'"):
        runtime.invoke_endpoint(
            EndpointName="critic-reviews",
            Body=NO_WORDS.encode(),  # refused before the model could say so
            ContentType="text/plain",
            TargetVariant="nobody",
        )


def test_the_runtime_paths_424_carries_sagemakers_body_and_headers(server):
    status, headers, body = post(
        server,
        NO_WORDS,
        headers={"X-Amzn-SageMaker-Custom-Attributes": "trace=9"},
        path="/endpoints/critic-reviews/invocations",
    )
    assert status == 424 and headers["Content-Type"] == "application/json"
    assert headers["x-amzn-ErrorType"] == "ModelError"
    assert len(headers["x-amzn-RequestId"]) == 36  # a UUID, as SageMaker's
    assert headers["X-Amzn-SageMaker-Custom-Attributes"] == "trace=9"
    error = json.loads(body)
    assert set(error) == {"ErrorCode", "Message", "OriginalMessage", "OriginalStatusCode"}
    assert (error["ErrorCode"], error["OriginalStatusCode"]) == ("CLIENT_ERROR_FROM_MODEL", 400)
    _, container_headers, container_body = post(server, NO_WORDS)
    assert error["OriginalMessage"] == container_body.decode()
    assert "x-amzn-RequestId" not in container_headers  # the container contract has none


def test_served_predictions_equal_critic_predict(server, trained_bundle):
    completed = run_cli("predict", trained_bundle, *REVIEWS, check=True)
    expected = [json.loads(line) for line in completed.stdout.splitlines()]
    status, _, body = post(
        server,
        json.dumps(REVIEWS),
        "application/json",
        {"X-Amzn-SageMaker-Target-Variant": "champion"},
    )
    assert status == 200
    for got, want in zip(json.loads(body)["predictions"], expected, strict=True):
        assert got["label"] == want["label"] and got["rating"] == want["rating"]
        assert abs(got["probability"] - want["probability"]) <= 1e-6


def test_concurrent_requests_are_micro_batched_and_each_gets_its_own_answer(server, trained_bundle):
    from critic.inference.predictor import Predictor

    expected = {
        r: p["probability"]
        for r, p in zip(REVIEWS, Predictor.load(trained_bundle).predict(REVIEWS), strict=True)
    }

    def one(index):
        review = REVIEWS[index % len(REVIEWS)]
        status, _, body = post(
            server, review, headers={"X-Amzn-SageMaker-Target-Variant": "champion"}
        )
        return review, status, json.loads(body)["predictions"][0]["probability"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(one, range(48)))
    for review, status, probability in answers:
        assert status == 200
        assert abs(probability - expected[review]) <= 1e-6
    metrics = urllib.request.urlopen(f"{server}/metrics").read().decode()
    batches = [
        line
        for line in metrics.splitlines()
        if line.startswith('critic_batch_reviews_count{variant="champion"}')
    ]
    reviews = [
        line
        for line in metrics.splitlines()
        if line.startswith('critic_batch_reviews_sum{variant="champion"}')
    ]
    passes, answered = float(batches[0].split()[-1]), float(reviews[0].split()[-1])
    assert answered >= 48 and passes < answered  # fewer forward passes than reviews


def test_traffic_splits_by_weight_and_every_response_names_its_variant(server):
    seen = {}
    for _ in range(60):
        status, headers, body = post(server, "Quite good.")
        assert status == 200
        variant = headers["x-Amzn-Invoked-Production-Variant"]
        assert json.loads(body)["variant"] == variant
        seen[variant] = seen.get(variant, 0) + 1
    assert seen.get("champion", 0) > seen.get("challenger", 0)


def test_weights_change_without_a_restart(server):
    request = urllib.request.Request(
        f"{server}/admin/weights", data=json.dumps({"champion": 0, "challenger": 1}).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request) as response:
        assert json.loads(response.read())["shares"] == {"champion": 0.0, "challenger": 1.0}
    try:
        assert {
            post(server, "Fine.")[1]["x-Amzn-Invoked-Production-Variant"] for _ in range(15)
        } == {"challenger"}
    finally:
        request.data = json.dumps({"champion": 0.9, "challenger": 0.1}).encode()
        urllib.request.urlopen(request).close()


def test_serve_refuses_a_bad_bundle_in_one_line(tmp_path):
    completed = run_cli("serve", "--variant", f"a={tmp_path}/missing", timeout=60)
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        f"critic: error: no model bundle at {tmp_path}/missing"
    ]
    nothing = run_cli("serve", timeout=60)
    assert nothing.returncode == 1 and "nothing to serve" in nothing.stderr


def test_serve_reads_its_port_from_the_environment(trained_bundle):
    port = free_port()
    with running_server(
        ["serve", trained_bundle], env={"CRITIC_PORT": str(port)}, port=port, pass_port=False
    ) as server:
        status, headers, _ = post(server.url, "Nice.")
        assert status == 200 and headers["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"
