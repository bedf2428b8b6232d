"""``critic serve`` as a real process on a loopback port, called with urllib and with boto3."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

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


def post(url, body, content_type="text/plain", headers=None):
    request = urllib.request.Request(
        f"{url}/invocations",
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


def test_boto3_sees_a_client_mistake_as_a_validation_error(runtime):
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName="critic-reviews", Body=b"   ", ContentType="text/plain"
        )
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "empty" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="Endpoint elsewhere not found"):
        runtime.invoke_endpoint(EndpointName="elsewhere", Body=b"Great", ContentType="text/plain")


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
