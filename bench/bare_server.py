"""HTTP alone: the fastest answer uvicorn can give on this machine, for bench/limits.py.

    python -m uvicorn bare_server:app --app-dir bench --port 8082 --workers 2 \\
        --loop uvloop --http httptools --log-level warning

A bare ASGI app, no framework: ``POST /invocations`` reads the whole body and answers a
constant JSON prediction of about the size critic's is; ``GET /ping`` answers 200. Whatever
critic's endpoint does on top of this — decoding, routing, the model, metrics, ids — is what
its figures lose against this one's, on the same uvicorn, workers and cores.
"""

from __future__ import annotations

ANSWER = (
    b'{"predictions":[{"label":"positive","probability":0.93,"score":0.91,"rating":8,'
    b'"id":"00000000000000000000000000000000"}],"variant":"AllTraffic","model":"bare"}'
)
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    # Read the body to its end, as any server that answers it must.
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"] == "/invocations" and scope["method"] == "POST":
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": ANSWER})
        return
    status = 200 if scope["path"] == "/ping" else 404
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})
