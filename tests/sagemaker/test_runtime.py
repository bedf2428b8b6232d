"""critic.sagemaker.runtime against moto's server on loopback: invoke an endpoint, with bodies
the hosting contract's decoder reads back as they were sent."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from critic.errors import CriticError
from critic.sagemaker import invoke
from critic.sagemaker.runtime import encode_reviews, model_error_message
from critic.serving.codec import decode_reviews
from support.aws import assert_one_line, queue_endpoint_answers, recording_session


def test_invoke_sends_a_list_as_json_instances_and_returns_the_answer_and_its_variant(
    aws, moto_url
):
    predictions = {"predictions": [{"label": "positive"}, {"label": "negative"}]}
    queue_endpoint_answers(
        moto_url,
        {
            "Body": json.dumps(predictions),
            "ContentType": "application/json",
            "InvokedProductionVariant": "challenger",
        },
    )
    session, sent = recording_session("sagemaker-runtime.InvokeEndpoint")
    result = invoke("critic-ab", ["A wonderful film.", "Très ennuyeux."], session=session)

    assert result.answer == predictions
    assert result.variant == "challenger"
    assert result.content_type == "application/json"
    (request,) = sent
    assert request.url.endswith("/endpoints/critic-ab/invocations")
    assert request.headers["Content-Type"] == b"application/json"
    assert request.headers["Accept"] == b"application/json"
    assert "X-Amzn-SageMaker-Target-Variant" not in request.headers
    assert json.loads(request.body) == {"instances": ["A wonderful film.", "Très ennuyeux."]}


def test_invoke_sends_one_review_as_text_to_the_target_variant_with_custom_attributes(
    aws, moto_url
):
    queue_endpoint_answers(
        moto_url,
        {
            "Body": "1",
            "ContentType": "text/plain",
            "InvokedProductionVariant": "champion",
            "CustomAttributes": "trace=42",
        },
    )
    session, sent = recording_session("sagemaker-runtime.InvokeEndpoint")
    result = invoke(
        "critic-ab",
        "Loved it — every minute.",
        target_variant="champion",
        accept="text/plain",
        custom_attributes="trace=42",
        session=session,
    )

    assert (result.answer, result.variant, result.custom_attributes) == (
        "1",
        "champion",
        "trace=42",
    )
    (request,) = sent
    assert request.headers["Content-Type"] == b"text/plain"
    assert request.headers["Accept"] == b"text/plain"
    assert request.headers["X-Amzn-SageMaker-Target-Variant"] == b"champion"
    assert request.headers["X-Amzn-SageMaker-Custom-Attributes"] == b"trace=42"
    assert request.body == "Loved it — every minute.".encode()


def test_an_error_answered_by_the_model_is_one_line_with_its_status_and_message(aws):
    # moto's runtime always answers 200, so the ModelError AWS sends when the container answers
    # an error is given to botocore directly, before any request goes out.
    error_response = {
        "Error": {"Code": "ModelError", "Message": "Received client error (400) from primary"},
        "OriginalStatusCode": 400,
        "OriginalMessage": json.dumps(
            {"status": 400, "message": "instance 0: the review is\nempty"}
        ),
        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/critic-ab",
        "ResponseMetadata": {"HTTPStatusCode": 424},
    }
    session = boto3.session.Session()
    session.events.register(
        "before-call.sagemaker-runtime.InvokeEndpoint",
        lambda **_: (SimpleNamespace(status_code=424, headers={}), error_response),
    )
    with pytest.raises(CriticError) as error:
        invoke("critic-ab", ["fine"], session=session)
    assert assert_one_line(error) == (
        "the model behind endpoint critic-ab answered 400: instance 0: the review is empty "
        "(container logs: arn:aws:logs:us-east-1:123456789012:log-group:"
        "/aws/sagemaker/Endpoints/critic-ab)"
    )
    without_logs = ClientError(
        {"Error": {"Code": "ModelError", "Message": "boom"}}, "InvokeEndpoint"
    )
    assert (
        model_error_message("e", without_logs)
        == "the model behind endpoint e answered an error: boom"
    )


@pytest.mark.parametrize(
    ("reviews", "content_type", "body"),
    [
        ('He said "fine", then left.', None, b'He said "fine", then left.'),
        (["good", "bad"], None, b'{"instances": ["good", "bad"]}'),
        ("good", "application/json", b'{"instances": ["good"]}'),
        (["a, b", 'say "hi"'], "text/csv", b'"a, b"\n"say ""hi"""\n'),
        (["good", "bad"], "application/jsonlines", b'"good"\n"bad"\n'),
    ],
)
def test_reviews_are_encoded_as_the_hosting_contract_reads_them(reviews, content_type, body):
    encoded, kind = encode_reviews(reviews, content_type)
    assert encoded == body
    # What the endpoint (critic serve, or the handler inside SageMaker) reads back from it.
    sent = [reviews] if isinstance(reviews, str) else reviews
    assert decode_reviews(encoded, kind) == sent


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"reviews": []}, "no reviews"),
        ({"reviews": ["fine", "  "]}, "review 2 is empty"),
        ({"reviews": ["a", "b"], "content_type": "text/plain"}, "text/plain carries one review"),
        ({"reviews": "a", "content_type": "application/xml"}, "cannot send reviews as"),
        ({"reviews": ["x" * (7 * 1024 * 1024)]}, "at most 6 MB"),
        ({"reviews": "a", "target_variant": "-x"}, "variant name '-x'"),
        ({"reviews": "a", "custom_attributes": "é"}, "printable ASCII"),
        ({"reviews": "a", "endpoint_name": "a_b"}, "endpoint name 'a_b'"),
    ],
)
def test_bad_invoke_input_is_a_clear_error(aws, arguments, message):
    with pytest.raises(CriticError, match=message):
        invoke(**{"endpoint_name": "critic-ab", **arguments})
