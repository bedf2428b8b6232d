"""An AWS Lambda function between API Gateway and a critic endpoint on SageMaker.

The reference project's path to a web page: API Gateway (a REST API with Lambda proxy
integration) hands each HTTP request to this function as an event; the function asks the
SageMaker endpoint named by ``CRITIC_ENDPOINT_NAME`` with ``invoke_endpoint`` and answers in
the shape API Gateway turns back into an HTTP response (``statusCode``, ``headers``,
``body``), with CORS headers so that a page on another origin may call it.

Standalone on purpose: the Python standard library and boto3, which Lambda's Python runtime
provides, and nothing of critic -- ``critic package --lambda api.zip`` zips this one file.

    POST /   body: a review as text, or JSON: "a review", ["one", "two"], {"text": ...},
             {"review": ...} or {"instances": [...]}; base64 when API Gateway says so.
             ?explain=true adds each word's weight; ?variant=NAME (or the header
             X-Amzn-SageMaker-Target-Variant) asks one production variant.
    200      {"predictions": [...], "variant": "<the variant that answered>"}
    400      the request is unusable: {"message": ...}
    502/503  the endpoint failed or throttled: {"message": ...}

Settings (the function's environment): CRITIC_ENDPOINT_NAME (required),
CRITIC_ALLOWED_ORIGIN (CORS, default ``*``), CRITIC_TIMEOUT_S (default 55; API Gateway gives
up after 29 s on its default integration timeout, Lambda at its own timeout).
"""

from __future__ import annotations

import base64
import binascii
import json
import os

ENDPOINT_VARIABLE = "CRITIC_ENDPOINT_NAME"
ORIGIN_VARIABLE = "CRITIC_ALLOWED_ORIGIN"
TIMEOUT_VARIABLE = "CRITIC_TIMEOUT_S"
# Where a JSON body may hold its reviews: the endpoint's keys (critic.serving.codec's
# "instances" and REVIEW_KEYS, held by a test) and Hugging Face's "inputs".
PAYLOAD_KEYS = ("instances", "text", "review", "inputs")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
TARGET_HEADER = "x-amzn-sagemaker-target-variant"
MAX_BODY_BYTES = 6 * 1024 * 1024  # what a SageMaker real-time endpoint accepts
MAX_REVIEWS = 1000
THROTTLED = ("ThrottlingException", "ServiceUnavailable", "ServiceUnavailableException")

_runtime = None  # made on the first request, kept while Lambda keeps the function warm


class BadRequest(ValueError):
    """The request cannot be asked of the model; its message says why."""


def handler(event: dict, context: object = None) -> dict:
    """Lambda's entry point for an API Gateway proxy event."""
    if _method(event) == "OPTIONS":  # a browser's CORS preflight
        return _response(204, None)
    endpoint = os.environ.get(ENDPOINT_VARIABLE, "").strip()
    if not endpoint:
        return _response(500, {"message": f"the function has no {ENDPOINT_VARIABLE} set"})
    try:
        reviews = read_reviews(event)
        params = _invocation(event, endpoint, reviews)
    except BadRequest as error:
        return _response(400, {"message": str(error)})
    return _invoke(endpoint, params)


def read_reviews(event: dict) -> list[str]:
    """The reviews in the event's body, as text or JSON (base64 when API Gateway says so)."""
    body = event.get("body")
    if body is None or body == "":
        raise BadRequest("send a review: the request body is empty")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is marked base64 but does not decode") from None
    else:
        raw = body.encode("utf-8")
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"the body is over {MAX_BODY_BYTES // (1024 * 1024)} MB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    if "json" in _header(event, "content-type").lower():
        try:
            payload = json.loads(text)
        except ValueError as error:
            raise BadRequest(f"the body is not valid JSON: {error}") from None
        reviews = _reviews_of(payload)
    else:
        reviews = [text]
    if not reviews:
        raise BadRequest("send at least one review")
    if len(reviews) > MAX_REVIEWS:
        raise BadRequest(f"send at most {MAX_REVIEWS} reviews at once, got {len(reviews)}")
    for number, review in enumerate(reviews, 1):
        if not isinstance(review, str) or not review.strip():
            raise BadRequest(f"review {number} is empty or not text")
    return reviews


def _reviews_of(payload: object) -> list:
    if isinstance(payload, str):
        return [payload]
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in PAYLOAD_KEYS:
            if key in payload:
                return _reviews_of(payload[key])
    raise BadRequest('send a review as text, or JSON: "text", [...], {"text": ...}')


def _invocation(event: dict, endpoint: str, reviews: list[str]) -> dict:
    query = event.get("queryStringParameters") or {}
    params = {
        "EndpointName": endpoint,
        "Body": json.dumps({"instances": reviews}, ensure_ascii=False).encode("utf-8"),
        "ContentType": "application/json",
        "Accept": "application/json",
    }
    # The words of critic.config.parse_boolean: this file travels alone in the Lambda's zip
    # (standard library and boto3 only), so it cannot import them; a test holds them equal.
    explain = str(query.get("explain", "")).strip().lower()
    if explain not in ("", *TRUE_WORDS, *FALSE_WORDS):
        raise BadRequest(f"explain must be true or false, got {explain!r}")
    if explain in TRUE_WORDS:
        # SageMaker passes no query string to the model: explain travels as an attribute.
        params["CustomAttributes"] = "explain=true"
    target = query.get("variant") or _header(event, TARGET_HEADER)
    if target:
        params["TargetVariant"] = target
    return params


def _invoke(endpoint: str, params: dict) -> dict:
    from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

    try:
        response = _client().invoke_endpoint(**params)
        answer = json.loads(response["Body"].read())
    except ClientError as error:
        return _endpoint_error(endpoint, error)
    except ReadTimeoutError:
        return _response(504, {"message": f"endpoint {endpoint} did not answer in time"})
    except BotoCoreError as error:
        return _response(502, {"message": _one_line(f"endpoint {endpoint}: {error}")})
    except ValueError as error:
        return _response(502, {"message": f"endpoint {endpoint} answered no JSON: {error}"})
    if isinstance(answer, dict):
        answer["variant"] = response.get("InvokedProductionVariant")
    return _response(200, answer)


def _endpoint_error(endpoint: str, error) -> dict:
    """A failed InvokeEndpoint as the HTTP answer: the model's own 4xx stays the caller's
    mistake; anything else is the endpoint's (502), or a throttle (503)."""
    details = error.response.get("Error", {})
    code = details.get("Code", "")
    message = error.response.get("OriginalMessage") or details.get("Message") or str(error)
    try:  # critic's model answers {"status": ..., "message": ...}: show the message alone
        parsed = json.loads(message)
        message = parsed.get("message", message) if isinstance(parsed, dict) else message
    except (TypeError, ValueError):
        pass
    text = _one_line(f"endpoint {endpoint} failed: {code}: {message}")
    original = error.response.get("OriginalStatusCode")
    if code == "ModelError" and isinstance(original, int) and 400 <= original < 500:
        return _response(original, {"message": text})
    if code in THROTTLED:
        return _response(503, {"message": text}, {"Retry-After": "1"})
    return _response(502, {"message": text})


def _client():
    global _runtime
    if _runtime is None:
        import boto3
        from botocore.config import Config

        timeout = float(os.environ.get(TIMEOUT_VARIABLE) or 55)
        _runtime = boto3.client(
            "sagemaker-runtime",
            config=Config(read_timeout=timeout, retries={"mode": "standard", "max_attempts": 2}),
        )
    return _runtime


def _method(event: dict) -> str:
    # REST APIs (payload 1.0) name it httpMethod; HTTP APIs (2.0) under requestContext.http.
    http = (event.get("requestContext") or {}).get("http") or {}
    return str(event.get("httpMethod") or http.get("method") or "").upper()


def _header(event: dict, name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return value or ""
    return ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _response(status: int, payload: object, headers: dict | None = None) -> dict:
    return {
        "statusCode": status,
        "headers": {
            "Content-Type": "application/json",
            "Access-Control-Allow-Origin": os.environ.get(ORIGIN_VARIABLE) or "*",
            "Access-Control-Allow-Methods": "OPTIONS,POST",
            "Access-Control-Allow-Headers": "Content-Type,X-Amzn-SageMaker-Target-Variant",
            **(headers or {}),
        },
        "body": "" if payload is None else json.dumps(payload, ensure_ascii=False),
        "isBase64Encoded": False,
    }
