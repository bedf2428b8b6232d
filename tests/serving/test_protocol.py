"""OneWriteProtocol against uvicorn's own, on real loopback connections: the same bytes reach
the client, in fewer writes."""

import asyncio
import re

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from critic.serving.protocol import OneWriteProtocol

ANSWER = b'{"predictions":[{"label":"positive"}]}'


async def answer(scope, receive, send):
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    if scope["path"] == "/fail":
        raise RuntimeError("the app failed before it answered")
    headers = [(b"content-type", b"application/json")]
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"first,", "more_body": True})
        await send({"type": "http.response.body", "body": b"second"})
        return
    headers.append((b"content-length", b"%d" % len(ANSWER)))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


class Counted:
    """A transport that counts the protocol's writes, and passes them on."""

    def __init__(self, transport, writes):
        self._transport, self._writes = transport, writes

    def write(self, data):
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name):
        return getattr(self._transport, name)


async def exchange(protocol_class, request: bytes) -> tuple[bytes, list[bytes]]:
    """What a client reads for ``request`` from a loopback server with ``protocol_class``,
    and the writes the protocol made."""
    config = uvicorn.Config(answer, log_level="critical", lifespan="off")
    config.load()
    state, writes = ServerState(), []

    class Counting(protocol_class):
        def connection_made(self, transport):
            super().connection_made(Counted(transport, writes))

    server = await asyncio.get_running_loop().create_server(
        lambda: Counting(config, state, {}), "127.0.0.1", 0
    )
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), 10)  # the server closes: Connection: close
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return re.sub(rb"date: [^\r]*\r\n", b"", received), writes


def post(path: str, body: bytes = b"a fine film", extra: bytes = b"", close: bool = True) -> bytes:
    connection = b"connection: close\r\n" if close else b""
    return b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\n%s%scontent-length: %d\r\n\r\n%s" % (
        path.encode(),
        connection,
        extra,
        len(body),
        body,
    )


CASES = {
    # name: (request, writes with uvicorn's protocol, writes with OneWriteProtocol)
    "an answer": (post("/invocations"), 2, 1),
    "a HEAD answer (no body write)": (
        b"HEAD /invocations HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
        1,
        1,
    ),
    "a streamed answer": (post("/stream"), 3, 2),
    # The second request waits in uvicorn's pipeline while the first is answered.
    "two answers on one kept-alive connection": (
        post("/invocations", close=False) + post("/invocations"),
        4,
        2,
    ),
    "uvicorn's 500 for an app that failed": (post("/fail"), 2, 1),
}


@pytest.mark.parametrize("case", CASES)
def test_the_client_reads_the_same_bytes_from_fewer_writes(case):
    request, stock_writes, one_writes = CASES[case]
    stock, stock_made = asyncio.run(exchange(HttpToolsProtocol, request))
    ours, ours_made = asyncio.run(exchange(OneWriteProtocol, request))
    assert stock.startswith(b"HTTP/1.1 ") and ours == stock
    assert (len(stock_made), len(ours_made)) == (stock_writes, one_writes)
    assert ours_made[0].startswith(b"HTTP/1.1 ")


def test_a_100_continue_goes_out_at_once_before_the_answer():
    # curl sends Expect: 100-continue for a body over 1 KB and waits for the interim answer
    # before it sends the body: holding it back would stall the request.
    body = b"word " * 400
    request = post("/invocations", body, b"expect: 100-continue\r\n")
    ours, made = asyncio.run(exchange(OneWriteProtocol, request))
    stock, _ = asyncio.run(exchange(HttpToolsProtocol, request))
    assert ours == stock
    assert made[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert len(made) == 2 and made[1].startswith(b"HTTP/1.1 200 OK") and made[1].endswith(ANSWER)
