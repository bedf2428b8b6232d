"""critic.serving.http on its own: the one error shape every route answers with, and the body
reader that refuses a body one byte over its limit, whether or not the client declared its
length."""

import json

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from critic.serving.codec import MAX_BODY_BYTES, ClientError
from critic.serving.http import error_response, read_body

LIMIT = 2 * 1024  # what the message says it is: "2 KB"


@pytest.fixture(scope="module")
def client():
    """An app with one route that echoes what read_body gives it, with a small limit."""
    app = FastAPI()
    app.state.declared = []  # each request's Content-Length header, to show which path ran

    @app.post("/echo")
    async def echo(request: Request):
        app.state.declared.append(request.headers.get("content-length"))
        try:
            body = await read_body(request, limit=LIMIT)
        except ClientError as error:
            return error_response(error.status, error.message)
        return {"size": len(body), "first": body[:1].decode(), "last": body[-1:].decode()}

    @app.post("/echo-mb")
    async def echo_default_limit(request: Request):
        try:
            return {"size": len(await read_body(request))}
        except ClientError as error:
            return error_response(error.status, error.message)

    with TestClient(app) as test_client:
        yield test_client


def chunks(size: int, chunk: int = 300):
    """A body of ``size`` bytes sent without Content-Length (chunked), ``chunk`` at a time."""
    for start in range(0, size, chunk):
        yield b"x" * min(chunk, size - start)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, "ValidationError"), (413, "ValidationError"), (424, "ModelError"), (503, "ModelError")],
)
def test_an_error_is_json_with_its_status_and_message_and_names_its_type_for_aws_sdks(
    status, error_type
):
    response = error_response(status, "the review is empty — “quoted”")
    assert response.status_code == status
    assert response.media_type == "application/json"
    assert response.headers["x-amzn-ErrorType"] == error_type
    assert json.loads(response.body) == {
        "status": status,
        "message": "the review is empty — “quoted”",
    }


def test_extra_headers_join_the_error_and_may_replace_its_type():
    response = error_response(401, "no", {"WWW-Authenticate": "Bearer"})
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["x-amzn-ErrorType"] == "ValidationError"
    replaced = error_response(429, "slow down", {"x-amzn-ErrorType": "ThrottlingException"})
    assert replaced.headers["x-amzn-ErrorType"] == "ThrottlingException"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_of_exactly_the_limit_is_read_whole(client, declared):
    body = b"a" + b"x" * (LIMIT - 2) + b"z"
    response = client.post("/echo", content=body if declared else iter([body[:700], body[700:]]))
    assert client.app.state.declared[-1] == (str(LIMIT) if declared else None)
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT, "first": "a", "last": "z"}


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_one_byte_over_the_limit_is_413(client, declared):
    response = client.post("/echo", content=b"x" * (LIMIT + 1) if declared else chunks(LIMIT + 1))
    assert client.app.state.declared[-1] == (str(LIMIT + 1) if declared else None)
    assert response.status_code == 413
    assert response.headers["x-amzn-ErrorType"] == "ValidationError"
    assert response.json() == {"status": 413, "message": "the body is over 2 KB"}


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(client):
    # The header alone decides: what follows it is never read.
    response = client.post("/echo", content=b"short", headers={"Content-Length": str(LIMIT + 1)})
    assert response.status_code == 413


def test_the_default_limit_is_sagemakers_6_mb(client):
    assert client.post("/echo-mb", content=b"x" * MAX_BODY_BYTES).json() == {"size": MAX_BODY_BYTES}
    over = client.post("/echo-mb", content=chunks(MAX_BODY_BYTES + 1, chunk=1 << 20))
    assert over.status_code == 413
    assert over.json()["message"] == "the body is over 6 MB"
