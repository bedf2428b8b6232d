"""critic.apps.sagemaker_web in process, against moto's server: the page's /invocations answered by
InvokeEndpoint, answer ids issued here and accepted as feedback, the variants read from
DescribeEndpoint (or learnt from the answers when it cannot be read), and bad requests refused
before any AWS call."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from critic.apps.sagemaker_web import create_proxy_app
from critic.apps.sagemaker_web_settings import ProxySettings
from critic.errors import CriticError
from support.aws import (
    StubbedSession,
    moto_endpoint,
    queue_endpoint_answers,
    remove_moto_endpoint,
)

ENDPOINT = "critic-proxied"
REVIEW = "A wonderful film, I loved it."


def sagemaker_answer(label: str, variant: str) -> dict:
    """An answer as critic's handler gives it inside SageMaker: no variant or model in it."""
    body = {"predictions": [{"label": label, "probability": 0.9, "score": 0.88, "rating": 9}]}
    return {
        "Body": json.dumps(body),
        "ContentType": "application/json",
        "InvokedProductionVariant": variant,
    }


@pytest.fixture(scope="module")
def endpoint(moto_url):
    """An endpoint of two variants, champion (weight 3) and challenger (weight 1), in moto."""
    moto_endpoint(ENDPOINT, [("champion", 3.0), ("challenger", 1.0)])
    yield moto_url
    # moto's state outlives its server: later modules expect an account without endpoints.
    remove_moto_endpoint(ENDPOINT, ["champion", "challenger"])


def client_for(name: str, feedback: Path | str, lines: list[str] | None = None) -> TestClient:
    settings = ProxySettings(endpoint_name=name, feedback_db=str(feedback))
    return TestClient(create_proxy_app(settings, log=(lines if lines is not None else []).append))


def ask(client: TestClient, review: str = REVIEW, **headers: str):
    return client.post(
        "/invocations?explain=true",
        json={"instances": [review]},
        headers={"Accept": "application/json", **headers},
    )


def test_an_answer_names_its_variant_and_model_and_carries_an_id_feedback_accepts(
    endpoint, tmp_path
):
    queue_endpoint_answers(endpoint, sagemaker_answer("positive", "challenger"))
    with client_for(ENDPOINT, tmp_path / "feedback.sqlite") as client:
        answer = ask(client)
        assert answer.status_code == 200
        assert answer.headers["x-amzn-invoked-production-variant"] == "challenger"
        body = answer.json()
        assert body["variant"] == "challenger"
        assert body["model"] == f"{ENDPOINT}-challenger"  # DescribeEndpointConfig's model name
        (prediction,) = body["predictions"]
        assert prediction["label"] == "positive" and prediction["rating"] == 9
        assert answer.headers["x-critic-answer-id"] == prediction["id"]

        vote = {"review": REVIEW, "variant": "challenger", "label": "positive",
                "feedback": "right", "answer_id": prediction["id"]}  # fmt: skip
        assert client.post("/api/feedback", json=vote).status_code == 201
        assert client.post("/api/feedback", json=vote).status_code == 409  # once per answer
        forged = {**vote, "answer_id": prediction["id"], "label": "negative"}
        assert client.post("/api/feedback", json=forged).status_code == 403

        ab = client.get("/api/ab").json()
    assert ab["endpoint"] == ENDPOINT
    rows = {row["name"]: row for row in ab["variants"]}
    assert {name: (row["weight"], row["share"]) for name, row in rows.items()} == {
        "champion": (3.0, 0.75),
        "challenger": (1.0, 0.25),
    }
    assert rows["challenger"]["requests"] == 1 and rows["challenger"]["reviews"] == 1
    assert rows["challenger"]["feedback"]["right"] == 1
    with sqlite3.connect(tmp_path / "feedback.sqlite") as connection:
        stored = connection.execute(
            "SELECT variant, model, label, feedback FROM feedback"
        ).fetchall()
    assert stored == [("challenger", f"{ENDPOINT}-challenger", "positive", "right")]


def test_the_ab_view_takes_up_weights_changed_on_sagemaker(endpoint, tmp_path):
    with client_for(ENDPOINT, "off") as client:
        client.app.state.endpoint.refresh_s = 0.0
        sagemaker = boto3.session.Session().client("sagemaker")
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=ENDPOINT,
            DesiredWeightsAndCapacities=[{"VariantName": "challenger", "DesiredWeight": 3.0}],
        )
        shares = {}
        for _ in range(50):  # the first look starts a DescribeEndpoint in a thread
            shares = {row["name"]: row["share"] for row in client.get("/api/ab").json()["variants"]}
            if shares["challenger"] == 0.5:
                break
            time.sleep(0.1)
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=ENDPOINT,
            DesiredWeightsAndCapacities=[{"VariantName": "challenger", "DesiredWeight": 1.0}],
        )
    assert shares == {"champion": 0.5, "challenger": 0.5}


def test_explain_travels_to_the_model_as_a_custom_attribute(endpoint, tmp_path):
    session = boto3.session.Session()
    sent = []
    session.events.register(
        "before-send.sagemaker-runtime.InvokeEndpoint", lambda request, **_: sent.append(request)
    )
    queue_endpoint_answers(endpoint, sagemaker_answer("negative", "champion"))
    app = create_proxy_app(ProxySettings(endpoint_name=ENDPOINT, feedback_db="off"), log=[].append)
    with TestClient(app) as client:
        client.app.state.endpoint.runtime = session.client("sagemaker-runtime")
        answer = ask(client, "Dull.", **{"X-Amzn-SageMaker-Target-Variant": "champion"})
    assert answer.status_code == 200 and answer.json()["variant"] == "champion"
    (request,) = sent
    assert request.headers["X-Amzn-SageMaker-Custom-Attributes"] == b"explain=true"
    assert request.headers["X-Amzn-SageMaker-Target-Variant"] == b"champion"
    assert json.loads(request.body) == {"instances": ["Dull."]}


def test_without_describe_the_variants_are_learnt_from_the_answers(endpoint, tmp_path):
    lines: list[str] = []
    queue_endpoint_answers(endpoint, sagemaker_answer("positive", "blue"))
    with client_for("critic-undescribed", tmp_path / "feedback.sqlite", lines) as client:
        assert client.get("/api/ab").json()["variants"] == []
        answer = ask(client, "Blue is the warmest colour.")  # moto answers each body once
        assert answer.json()["variant"] == "blue" and answer.json()["model"] == "blue"
        (row,) = client.get("/api/ab").json()["variants"]
    assert (row["name"], row["weight"], row["share"], row["requests"]) == ("blue", None, None, 1)
    assert any("variants will be learnt from the answers" in line for line in lines)


@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [({"X-Amzn-SageMaker-Target-Variant": "no such"}, 400, "target variant name 'no such'"),
     ({"X-Amzn-SageMaker-Custom-Attributes": "x" * 2000}, 400, "1024"),
     ({"X-Amzn-SageMaker-Custom-Attributes": "explain=maybe"}, 400, "explain must be true")],
)  # fmt: skip
def test_a_bad_request_is_refused_here_before_any_aws_call(
    endpoint, tmp_path, headers, status, words
):
    with client_for(ENDPOINT, "off") as client:
        answer = ask(client, **headers)
        assert answer.status_code == status
        assert words in answer.json()["message"]
        assert client.get("/api/ab").json()["variants"][0]["requests"] == 0


@pytest.mark.parametrize(
    ("changes", "words"),
    [({}, "needs --sagemaker-endpoint"),
     ({"endpoint_name": "bad name"}, "endpoint name 'bad name' is not valid"),
     ({"endpoint_name": "ok", "endpoint_url": "localhost:8080"}, "http(s) URL"),
     ({"endpoint_name": "ok", "port": 0}, "port must be 1-65535"),
     ({"endpoint_name": "ok", "timeout_s": 0}, "timeout_s must lie in")],
)  # fmt: skip
def test_settings_are_checked_with_one_clear_line(changes, words):
    with pytest.raises(CriticError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ProxySettings(**changes)


def test_the_ab_views_shadow_section_is_empty_in_front_of_sagemaker(endpoint, tmp_path):
    # The page's state is typed as critic.web.state.PageState, which both states satisfy:
    # this route once reached for a method the page in front of SageMaker did not have.
    with client_for(ENDPOINT, tmp_path / "feedback.sqlite") as client:
        response = client.get("/api/ab/shadows")
        assert response.status_code == 200
        view = response.json()
        assert view["endpoint"] == ENDPOINT
        assert (view["workers"], view["shadows"], view["capture"]) == (1, [], None)
        assert client.get("/api/ab").status_code == 200


def test_the_ab_view_shows_what_sagemaker_measured_of_each_variant(endpoint, tmp_path, monkeypatch):
    # moto's CloudWatch has no percentiles, so GetMetricData answers from botocore's Stubber
    # (the request checked against CloudWatch's service model); SageMaker stays on moto.
    from botocore.stub import ANY

    session = StubbedSession("cloudwatch")
    monkeypatch.setattr(boto3.session, "Session", lambda *_, **__: session)
    stub = session.stubbers["cloudwatch"]
    queries = [
        {
            "Id": f"v{index}_{key}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SageMaker",
                    "MetricName": metric,
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": ENDPOINT},
                        {"Name": "VariantName", "Value": variant},
                    ],
                },
                "Period": 3 * 3600,
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for index, variant in enumerate(["champion", "challenger"])
        for key, metric, stat in (
            ("invocations", "Invocations", "Sum"),
            ("errors_4xx", "Invocation4XXErrors", "Sum"),
            ("errors_5xx", "Invocation5XXErrors", "Sum"),
            ("latency_mean", "ModelLatency", "Average"),
            ("latency_p95", "ModelLatency", "p95"),
        )
    ]
    measured = {"v0_invocations": 80.0, "v0_errors_4xx": 3.0, "v0_errors_5xx": 1.0,
                "v0_latency_mean": 2000.0, "v0_latency_p95": 4100.0, "v1_invocations": 10.0,
                "v1_latency_mean": 4000.0, "v1_latency_p95": 4000.0}  # fmt: skip
    stub.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                {
                    "Id": query["Id"],
                    "Values": [measured[query["Id"]]] if query["Id"] in measured else [],
                    "StatusCode": "Complete",
                }
                for query in queries
            ]
        },
        {"MetricDataQueries": queries, "StartTime": ANY, "EndTime": ANY},
    )
    with client_for(ENDPOINT, tmp_path / "feedback.sqlite") as client:
        response = client.get("/api/ab/sagemaker?hours=3")
        assert response.status_code == 200, response.text
        figures = response.json()
        # Read once a minute at most (CloudWatch bills by the request): no second call queued.
        assert client.get("/api/ab/sagemaker?hours=3").json() == figures
        for bad in ("0", "x", "10000"):
            refused = client.get(f"/api/ab/sagemaker?hours={bad}")
            assert refused.status_code == 400 and "hours must be" in refused.json()["message"]
    session.assert_no_pending_responses()
    assert figures["source"] == "CloudWatch AWS/SageMaker" and figures["period"]["hours"] == 3.0
    assert figures["variants"] == {
        "champion": {"invocations": 80, "errors_4xx": 3.0, "errors_5xx": 1.0,
                     "latency_ms": {"mean": 2.0, "p95": 4.1}},  # CloudWatch's microseconds
        "challenger": {"invocations": 10, "errors_4xx": None, "errors_5xx": None,
                       "latency_ms": {"mean": 4.0, "p95": 4.0}},
    }  # fmt: skip
