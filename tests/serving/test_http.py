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


def messages(*chunks, then=None):
    """An ASGI ``receive`` giving ``chunks`` as the body (the last one ending it), then
    ``then`` (e.g. a disconnect) if given."""
    queue = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    if then is not None:
        queue[-1]["more_body"] = True
        queue.append(then)

    async def receive():
        return queue.pop(0)

    return receive


def test_the_asgi_body_reader_joins_chunks_and_refuses_past_the_limit_or_a_client_gone():
    import asyncio

    from critic.serving.http import read_asgi_body

    read = asyncio.run
    assert read(read_asgi_body(messages(b"ab", b"", b"cd"), None, limit=4)) == b"abcd"
    assert read(read_asgi_body(messages(b"x" * 4), "4", limit=4)) == b"x" * 4
    for declared, chunks in (("5", [b"x"]), (None, [b"xx", b"xxx"])):
        with pytest.raises(ClientError) as refused:
            read(read_asgi_body(messages(*chunks), declared, limit=4))
        assert (refused.value.status, refused.value.message) == (413, "the body is over 0 KB")
    with pytest.raises(ClientError) as gone:
        read(read_asgi_body(messages(b"ab", then={"type": "http.disconnect"}), None, limit=4))
    assert gone.value.status == 499


def test_an_invocation_reads_the_first_of_a_repeated_header_as_starlette_does():
    from starlette.datastructures import Headers

    from critic.serving.invocations import _wanted_headers

    raw = [(b"content-type", b"text/plain"), (b"x-other", b"1"), (b"content-type", b"text/csv"),
           (b"accept", b"application/json")]  # fmt: skip
    found = _wanted_headers(raw)
    assert found == {b"content-type": "text/plain", b"accept": "application/json"}
    assert found[b"content-type"] == Headers(raw=raw).get("content-type")
