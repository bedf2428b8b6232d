import json

import pytest

from critic.serving.codec import (
    JSON,
    JSON_LINES,
    TEXT,
    ClientError,
    decode_reviews,
    encode_predictions,
    media_type,
    negotiate,
)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"A fine film.", "text/plain", ["A fine film."]),
        ("Une belle \u00e9tude".encode(), "text/plain; charset=utf-8", ["Une belle \u00e9tude"]),
        (b'{"instances": ["good", "bad"]}', "application/json", ["good", "bad"]),
        (b'["good", "bad"]', "application/json", ["good", "bad"]),
        (b'"just one"', "Application/JSON", ["just one"]),
        (b'{"instances": [{"text": "good"}]}', "application/json", ["good"]),
        (b'{"text": "good"}', "application/json", ["good"]),
        (b'good\n"bad, really bad"\n', "text/csv", ["good", "bad, really bad"]),
        (b'"good"\n{"text": "bad"}\n\n', "application/jsonlines", ["good", "bad"]),
        (b'"good"\n', "application/x-ndjson", ["good"]),
    ],
)
def test_every_supported_content_type_is_decoded(body, content_type, expected):
    assert decode_reviews(body, content_type) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"x", "application/xml", 415, "supported Content-Types: text/plain, application/json"),
        (b"x", None, 415, "no Content-Type"),
        (b"{nope", "application/json", 400, "not valid JSON"),
        (b'{"instances": 3}', "application/json", 400, "JSON must be"),
        (b'{"instances": [3]}', "application/json", 400, "instance 0: a review must be a string"),
        (
            b'{"instances": ["ok", "  "]}',
            "application/json",
            400,
            "instance 1: the review is empty",
        ),
        (b'{"instances": []}', "application/json", 400, "holds no reviews"),
        (b"   ", "text/plain", 400, "the review is empty"),
        (b"\xff\xfe bad", "text/plain", 400, "not valid UTF-8"),
        (b"a,b\n", "text/csv", 400, "CSV row 1 has 2 columns"),
        (b'"unclosed\n', "text/csv", 400, "not valid CSV"),
        (b'"ok"\n{bad\n', "application/jsonlines", 400, "JSON line 2"),
        (b'{"title": "x"}', "application/json", 400, "JSON must be"),
        (b'[{"title": "x"}]', "application/json", 400, "needs a 'text' field"),
    ],
)
def test_a_bad_body_is_a_client_error_with_its_status(body, content_type, status, message):
    with pytest.raises(ClientError, match=message) as raised:
        decode_reviews(body, content_type)
    assert raised.value.status == status


def test_too_many_reviews_or_too_many_bytes_is_413():
    with pytest.raises(ClientError) as raised:
        decode_reviews(json.dumps(["ok"] * 11).encode(), "application/json", max_reviews=10)
    assert raised.value.status == 413
    with pytest.raises(ClientError) as raised:
        decode_reviews(b"x" * (6 * 1024 * 1024 + 1), "text/plain")
    assert raised.value.status == 413


@pytest.mark.parametrize(
    ("accept", "expected"),
    [(None, JSON), ("*/*", JSON), ("application/json", JSON), ("text/plain", TEXT),
     ("text/html, text/plain;q=0.9", TEXT), ("application/jsonlines", JSON_LINES)],
)  # fmt: skip
def test_accept_negotiation(accept, expected):
    assert negotiate(accept) == expected


def test_an_unsupported_accept_is_415():
    with pytest.raises(ClientError, match="supported Accept types") as raised:
        negotiate("image/png")
    assert raised.value.status == 415


def test_responses_in_each_format():
    predictions = [
        {"label": "positive", "probability": 0.9},
        {"label": "negative", "probability": 0.2},
    ]
    assert encode_predictions(predictions, TEXT) == b"1\n0"
    assert json.loads(encode_predictions(predictions, JSON, {"variant": "a"})) == {
        "predictions": predictions,
        "variant": "a",
    }
    lines = encode_predictions(predictions, JSON_LINES).decode().splitlines()
    assert [json.loads(line) for line in lines] == predictions


def test_media_type_strips_parameters_and_maps_aliases():
    assert media_type("Text/CSV; header=absent") == "text/csv"
    assert media_type("application/jsonl") == "application/jsonlines"
    assert media_type(None) == ""
