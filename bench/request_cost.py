"""Benchmark: critic's own CPU time per request, in one process, without a socket.

    python bench/request_cost.py runs/nbsvm [--requests 4000]

The endpoint's ASGI app (``critic.apps.endpoint.create_app``, started through its lifespan
as uvicorn starts it) is called directly with one 230-word review as ``text/plain``, and the
same variant's Predictor on the same review right after it; each is timed with this thread's
CPU clock (``time.thread_time``: what other processes do on the machine does not count). The
difference, request by request, is what critic adds to the model: reading the request,
routing, the batcher, the metrics, the answer id, encoding the answer. HTTP itself (uvicorn,
the socket) is not in it: bench/limits.py measures the whole.

Prints the medians and means in µs, and returns them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path


def _scope(app, body: bytes) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/invocations", "raw_path": b"/invocations",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080), "state": {}, "app": app,
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"text/plain"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip


async def _request(app, body: bytes) -> int:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(_scope(app, body), receive, send)
    return sent[0]["status"]


async def measure(bundle: Path, review: str, requests: int) -> dict:
    from critic.apps.endpoint import create_app
    from critic.serving.settings import ServerSettings
    from critic.serving.variants import VariantSpec

    app = create_app([VariantSpec("AllTraffic", bundle)], ServerSettings(feedback_db="off"))
    body = review.encode()
    async with app.router.lifespan_context(app):
        predictor = app.state.endpoint.router.variants["AllTraffic"].predictor
        status = await _request(app, body)
        if status != 200:
            raise SystemExit(f"request_cost: the endpoint answered {status}")
        for _ in range(200):  # warm both paths
            await _request(app, body)
            predictor.predict([review])
        whole, model = [], []
        for _ in range(requests):
            started = time.thread_time()
            await _request(app, body)
            whole.append(time.thread_time() - started)
            started = time.thread_time()
            predictor.predict([review])
            model.append(time.thread_time() - started)
    own = [w - m for w, m in zip(whole, model, strict=True)]
    return {
        "bundle": str(bundle),
        "requests": requests,
        "request_median_us": statistics.median(whole) * 1e6,
        "model_median_us": statistics.median(model) * 1e6,
        "critic_median_us": statistics.median(own) * 1e6,
        "critic_mean_us": statistics.mean(own) * 1e6,
    }


def main(argv: list[str] | None = None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serve_load import pick_reviews

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--sample", type=int, help="Pick the review from N embedded ones.")
    args = parser.parse_args(argv)
    review, _ = pick_reviews(count=1, sample=args.sample)
    result = asyncio.run(measure(args.bundle, review, args.requests))
    print(json.dumps(result))
    print(
        f"{args.bundle.name}: a request {result['request_median_us']:.0f} µs of CPU, the model "
        f"{result['model_median_us']:.0f}, critic's own {result['critic_median_us']:.0f} "
        f"(median; mean {result['critic_mean_us']:.0f})"
    )
    return result


if __name__ == "__main__":
    main()
