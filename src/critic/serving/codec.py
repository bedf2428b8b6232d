"""Request bodies in, response bodies out: the content types of the hosting contract.

Shared by the local endpoint and by the handler that runs inside SageMaker's PyTorch
container, so both accept and answer exactly the same things. Pure functions: bytes and
header values in, reviews or bytes out, a :class:`ClientError` (with its HTTP status) for
anything the client got wrong.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import orjson

from critic.config import parse_boolean
from critic.data.text import has_words
from critic.errors import CriticError

JSON = "application/json"
JSON_LINES = "application/jsonlines"
CSV = "text/csv"
TEXT = "text/plain"

REQUEST_TYPES = (TEXT, JSON, CSV, JSON_LINES)
RESPONSE_TYPES = (JSON, TEXT, JSON_LINES)
# Other spellings clients send for the same thing.
_ALIASES = {
    "application/x-jsonlines": JSON_LINES,
    "application/jsonl": JSON_LINES,
    "application/x-ndjson": JSON_LINES,
    "text/x-csv": CSV,
    "application/csv": CSV,
}
REVIEW_KEYS = ("text", "review")
"""The keys a JSON object may hold its review under (``{"text": ...}``), in order of preference."""
MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoints refuse larger payloads


class ClientError(CriticError):
    """A request the client got wrong; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    if not header:
        return ""
    base = header.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def negotiate(accept: str | None) -> str:
    """The response type for an Accept header: the first supported one it lists."""
    if not accept:
        return JSON
    for part in accept.split(","):
        candidate = media_type(part)
        if candidate in ("*/*", "application/*", ""):
            return JSON
        if candidate == "text/*":
            return TEXT
        if candidate in RESPONSE_TYPES:
            return candidate
    raise ClientError(
        415, f"cannot answer in {accept!r}; supported Accept types: {', '.join(RESPONSE_TYPES)}"
    )


def charset(header: str | None) -> str:
    """The charset a Content-Type names (``text/plain; charset=latin-1``), else UTF-8 (what
    JSON always is, and what SageMaker's clients send)."""
    for parameter in (header or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"'):
            return value.strip().strip('"')
    return "UTF-8"


def _text(body: bytes | str, encoding: str = "UTF-8") -> str:
    if isinstance(body, str):
        return body
    try:
        # codecs.decode reaches the non-text codecs too (base64, zlib), which bytes.decode
        # refuses with a LookupError: one error for both.
        codecs.lookup(encoding)
        return body.decode(encoding)
    except LookupError:
        raise ClientError(415, f"unknown charset {encoding!r}; send UTF-8") from None
    except UnicodeError as error:  # UnicodeDecodeError, and the bare UnicodeError of idna
        where = f" (byte {error.start})" if isinstance(error, UnicodeDecodeError) else ""
        raise ClientError(400, f"the body is not valid {encoding}{where}") from None


def parse_json(body: bytes | str, what: str = "the body") -> object:
    """JSON from a client, or a 400 that says why: the one parser of every JSON the endpoint
    and the page read. orjson refuses nesting past 1,024 levels with an error, where the
    standard library recursed until a RecursionError (a 500)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ClientError(400, f"{what} is not valid JSON ({error})") from None


def _review(value: object, where: str) -> str:
    if isinstance(value, dict):
        for key in REVIEW_KEYS:
            if key in value:
                value = value[key]
                break
        else:
            raise ClientError(400, f"{where}: an object needs a 'text' field")
    if not isinstance(value, str):
        raise ClientError(400, f"{where}: a review must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ClientError(400, f"{where}: the review is empty")
    if not has_words(value):
        raise ClientError(
            400, f"{where}: the review has no words to judge (only markup, symbols or emoji)"
        )
    return value


def decode_reviews(
    body: bytes | str, content_type: str | None, max_reviews: int = 1000
) -> list[str]:
    """The reviews in a request body.

    * ``text/plain``: the whole body is one review;
    * ``application/json``: ``{"instances": [...]}``, a list, or one JSON string; items are
      strings or objects with a ``text`` field;
    * ``text/csv``: one review per row, one column (quote reviews that contain commas);
    * ``application/jsonlines``: one JSON string (or object with ``text``) per line.

    The body is read in the Content-Type's charset (UTF-8 when it names none). A review that
    is empty, or has no words once its HTML is gone, is refused with the whole request (a 400
    naming it): answering the other reviews of a request and not that one would shift every
    answer after it against its review.
    """
    kind = media_type(content_type)
    if kind not in REQUEST_TYPES:
        shown = content_type or "no Content-Type"
        raise ClientError(
            415, f"cannot read {shown!r}; supported Content-Types: {', '.join(REQUEST_TYPES)}"
        )
    if len(body) > MAX_BODY_BYTES:
        raise ClientError(413, f"the body is over {MAX_BODY_BYTES // (1024 * 1024)} MB")
    text = _text(body, charset(content_type))
    if kind == TEXT:
        reviews = [_review(text, "the body")]
    elif kind == JSON:
        payload = parse_json(text)
        if isinstance(payload, dict) and "instances" in payload:
            payload = payload["instances"]
        elif isinstance(payload, dict) and any(key in payload for key in REVIEW_KEYS):
            payload = [payload]
        if isinstance(payload, str):
            payload = [payload]
        if not isinstance(payload, list):
            raise ClientError(
                400, 'JSON must be {"instances": [...]}, a list of reviews or one review string'
            )
        reviews = [_review(item, f"instance {i}") for i, item in enumerate(payload)]
    elif kind == CSV:
        try:
            rows = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if row]
        except csv.Error as error:
            raise ClientError(400, f"the body is not valid CSV ({error})") from None
        for number, row in enumerate(rows, start=1):
            if len(row) != 1:
                raise ClientError(
                    400, f"CSV row {number} has {len(row)} columns; send one quoted review per row"
                )
        reviews = [_review(row[0], f"CSV row {number}") for number, row in enumerate(rows, start=1)]
    else:
        reviews = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            item = parse_json(line, f"JSON line {number}")
            reviews.append(_review(item, f"JSON line {number}"))
    if not reviews:
        raise ClientError(400, "the request holds no reviews")
    if len(reviews) > max_reviews:
        raise ClientError(413, f"{len(reviews)} reviews in one request; the most is {max_reviews}")
    return reviews


MAX_CUSTOM_ATTRIBUTES = 1024  # SageMaker's limit on X-Amzn-SageMaker-Custom-Attributes


def check_custom_attributes(value: str | None) -> str | None:
    """SageMaker's rule for the custom attributes a client passes (and gets echoed back): at
    most 1,024 visible ASCII characters."""
    if value is None:
        return None
    if len(value) > MAX_CUSTOM_ATTRIBUTES:
        raise ClientError(
            400,
            f"X-Amzn-SageMaker-Custom-Attributes is {len(value)} characters; "
            f"the most is {MAX_CUSTOM_ATTRIBUTES}",
        )
    if not all(" " <= character <= "~" for character in value):
        raise ClientError(
            400, "X-Amzn-SageMaker-Custom-Attributes must be visible ASCII characters"
        )
    return value


def wants_explanation(query_value: str | None, custom_attributes: str | None) -> bool:
    """``?explain=true``, or ``explain=true`` among the custom attributes (``a=1;explain=true``),
    which is how a client asks through SageMaker, whose runtime API passes no query string.

    Any other value is refused: a typo such as ``explain=ture`` silently answering without
    word weights would look like a model that found no words worth naming."""
    values = [query_value or ""]
    for pair in (custom_attributes or "").split(";"):
        key, _, value = pair.partition("=")
        if key.strip().lower() == "explain":
            values.append(value)
    asked = False
    for value in values:
        if not value.strip():
            continue  # ?explain= and a bare explain= say nothing
        try:
            asked = parse_boolean(value, "explain") or asked
        except CriticError:
            raise ClientError(400, f"explain must be true or false, got {value!r}") from None
    return asked


def encode_reviews(
    reviews: str | Sequence[str], content_type: str | None = None
) -> tuple[bytes, str]:
    """The request body and its media type for one review (a str) or several: the inverse of
    :func:`decode_reviews`, for clients (``critic invoke``).

    Without ``content_type``, one review goes as ``text/plain`` and a list as
    ``application/json`` ``{"instances": [...]}``. A mistake is a :class:`CriticError`: it is
    the caller's, before any request is made.
    """
    if isinstance(reviews, str):
        texts, single = [reviews], True
    elif isinstance(reviews, Sequence) and not isinstance(reviews, bytes):
        texts, single = list(reviews), False
    else:
        raise CriticError(
            f"reviews must be a string or a list of strings, not {type(reviews).__name__}"
        )
    if not texts:
        raise CriticError("no reviews to send")
    for number, text in enumerate(texts, start=1):
        if not isinstance(text, str):
            raise CriticError(f"review {number} is a {type(text).__name__}, not a string")
        if not text.strip():
            raise CriticError(f"review {number} is empty")
    kind = media_type(content_type or (TEXT if single else JSON))
    if kind == JSON:
        body = json.dumps({"instances": texts}, ensure_ascii=False)
    elif kind == TEXT:
        if len(texts) > 1:
            raise CriticError(
                f"text/plain carries one review and {len(texts)} were given: send them as "
                "application/json (the default for a list)"
            )
        body = texts[0]
    elif kind == CSV:
        buffer = io.StringIO()
        csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([t] for t in texts)
        body = buffer.getvalue()
    elif kind == JSON_LINES:
        body = "".join(json.dumps(text, ensure_ascii=False) + "\n" for text in texts)
    else:
        raise CriticError(
            f"cannot send reviews as {content_type!r}; supported: {', '.join(REQUEST_TYPES)}"
        )
    data = body.encode("utf-8")
    if len(data) > MAX_BODY_BYTES:
        raise CriticError(
            f"the request is {len(data) / 1e6:.1f} MB; SageMaker endpoints take at most "
            f"{MAX_BODY_BYTES // (1024 * 1024)} MB a request: send the reviews in smaller batches"
        )
    return data, kind


def encode_predictions(
    predictions: Sequence[dict], accept: str, extra: dict | None = None
) -> bytes:
    """A response body: JSON ``{"predictions": [...]}``, JSON lines, or "1"/"0" per review."""
    if accept == TEXT:
        # What the reference project's Lambda and page expect: 1 = positive, one per line.
        return "\n".join("1" if p["label"] == "positive" else "0" for p in predictions).encode()
    # orjson writes the same JSON as json.dumps(ensure_ascii=False) about ten times faster:
    # for a 100-review answer with word weights that is milliseconds on the event loop.
    if accept == JSON_LINES:
        return b"".join(orjson.dumps(p) + b"\n" for p in predictions)
    return orjson.dumps({"predictions": list(predictions), **(extra or {})})


def decode_predictions(body: bytes, content_type: str | None) -> Any:
    """An endpoint's answer parsed as its Content-Type says, for clients (``critic invoke``):
    JSON as Python objects, JSON lines as a list, any text as str, anything else as bytes.

    The inverse of :func:`encode_predictions`; it reads other answers too (``+json`` types,
    error bodies), since the client cannot know which container answered."""
    kind = media_type(content_type)
    try:
        if kind == JSON or kind.endswith("+json"):
            return json.loads(body.decode("utf-8"))
        if kind == JSON_LINES:
            return [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
        if kind.startswith("text/"):
            return body.decode("utf-8", errors="replace")
    except (ValueError, UnicodeDecodeError) as error:
        preview = body[:200].decode("utf-8", errors="replace")
        message = f"the endpoint answered {content_type} that does not parse ({error}): {preview}"
        raise CriticError(" ".join(message.split())) from None  # one line, as printed
    return body


def encode_error(status: int, message: str) -> bytes:
    # "message" is the field AWS SDKs read from an error body.
    return json.dumps({"status": status, "message": message}, ensure_ascii=False).encode()
