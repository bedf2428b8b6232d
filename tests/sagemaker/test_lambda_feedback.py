"""The Lambda function with a feedback table (CRITIC_FEEDBACK_TABLE): answer ids on what it
returns, and POST /feedback, against moto's server -- its sagemaker-runtime answers the
reviews (queued answers), a real table made by create_table keeps the votes, and a store on
the same table, as `critic serve` opens it, reads them and accepts the function's ids (and the
function the store's). The packaged zip does the same in a process of its own, without numpy."""

from __future__ import annotations

import copy
import itertools
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from critic.sagemaker import lambda_handler
from critic.sagemaker.lambda_package import package_lambda
from critic.serving.ab.answers import ID_HEADER, AnswerIds, allocation
from critic.serving.ab.dynamodb import DynamoFeedbackStore, create_table
from support.aws import moto_environment, queue_endpoint_answers

EVENT = json.loads((Path(__file__).parent / "data" / "apigateway_proxy_event.json").read_text())
ENDPOINT = "critic-lambda-feedback"
ORIGIN = "https://reviews.example"
_TABLES = iter(range(1000))
# moto answers the same request with the same answer: every review asked is a new one.
_REVIEWS = itertools.count()


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    """moto answering one request at a time: its DynamoDB transactions are not thread-safe
    (see support.aws.moto_environment)."""
    yield from moto_environment(tmp_path_factory, threaded=False)


@pytest.fixture
def function(moto_url, monkeypatch):
    """The handler as Lambda runs it, fresh clients, no feedback table yet."""
    monkeypatch.setenv("CRITIC_ENDPOINT_NAME", ENDPOINT)
    monkeypatch.delenv("CRITIC_FEEDBACK_TABLE", raising=False)
    monkeypatch.delenv("CRITIC_ALLOWED_ORIGIN", raising=False)
    monkeypatch.setattr(lambda_handler, "_runtime", None)
    monkeypatch.setattr(lambda_handler, "_feedback", None)
    return lambda_handler.handler


@pytest.fixture
def table(function, monkeypatch):
    """A new feedback table, set as the function's CRITIC_FEEDBACK_TABLE; its dynamodb:// URL."""
    name = f"critic-lambda-{next(_TABLES)}"
    create_table(name)
    monkeypatch.setenv("CRITIC_FEEDBACK_TABLE", name)
    return f"dynamodb://{name}"


def sagemaker_answer(variant: str, *labels: str) -> dict:
    """What InvokeEndpoint answers for critic's model: one prediction per label, each with
    the id the model's server made with its own key."""
    predictions = [
        {"label": label, "probability": 0.9, "rating": 9, "id": "from-the-endpoint.its-key"}
        for label in labels
    ]
    return {
        "Body": json.dumps({"predictions": predictions}),
        "ContentType": "application/json",
        "InvokedProductionVariant": variant,
    }


def review_event(**headers: str) -> tuple[dict, str]:
    """The recorded API Gateway event with a review never asked before; and that review."""
    review = f"A fine film, review number {next(_REVIEWS)} of the day."
    event = copy.deepcopy(EVENT)
    event["body"] = review
    event["headers"].update(headers)
    return event, review


def ask(function, moto_url, variant="champion", labels=("positive",), **headers) -> dict:
    """A review answered through the function; its response and the review, for a vote."""
    queue_endpoint_answers(moto_url, sagemaker_answer(variant, *labels))
    event, review = review_event(**headers)
    response = function(event)
    assert response["statusCode"] == 200, response["body"]
    return {**response, "review": review, "answer": json.loads(response["body"])}


def feedback_event(body: object, content_type="application/json", **headers: str) -> dict:
    """``POST /prod/feedback`` as a REST API's proxy integration hands it over."""
    event = copy.deepcopy(EVENT)
    event.update(resource="/feedback", path="/feedback", queryStringParameters=None)
    event["requestContext"].update(path="/prod/feedback", resourcePath="/feedback")
    event["headers"] = {**event["headers"], "content-type": content_type, **headers}
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def vote_on(asked: dict, verdict="right", **changes) -> dict:
    """The vote a page sends on the first prediction of an answer."""
    prediction = asked["answer"]["predictions"][0]
    vote = {"review": asked["review"], "variant": asked["answer"]["variant"],
            "label": prediction["label"], "feedback": verdict, "answer_id": prediction["id"],
            "probability": prediction["probability"], "rating": prediction["rating"]}  # fmt: skip
    return {**vote, **changes}


def message(response: dict) -> str:
    text = json.loads(response["body"])["message"]
    assert "\n" not in text and "Traceback" not in text
    return text


def test_an_answer_carries_an_id_a_store_on_the_same_table_accepts(function, moto_url, table):
    asked = ask(function, moto_url, variant="challenger")
    assert asked["answer"]["variant"] == "challenger"
    (prediction,) = asked["answer"]["predictions"]
    assert prediction["id"] != "from-the-endpoint.its-key"  # the endpoint's own key is not shared
    assert asked["headers"][ID_HEADER] == prediction["id"]
    assert ID_HEADER in asked["headers"]["Access-Control-Expose-Headers"]
    answers = AnswerIds(DynamoFeedbackStore(table).answer_key)  # as critic serve opens it
    assert answers.check(prediction["id"], "challenger", "positive")
    assert not answers.check(prediction["id"], "challenger", "negative")
    assert not answers.check(prediction["id"], "champion", "positive")
    assert allocation(prediction["id"]) == (None, False)  # SageMaker drew it; weights unknown


def test_each_of_several_predictions_has_an_id_and_a_named_variant_is_pinned(
    function, moto_url, table
):
    asked = ask(
        function, moto_url, labels=("positive", "negative"),
        **{"X-Amzn-SageMaker-Target-Variant": "champion"},
    )  # fmt: skip
    predictions = asked["answer"]["predictions"]
    answers = AnswerIds(DynamoFeedbackStore(table).answer_key)
    assert [answers.check(p["id"], "champion", p["label"]) for p in predictions] == [True, True]
    assert all(allocation(p["id"]) == (None, True) for p in predictions)
    assert ID_HEADER not in asked["headers"]  # one header cannot name two answers


def test_without_a_table_answers_have_no_id_and_feedback_is_off(function, moto_url):
    asked = ask(function, moto_url)
    # The answer as the endpoint gave it, as before there were tables: no id of the function's.
    assert asked["answer"]["predictions"][0]["id"] == "from-the-endpoint.its-key"
    assert ID_HEADER not in asked["headers"]
    response = function(feedback_event({"review": "Fine."}))
    assert response["statusCode"] == 404
    assert message(response) == "feedback is off: set CRITIC_FEEDBACK_TABLE"


def test_a_vote_is_recorded_once_and_counted_by_the_table(function, moto_url, table):
    asked = ask(function, moto_url)
    response = function(feedback_event(vote_on(asked)))
    assert response["statusCode"] == 201, response["body"]
    recorded = json.loads(response["body"])
    assert recorded["variant"] == "champion" and isinstance(recorded["id"], int)
    store = DynamoFeedbackStore(table)
    (summary,) = store.summary(["champion"])
    assert (summary["feedback"], summary["right"]) == (1, 1)
    (row,) = store.rows()
    assert (row["id"], row["review"], row["rating"]) == (recorded["id"], asked["review"], 9)

    again = function(feedback_event(vote_on(asked, verdict="wrong")))
    assert again.get("statusCode") == 409
    assert "already has its feedback" in message(again)
    assert store.summary(["champion"])[0]["feedback"] == 1


def test_an_id_issued_by_a_server_on_the_same_table_is_accepted(function, table):
    served = AnswerIds(DynamoFeedbackStore(table).answer_key).issue("champion", "negative", 0.75)
    vote = {"review": "Dull.", "variant": "champion", "label": "negative",
            "feedback": "wrong", "answer_id": served}  # fmt: skip
    response = function(feedback_event(vote))
    assert response["statusCode"] == 201, response["body"]
    (row,) = DynamoFeedbackStore(table).rows()
    assert (row["share"], row["pinned"], row["feedback"]) == (0.75, 0, "wrong")


def test_a_vote_for_another_label_than_the_answers_is_refused(function, moto_url, table):
    asked = ask(function, moto_url)
    response = function(feedback_event(vote_on(asked, label="negative")))
    assert response["statusCode"] == 403
    assert "answer_id is not an answer" in message(response)
    assert DynamoFeedbackStore(table).rows() == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [({"review": "Fine."}, "text/plain", 415, "application/json"),
     ("{not json", "application/json", 400, "not valid JSON"),
     ("[" * 100_000, "application/json", 400, "not valid JSON"),
     ("", "application/json", 422, "send a JSON object"),
     (["a", "list"], "application/json; charset=utf-8", 422, "send a JSON object"),
     ({"variant": "champion", "label": "positive", "feedback": "right", "answer_id": "a.b"},
      "application/json", 422, "review"),
     ({"review": "Fine.", "variant": "champion", "label": "positive", "feedback": "maybe",
       "answer_id": "a.b"}, "application/json", 422, "feedback: one of right, wrong"),
     ({"review": "Fine.", "variant": "champion", "label": "positive", "feedback": "right",
       "answer_id": "a.b", "rating": 11}, "application/json", 422, "rating"),
     ("x" * (300 * 1024), "application/json", 413, "over 256 KB")],
)  # fmt: skip
def test_an_unusable_vote_is_a_4xx_with_a_one_line_message(
    function, table, body, content_type, status, words
):
    response = function(feedback_event(body, content_type))
    assert response["statusCode"] == status
    assert words in message(response)
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"


def test_a_vote_from_another_origin_than_the_allowed_one_is_refused(
    function, moto_url, table, monkeypatch
):
    monkeypatch.setenv("CRITIC_ALLOWED_ORIGIN", ORIGIN)
    asked = ask(function, moto_url)
    refused = function(feedback_event(vote_on(asked), origin="https://elsewhere.example"))
    assert refused["statusCode"] == 403 and "another site" in message(refused)
    accepted = function(feedback_event(vote_on(asked), origin=ORIGIN))
    assert accepted["statusCode"] == 201, accepted["body"]
    assert accepted["headers"]["Access-Control-Allow-Origin"] == ORIGIN


def test_with_any_origin_allowed_a_page_elsewhere_may_vote(function, moto_url, table):
    asked = ask(function, moto_url)
    response = function(feedback_event(vote_on(asked), Origin="https://elsewhere.example"))
    assert response["statusCode"] == 201, response["body"]


def test_an_http_api_event_reaches_feedback_by_its_raw_path(function, moto_url, table):
    asked = ask(function, moto_url)
    event = {
        "version": "2.0",
        "rawPath": "/prod/feedback",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/prod/feedback"}},
        "body": json.dumps(vote_on(asked)),
        "isBase64Encoded": False,
    }
    response = function(event)
    assert response["statusCode"] == 201, response["body"]


def test_a_table_dynamodb_cannot_read_is_a_503_for_reviews_and_votes(
    function, moto_url, monkeypatch
):
    monkeypatch.setenv("CRITIC_FEEDBACK_TABLE", "dynamodb://critic-no-such-table")
    event, _ = review_event()
    review = function(event)
    assert review["statusCode"] == 503 and "no such table" in message(review)
    vote = {"review": "Fine.", "variant": "champion", "label": "positive",
            "feedback": "right", "answer_id": "a.b"}  # fmt: skip
    response = function(feedback_event(vote))
    assert response["statusCode"] == 503 and "no such table" in message(response)


def test_the_packaged_function_gives_ids_and_records_votes_without_numpy(
    function, moto_url, table, tmp_path
):
    archive = package_lambda(tmp_path / "api.zip")
    queue_endpoint_answers(moto_url, sagemaker_answer("champion", "positive"))
    event, review = review_event()
    # As Lambda would: the zip first on the path (boto3 from the site-packages, as the
    # runtime has it), a review answered and voted on.
    script = """if True:
        import json, sys
        sys.path.insert(0, sys.argv[1])
        import lambda_handler
        answered = lambda_handler.handler(json.loads(sys.argv[2]))
        prediction = json.loads(answered["body"])["predictions"][0]
        event = json.loads(sys.argv[3])
        event["body"] = json.dumps({"review": sys.argv[4], "variant": "champion",
            "label": prediction["label"], "feedback": "right", "answer_id": prediction["id"]})
        voted = lambda_handler.handler(event)
        import critic
        print(json.dumps({"answered": answered, "voted": voted, "critic": critic.__file__,
            "numpy": "numpy" in sys.modules,
            "critic_modules": sorted(name for name in sys.modules if name.startswith("critic"))}))
    """
    ran = subprocess.run(
        [sys.executable, "-c", script, str(archive), json.dumps(event),
         json.dumps(feedback_event({})), review],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert seen["answered"]["statusCode"] == 200, seen["answered"]["body"]
    assert seen["voted"]["statusCode"] == 201, seen["voted"]["body"]
    assert seen["critic"].startswith(str(archive) + os.sep)
    assert seen["numpy"] is False
    assert seen["critic_modules"] == sorted(
        ["critic", "critic.errors", "critic.serving", "critic.serving.ab",
         "critic.serving.ab.answers", "critic.serving.ab.votes", "critic.serving.ab.dynamodb"]
    )  # fmt: skip
    (row,) = DynamoFeedbackStore(table).rows()
    assert row["review"] == review


# --- two page servers and the function, one table ------------------------------------------


def test_two_page_servers_and_the_function_share_one_table_and_one_ab_view(
    function, table, moto_url
):
    from support.aws import moto_endpoint, remove_moto_endpoint
    from support.feedback import post_vote
    from support.servers import running_server

    moto_endpoint(ENDPOINT, [("champion", 1.0), ("challenger", 1.0)])

    def page_answer(server, variant):
        queue_endpoint_answers(moto_url, sagemaker_answer(variant, "positive"))
        review = f"A fine film, review number {next(_REVIEWS)} of the day."
        request = urllib.request.Request(
            f"{server.url}/invocations",
            json.dumps({"instances": [review]}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        return {"review": review, "answer": answer}

    def lambda_vote(asked):
        response = function(feedback_event(vote_on(asked)))
        return response["statusCode"]

    def page_vote(server, asked):
        prediction = asked["answer"]["predictions"][0]
        return post_vote(server.url, asked["answer"]["variant"], prediction, asked["review"])

    def feedback_seen(server):
        with urllib.request.urlopen(f"{server.url}/api/ab", timeout=30) as response:
            rows = json.loads(response.read())["variants"]
        return {row["name"]: (row["feedback"] or {}).get("feedback", 0) for row in rows}

    command = ["web", "--sagemaker-endpoint", ENDPOINT, "--feedback-db", table]
    try:
        with running_server(command) as first, running_server(command) as second:
            by_first = page_answer(first, "champion")
            by_second = page_answer(second, "challenger")
            by_function = ask(function, moto_url, variant="challenger")
            # Each answer voted on somewhere other than where it was given.
            assert page_vote(second, by_first) == 201
            assert lambda_vote(by_second) == 201
            assert page_vote(first, by_function) == 201
            # And once only, wherever the second vote goes.
            assert lambda_vote(by_first) == 409
            assert page_vote(first, by_second) == 409
            assert page_vote(second, by_function) == 409
            forged = {**by_first["answer"]["predictions"][0], "label": "negative"}
            assert post_vote(first.url, "champion", forged) == 403
            assert (
                function(feedback_event(vote_on(by_first, label="negative")))["statusCode"] == 403
            )
            expected = {"champion": 1, "challenger": 2}
            assert feedback_seen(first) == feedback_seen(second) == expected
    finally:
        remove_moto_endpoint(ENDPOINT, ["champion", "challenger"])
