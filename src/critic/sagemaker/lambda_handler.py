"""An AWS Lambda function between API Gateway and a critic endpoint on SageMaker.

The reference project's path to a web page: API Gateway (a REST API with Lambda proxy
integration) hands each HTTP request to this function as an event; the function asks the
SageMaker endpoint named by ``CRITIC_ENDPOINT_NAME`` with ``invoke_endpoint`` and answers in
the shape API Gateway turns back into an HTTP response (``statusCode``, ``headers``,
``body``), with CORS headers so that a page on another origin may call it.

With ``CRITIC_FEEDBACK_TABLE`` set, it also takes votes on its answers, in the DynamoDB table
every ``critic serve --feedback-db dynamodb://TABLE`` shares: each answer carries an id made
with the table's key, so the servers accept the function's ids and the function theirs, and a
vote counts once wherever it is sent.

The Python standard library and boto3, which Lambda's Python runtime provides, and for
feedback the few light modules of critic that record votes (critic.serving.ab.dynamodb and
what it imports; no numpy): ``critic package --lambda api.zip`` zips this file with them, so
that the function records votes with the very code the servers use. critic is imported only
when a table is set, so the review path pays nothing for it.

    POST /   body: a review as text, or JSON: "a review", ["one", "two"], {"text": ...},
             {"review": ...} or {"instances": [...]}; base64 when API Gateway says so.
             ?explain=true adds each word's weight; ?variant=NAME (or the header
             X-Amzn-SageMaker-Target-Variant) asks one production variant.
    200      {"predictions": [...], "variant": "<the variant that answered>"}; with a
             feedback table each prediction has an "id" (and one prediction's is also in
             the X-Critic-Answer-Id header)
    400      the request is unusable: {"message": ...}
    502/503  the endpoint failed or throttled (503 also: the feedback table cannot be read)

    POST .../feedback   JSON {"review", "variant", "label", "feedback": "right"|"wrong",
             "answer_id", optional "probability", "rating", "model"}: one vote per answer id
    201      {"id": <the vote's number>, "variant": ...}
    4xx      {"message": ...}: 400 bad JSON, 403 an id not issued for that variant and label
             or an Origin other than CRITIC_ALLOWED_ORIGIN, 404 no feedback table, 409 a second
             vote, 413 too big, 415 not JSON, 422 a missing or bad field
    503      DynamoDB failed: {"message": ...}

Settings (the function's environment): CRITIC_ENDPOINT_NAME (required),
CRITIC_ALLOWED_ORIGIN (CORS, default ``*``), CRITIC_TIMEOUT_S (default 55; API Gateway gives
up after 29 s on its default integration timeout, Lambda at its own timeout),
CRITIC_FEEDBACK_TABLE (``TABLE`` or ``dynamodb://TABLE[?region=R]``; unset: no feedback).
"""

from __future__ import annotations

import base64
import binascii
import json
import os

ENDPOINT_VARIABLE = "CRITIC_ENDPOINT_NAME"
ORIGIN_VARIABLE = "CRITIC_ALLOWED_ORIGIN"
TIMEOUT_VARIABLE = "CRITIC_TIMEOUT_S"
FEEDBACK_VARIABLE = "CRITIC_FEEDBACK_TABLE"
# Where a JSON body may hold its reviews: the endpoint's keys (critic.serving.codec's
# "instances" and REVIEW_KEYS, held by a test) and Hugging Face's "inputs".
PAYLOAD_KEYS = ("instances", "text", "review", "inputs")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
TARGET_HEADER = "x-amzn-sagemaker-target-variant"
MAX_BODY_BYTES = 6 * 1024 * 1024  # what a SageMaker real-time endpoint accepts
MAX_REVIEWS = 1000
MAX_FEEDBACK_BYTES = 256 * 1024  # as critic.web.routes
MAX_REVIEW_CHARS = 100_000
FEEDBACK_ROUTE = "/feedback"
THROTTLED = ("ThrottlingException", "ServiceUnavailable", "ServiceUnavailableException")

_runtime = None  # made on the first request, kept while Lambda keeps the function warm
_feedback = None  # (table setting, store, AnswerIds): made once, like _runtime


class Refusal(Exception):
    """A request answered with an error: its HTTP status, and a message that says why."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequest(Refusal, ValueError):
    """The request cannot be asked of the model; its message says why."""


def handler(event: dict, context: object = None) -> dict:
    """Lambda's entry point for an API Gateway proxy event."""
    if _method(event) == "OPTIONS":  # a browser's CORS preflight
        return _response(204, None)
    if _path(event).rstrip("/").endswith(FEEDBACK_ROUTE):
        return post_feedback(event)
    endpoint = os.environ.get(ENDPOINT_VARIABLE, "").strip()
    if not endpoint:
        return _response(500, {"message": f"the function has no {ENDPOINT_VARIABLE} set"})
    try:
        reviews = read_reviews(event)
        params = _invocation(event, endpoint, reviews)
        # Before the endpoint is asked: an answer that could not carry its id is not given.
        answers = _feedback_store()[1] if _table_setting() else None
    except Refusal as error:
        return _response(error.status, {"message": str(error)})
    return _invoke(endpoint, params, answers)


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
        except (ValueError, RecursionError) as error:  # RecursionError: [[[[...]]]] nested deep
            raise BadRequest(_one_line(f"the body is not valid JSON: {error}")) from None
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


def _invoke(endpoint: str, params: dict, answers=None) -> dict:
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
    headers = {}
    if isinstance(answer, dict):
        answer["variant"] = response.get("InvokedProductionVariant")
        if answers is not None:
            from critic.serving.ab.answers import ID_HEADER

            ids = _issue_ids(answers, answer, pinned="TargetVariant" in params)
            if len(ids) == 1:
                headers = {ID_HEADER: ids[0], "Access-Control-Expose-Headers": ID_HEADER}
    return _response(200, answer, headers)


def _issue_ids(answers, answer: dict, pinned: bool) -> list[str]:
    """An id of the table's key on each prediction of the variant that answered, in place
    of any the model's server gave (made with its own key, or from weights it cannot know:
    SageMaker draws the variant). So an id made here says only whether the client named the
    variant."""
    variant = answer.get("variant")
    predictions = answer.get("predictions")
    if not isinstance(variant, str) or not variant or not isinstance(predictions, list):
        return []
    ids = []
    for prediction in predictions:
        if isinstance(prediction, dict) and prediction.get("label") in ("positive", "negative"):
            prediction["id"] = answers.issue(variant, prediction["label"], pinned=pinned)
            ids.append(prediction["id"])
    return ids


# --- Feedback: votes on the answers, in the DynamoDB table the servers share ----------------


def post_feedback(event: dict) -> dict:
    """``POST .../feedback``: one verdict on one answer this function (or a server on the
    same table) gave, checked against its id and recorded once."""
    if not _table_setting():
        return _response(404, {"message": f"feedback is off: set {FEEDBACK_VARIABLE}"})
    if _method(event) != "POST":
        return _response(405, {"message": "send feedback with POST"}, {"Allow": "OPTIONS,POST"})
    from critic.serving.ab.answers import allocation
    from critic.serving.ab.votes import DuplicateFeedback, FeedbackError

    try:
        _refuse_cross_site(event)
        vote = read_vote(event)
        store, answers = _feedback_store()
    except Refusal as error:
        return _response(error.status, {"message": str(error)})
    if not answers.check(vote["answer_id"], vote["variant"], vote["label"]):
        message = "answer_id is not an answer this endpoint gave for that variant and label"
        return _response(403, {"message": message})
    share, pinned = allocation(vote["answer_id"])
    try:
        number = store.record(**vote, share=share, pinned=pinned)
    except DuplicateFeedback as error:
        return _response(409, {"message": _one_line(error)})
    except FeedbackError as error:
        return _response(503, {"message": _one_line(f"feedback could not be stored: {error}")})
    return _response(201, {"id": number, "variant": vote["variant"]})


def _refuse_cross_site(event: dict) -> None:
    """A page on another origin than CRITIC_ALLOWED_ORIGIN may not vote through a user's
    browser (a browser names its page in Origin; a script sends none and is let through).
    With ``*`` any page may: the ids are unforgeable, and a page can only vote on answers
    it was given."""
    allowed = (os.environ.get(ORIGIN_VARIABLE) or "*").strip()
    origin = _header(event, "origin")
    if allowed != "*" and origin and origin.rstrip("/") != allowed.rstrip("/"):
        raise Refusal(
            f"feedback from another site is refused: Origin {origin!r} is not {allowed}", 403
        )


def read_vote(event: dict) -> dict:
    """The vote in the event's JSON body, as ``record`` takes it, or a Refusal that says
    what is wrong with it (the fields and limits of critic.web.routes.Feedback)."""
    from critic.serving.ab.votes import LABELS, VERDICTS  # in the zip, beside this file

    if _media_type(_header(event, "content-type")) != "application/json":
        raise Refusal("feedback must be sent as application/json", 415)
    raw = _raw_body(event)
    if len(raw) > MAX_FEEDBACK_BYTES:
        raise Refusal(f"feedback is over {MAX_FEEDBACK_BYTES // 1024} KB", 413)
    try:
        payload = json.loads(raw.decode("utf-8")) if raw else None
    except UnicodeDecodeError:
        raise Refusal("the body is not UTF-8 text") from None
    except (ValueError, RecursionError) as error:
        raise Refusal(_one_line(f"the body is not valid JSON: {error}")) from None
    if not isinstance(payload, dict):
        raise Refusal("invalid feedback: body: send a JSON object", 422)

    def text(name: str, longest: int, required: bool = True) -> str | None:
        value = payload.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise Refusal(f"invalid feedback: {name}: give it as text, not empty", 422)
        if len(value) > longest:
            raise Refusal(f"invalid feedback: {name}: at most {longest} characters", 422)
        return value

    def choice(name: str, allowed: tuple[str, ...]) -> str:
        value = payload.get(name)
        if value not in allowed:
            raise Refusal(f"invalid feedback: {name}: one of {', '.join(allowed)}", 422)
        return value

    def number(name: str, low: float, high: float, whole: bool = False) -> float | None:
        value = payload.get(name)
        if value is None:
            return None
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        if fits and whole:
            fits = float(value).is_integer()
        if not fits or not low <= value <= high:
            kind = "a whole number" if whole else "a number"
            raise Refusal(f"invalid feedback: {name}: {kind} from {low:g} to {high:g}", 422)
        return int(value) if whole else float(value)

    return {
        "review": text("review", MAX_REVIEW_CHARS),
        "variant": text("variant", 63),
        "label": choice("label", LABELS),
        "feedback": choice("feedback", VERDICTS),
        "answer_id": text("answer_id", 64),
        "probability": number("probability", 0.0, 1.0),
        "rating": number("rating", 1, 10, whole=True),
        "model": text("model", 128, required=False),
    }


def _table_setting() -> str:
    return os.environ.get(FEEDBACK_VARIABLE, "").strip()


def _feedback_store():
    """The feedback store and its answer ids, opened on first use and kept while the
    function stays warm; a Refusal (500: the setting is wrong, 503: DynamoDB failed)."""
    global _feedback
    setting = _table_setting()
    if _feedback is not None and _feedback[0] == setting:
        return _feedback[1:]
    from critic.errors import CriticError
    from critic.serving.ab.answers import AnswerIds
    from critic.serving.ab.dynamodb import SCHEME, DynamoFeedbackStore, parse_url
    from critic.serving.ab.votes import FeedbackError

    spec = setting if setting.startswith(SCHEME) else f"{SCHEME}{setting}"
    try:
        parse_url(spec)
    except CriticError as error:
        raise Refusal(_one_line(f"{FEEDBACK_VARIABLE}: {error}"), 500) from None
    try:
        store = DynamoFeedbackStore(spec)
    except FeedbackError as error:
        raise Refusal(_one_line(f"the feedback table cannot be read: {error}"), 503) from None
    except CriticError as error:  # no boto3 region, and the like: the function's setup
        raise Refusal(_one_line(error), 500) from None
    _feedback = (setting, store, AnswerIds(store.answer_key))
    return _feedback[1:]


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


def _path(event: dict) -> str:
    # REST APIs (1.0) name it path; HTTP APIs (2.0) rawPath and requestContext.http.path.
    http = (event.get("requestContext") or {}).get("http") or {}
    return str(event.get("path") or event.get("rawPath") or http.get("path") or "")


def _raw_body(event: dict) -> bytes:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the body is marked base64 but does not decode") from None


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


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
