"""What the codec reads from a client: the declared charset, reviews with no words, and any
bytes at all (hypothesis) -- never an exception other than ClientError."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from critic.serving.codec import ClientError, charset, decode_reviews

REVIEW = "Un film très réussi, l'été dernier."


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "cp1252", "UTF-8", "iso-8859-15"])
def test_a_text_body_is_read_in_the_charset_it_declares(encoding):
    body = REVIEW.encode(encoding)
    assert decode_reviews(body, f"text/plain; charset={encoding}") == [REVIEW]


def test_json_and_csv_bodies_honour_the_charset_too():
    body = json.dumps({"instances": [REVIEW]}, ensure_ascii=False).encode("utf-16")
    assert decode_reviews(body, "application/json; charset=utf-16") == [REVIEW]
    assert decode_reviews(f'"{REVIEW}"\n'.encode("latin-1"), 'text/csv; charset="latin-1"') == [
        REVIEW
    ]


def test_without_a_charset_the_body_is_utf8():
    assert charset("text/plain") == "UTF-8"
    with pytest.raises(ClientError, match="not valid UTF-8") as error:
        decode_reviews(REVIEW.encode("latin-1"), "text/plain")
    assert error.value.status == 400


@pytest.mark.parametrize(
    ("content_type", "status", "message"),
    [
        ("text/plain; charset=klingon", 415, "unknown charset 'klingon'"),
        ("text/plain; charset=base64", 415, "unknown charset 'base64'"),
        ("text/plain; charset=ascii", 400, r"not valid ascii \(byte 10\)"),
    ],
)
def test_a_charset_that_cannot_read_the_body_is_a_clear_client_error(content_type, status, message):
    with pytest.raises(ClientError, match=message) as error:
        decode_reviews(REVIEW.encode("utf-8"), content_type)
    assert error.value.status == status


@pytest.mark.parametrize(
    "review",
    ["<br/><p></p><i> </i>", "😀😍👎", "\x01\x02\x7f", "!!! ??? ...", "&nbsp;&amp;", "___"],
)
def test_a_review_with_no_words_is_refused_not_judged(review):
    with pytest.raises(ClientError, match="no words to judge") as error:
        decode_reviews(review.encode(), "text/plain")
    assert error.value.status == 400


def test_in_a_many_review_request_the_review_with_no_words_is_named():
    body = json.dumps({"instances": ["Good film.", "😀", "Bad film."]}).encode()
    with pytest.raises(ClientError, match="instance 1: the review has no words"):
        decode_reviews(body, "application/json")


def test_a_review_with_one_word_among_the_symbols_is_judged():
    assert decode_reviews("😀 great 😀".encode(), "text/plain") == ["😀 great 😀"]


@given(
    body=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["text/plain", "application/json", "text/csv", "application/jsonlines", "text/html",
         "text/plain; charset=utf-16", "text/plain; charset=idna", "application/json; charset=x"]
    ),
)  # fmt: skip
@settings(max_examples=300, deadline=None, derandomize=True)
def test_any_bytes_give_reviews_or_a_client_error_never_another_exception(body, content_type):
    try:
        reviews = decode_reviews(body, content_type)
    except ClientError as error:
        assert 400 <= error.status < 500 and error.message
    else:
        assert reviews and all(isinstance(review, str) and review.strip() for review in reviews)
