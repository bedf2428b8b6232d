"""HTTP helpers shared by the endpoint's routes and the page's: one error shape, one bounded
body reader."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from critic.serving.codec import MAX_BODY_BYTES, ClientError, encode_error


def limit_text(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


ERROR_TYPE = "x-amzn-ErrorType"
MODEL_ERROR_STATUS = 424
"""What SageMaker's runtime answers when the container answered an error: a ModelError that
quotes the container's status and body (critic.serving.invocations.model_error)."""


def error_type(status: int) -> str:
    """The type AWS SDKs read from an error's ``x-amzn-ErrorType`` header: boto3 then raises
    that exception (``ValidationError``, ``ModelError``) with our message, as for SageMaker's."""
    return "ModelError" if status >= 500 or status == MODEL_ERROR_STATUS else "ValidationError"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        encode_error(status, message),
        status_code=status,
        media_type="application/json",
        headers={ERROR_TYPE: error_type(status), **(headers or {})},
    )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (413) as soon as it passes ``limit`` bytes."""
    return await read_asgi_body(request.receive, request.headers.get("content-length"), limit)


async def read_asgi_body(receive, declared: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body from ASGI's ``receive``: a declared length (``Content-Length``) over ``limit``
    is refused (413) before a byte is read, an undeclared one as soon as it passes it; a
    client that leaves before sending it all is a 499."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ClientError(413, f"the body is over {limit_text(limit)}")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientError(499, "the client closed the connection")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ClientError(413, f"the body is over {limit_text(limit)}")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def install_error_handlers(app) -> None:
    """Every error an app answers in the one shape above: routing's 404 and 405, and a bad
    query parameter's 422, as JSON with a ``message``."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        return error_response(422, f"invalid request: {first.get('msg', 'bad parameters')}")
