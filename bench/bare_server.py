"""HTTP alone: the fastest answer uvicorn can give on this machine, for bench/limits.py.

    python -m uvicorn bare_server:app --app-dir bench --port 8082 --workers 2 \\
        --loop uvloop --http critic.serving.protocol:OneWriteProtocol --log-level warning

A bare ASGI app, no framework: ``POST /invocations`` reads the whole body and answers a
constant JSON prediction of about the size critic's is; ``GET /ping`` answers 200. Whatever
critic's endpoint does on top of this — decoding, routing, the model, metrics, ids — is what
its figures lose against this one's, on the same uvicorn, workers and cores.

With ``CRITIC_BARE_BUNDLE`` set it is **the model and HTTP, served**: the same bare app calls
``Predictor.predict`` on the body (on the event loop, one request at a time, as critic's
inline path does; torch on the worker's share of the cores, the backend in
``CRITIC_BACKEND``) and answers its prediction. Nothing else: no checks, no batching, no
metrics, no ids. A lone request costs it what the model costs inside a server that idles
between requests -- more than in a tight loop (a core that idled has cold caches) -- so
critic's lone p50 less this one's is what critic itself adds.
"""

from __future__ import annotations

import os

import orjson

ANSWER = (
    b'{"predictions":[{"label":"positive","probability":0.93,"score":0.91,"rating":8,'
    b'"id":"00000000000000000000000000000000"}],"variant":"AllTraffic","model":"bare"}'
)
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]


PREDICTOR = None  # the model, when CRITIC_BARE_BUNDLE names one


def load_model() -> None:
    global PREDICTOR
    bundle = os.environ.get("CRITIC_BARE_BUNDLE")
    if not bundle:
        return
    import torch

    from critic.inference.predictor import Predictor
    from critic.system import available_cores

    workers = int(os.environ.get("CRITIC_WORKERS", "1"))
    torch.set_num_threads(max(1, available_cores() // workers))
    PREDICTOR = Predictor.load(bundle, backend=os.environ.get("CRITIC_BACKEND", "torch"))
    PREDICTOR.predict(["a warm-up review"] * 8)


def answer(body: bytes) -> tuple[bytes, list]:
    if PREDICTOR is None:
        return ANSWER, JSON_HEADERS
    predictions = PREDICTOR.predict([body.decode("utf-8")])
    encoded = orjson.dumps({"predictions": predictions, "variant": "AllTraffic", "model": "bare"})
    return encoded, [(b"content-type", b"application/json"),
                     (b"content-length", b"%d" % len(encoded))]  # fmt: skip


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                load_model()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    # Read the body to its end, as any server that answers it must.
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/invocations" and scope["method"] == "POST":
        body, headers = answer(b"".join(chunks))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    status = 200 if scope["path"] == "/ping" else 404
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})
