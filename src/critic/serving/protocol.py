"""uvicorn's HTTP protocol, writing each answer to the socket once.

uvicorn (httptools) writes an answer's status line and headers when the app sends
``http.response.start`` and its body when it sends ``http.response.body``: two writes, two
``send()`` calls and two TCP segments for every small answer. On loopback each ``send()``
also runs the receiver's side of TCP in the sender's call, so the extra one is not cheap: a
bare ASGI app on two workers answered 27,100 and 32,000 requests/s at 64 clients with
uvicorn's protocol, 35,500 and 42,200 with this one, taking turns on the same cores
(docs/benchmarks.md, issue 25), the lone request's p50 unchanged.

:class:`OneWriteProtocol` holds the status line and headers back until the body's first
write and sends both in one. Nothing else changes: what is written, and when the answer is
complete, are uvicorn's own. An answer with no body write (a ``HEAD``) sends its headers once
the app's body message is handled; a streamed answer sends them with its first chunk; the
``100 Continue`` interim answer, written before any answer starts, is not held.

It works on uvicorn's request cycle (its ``transport``, and the ``send`` it hands the app),
checked against uvicorn 0.55; a cycle without a ``transport`` is left as uvicorn made it.
tests/serving/test_protocol.py counts the writes and compares every byte with uvicorn's own
protocol, so a uvicorn that changes either shows there.
An answer's headers wait for its first body message: a streamed answer whose first chunk
comes late sends its headers late too (critic streams none).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

START = "http.response.start"


class _HeldHeaders:
    """The cycle's view of the socket: while ``holding``, what is written is kept, and it goes
    out in front of the next write."""

    __slots__ = ("held", "holding", "transport")

    def __init__(self, transport: Any):
        self.transport = transport
        self.held = b""
        self.holding = False

    def write(self, data: bytes) -> None:
        if self.holding:
            self.held += data
            return
        if self.held:
            data, self.held = self.held + data, b""
        self.transport.write(data)

    def flush(self) -> None:
        if self.held:
            held, self.held = self.held, b""
            self.transport.write(held)

    def close(self) -> None:
        # uvicorn closes the socket inside the body's send when the client asked for it
        # (Connection: close): what is held goes first.
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing(), get_extra_info() ...
        return getattr(self.transport, name)


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with each answer's headers and body in one write. Give it
    as uvicorn's ``http`` (``uvicorn.Config(http=OneWriteProtocol)``)."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new cycle, its task created but not yet run (or queued behind a pipelined one):
        # nothing has been written for it.
        if cycle is not before and cycle is not None and hasattr(cycle, "transport"):
            _hold_headers(cycle)


def _hold_headers(cycle: Any) -> None:
    socket_view = _HeldHeaders(cycle.transport)
    send = cycle.send  # uvicorn's, bound to the cycle

    async def one_write_send(message: Any) -> None:
        if message["type"] == START:
            socket_view.holding = True
            try:
                await send(message)
            finally:
                socket_view.holding = False
            return
        await send(message)
        socket_view.flush()  # a HEAD answer writes no body: its headers go now

    cycle.transport = socket_view
    # run_asgi hands the app self.send, which finds this before the class's method.
    cycle.send = one_write_send
