import json

import pytest

from critic.errors import CriticError
from critic.serving.codec import (
    CSV,
    JSON,
    JSON_LINES,
    MAX_BODY_BYTES,
    REQUEST_TYPES,
    TEXT,
    ClientError,
    decode_predictions,
    decode_reviews,
    encode_predictions,
    encode_reviews,
    media_type,
    negotiate,
)

# Reviews that break naive encoders: commas, quotes, line breaks, non-ASCII, leading spaces.
AWKWARD_REVIEWS = [
    "Good, not great.",
    'He said "fine", then left.',
    "Two lines:\nthe second one.",
    "  Très bien — 10/10 ★  ",
    '{"text": "not an object"}',
]


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


@pytest.mark.parametrize("content_type", REQUEST_TYPES)
def test_decoding_what_encode_reviews_wrote_gives_back_the_reviews(content_type):
    # text/plain carries one review; every other type carries them all.
    reviews = AWKWARD_REVIEWS[1:2] if content_type == TEXT else AWKWARD_REVIEWS
    body, kind = encode_reviews(reviews, content_type)
    assert kind == content_type
    assert decode_reviews(body, kind) == reviews


@pytest.mark.parametrize(
    ("reviews", "expected_type"), [("one review", TEXT), (["one", "two"], JSON)]
)
def test_without_a_content_type_one_review_goes_as_text_and_a_list_as_json(reviews, expected_type):
    body, kind = encode_reviews(reviews)
    assert kind == expected_type
    assert decode_reviews(body, kind) == ([reviews] if isinstance(reviews, str) else reviews)


def test_encode_reviews_reads_content_type_aliases_and_parameters():
    body, kind = encode_reviews(["a", "b"], "application/x-ndjson")
    assert (body, kind) == (b'"a"\n"b"\n', JSON_LINES)
    body, kind = encode_reviews(["a"], "Text/CSV; charset=utf-8")
    assert (body, kind) == (b'"a"\n', CSV)


@pytest.mark.parametrize(
    ("reviews", "content_type", "message"),
    [
        ([], None, "no reviews to send"),
        (b"bytes", None, "reviews must be a string or a list of strings, not bytes"),
        (["fine", 3], None, "review 2 is a int, not a string"),
        (["fine", "  "], None, "review 2 is empty"),
        (["a", "b"], TEXT, "text/plain carries one review and 2 were given"),
        ("a", "application/xml", "cannot send reviews as 'application/xml'; supported: text/plain"),
        (["x" * MAX_BODY_BYTES], None, "SageMaker endpoints take at most 6 MB a request"),
    ],
)
def test_reviews_that_cannot_be_sent_are_a_clear_error(reviews, content_type, message):
    with pytest.raises(CriticError) as raised:
        encode_reviews(reviews, content_type)
    assert message in str(raised.value)
    # The caller's mistake, found before any request: not an HTTP answer to send back.
    assert not isinstance(raised.value, ClientError)


PREDICTIONS = [
    {"label": "positive", "probability": 0.9, "words": [{"word": "très", "weight": 1.5}]},
    {"label": "negative", "probability": 0.2},
]


def test_decoding_what_encode_predictions_wrote_gives_back_the_answer():
    body = encode_predictions(PREDICTIONS, JSON, {"variant": "a"})
    assert decode_predictions(body, "application/json; charset=utf-8") == {
        "predictions": PREDICTIONS,
        "variant": "a",
    }
    assert (
        decode_predictions(encode_predictions(PREDICTIONS, JSON_LINES), JSON_LINES) == PREDICTIONS
    )
    assert decode_predictions(encode_predictions(PREDICTIONS, TEXT), TEXT) == "1\n0"


def test_other_answers_are_read_as_their_type_says():
    assert decode_predictions(b'{"a": 1}', "application/problem+json") == {"a": 1}
    assert decode_predictions(b'"x"\n', "application/x-ndjson") == ["x"]
    assert decode_predictions(b"\x89PNG", "image/png") == b"\x89PNG"
    assert decode_predictions(b"\x89PNG", None) == b"\x89PNG"


def test_an_answer_that_does_not_parse_is_one_line_with_a_preview():
    with pytest.raises(CriticError) as raised:
        decode_predictions(b'{"predictions":\n [', JSON)
    message = str(raised.value)
    assert message.startswith("the endpoint answered application/json that does not parse (")
    assert message.endswith('): {"predictions": [')
    assert "\n" not in message
