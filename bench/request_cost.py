"""Benchmark: critic's own CPU time per request, in one process, without a socket.

    python bench/request_cost.py runs/nbsvm [--requests 4000]

The endpoint's ASGI app (``critic.apps.endpoint.create_app``, started through its lifespan
as uvicorn starts it) is called directly with one 230-word review as ``text/plain``, and the
same variant's Predictor on the same review right after it; each is timed with this thread's
CPU clock (``time.thread_time``: what other processes do on the machine does not count). The
difference, request by request, is what critic adds to the model: reading the request,
routing, the batcher, the metrics, the answer id, encoding the answer. HTTP itself (uvicorn,
the socket) is not in it: bench/limits.py measures the whole.

That difference also holds how much more the model costs inside a request than called again
at once (colder caches), so the app is then timed once more with the model's answer
precomputed: the model costs nothing, and what is left is critic's own work alone.
``--multiprocess`` runs the app as one of several workers does (the weights' file and
prometheus-client's multiprocess files), the default of ``critic serve`` on two cores.

    python bench/request_cost.py runs/nbsvm --multiprocess

Prints the medians and means in µs, and returns them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
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


async def measure(bundle: Path, review: str, requests: int, runtime: Path | None = None) -> dict:
    """``runtime``: a worker's runtime folder, as each of several workers has (the weights'
    file, prometheus-client's multiprocess files, set up by :func:`main`)."""
    from critic.apps.endpoint import create_app
    from critic.serving.settings import ServerSettings
    from critic.serving.variants import VariantSpec

    app = create_app(
        [VariantSpec("AllTraffic", bundle)], ServerSettings(feedback_db="off"), runtime
    )
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
        # The model's answer precomputed: what is left is critic's own work alone, without
        # the model's cost varying between the request and the call beside it (a model called
        # inside a request finds colder caches than one called again at once).
        batcher = app.state.endpoint.batchers["AllTraffic"]
        answered = batcher.predict([review])
        batcher.predict = lambda reviews, explain=False: [dict(a) for a in answered]
        for _ in range(200):
            await _request(app, body)
        alone = []
        for _ in range(requests):
            started = time.thread_time()
            await _request(app, body)
            alone.append(time.thread_time() - started)
    own = [w - m for w, m in zip(whole, model, strict=True)]
    return {
        "bundle": str(bundle),
        "requests": requests,
        "request_median_us": statistics.median(whole) * 1e6,
        "model_median_us": statistics.median(model) * 1e6,
        "critic_median_us": statistics.median(own) * 1e6,
        "critic_mean_us": statistics.mean(own) * 1e6,
        "critic_alone_median_us": statistics.median(alone) * 1e6,
        "multiprocess": runtime is not None,
    }


def main(argv: list[str] | None = None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serve_load import pick_reviews

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--sample", type=int, help="Pick the review from N embedded ones.")
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="As one of several workers: shared weights and prometheus-client's multiprocess "
        "files (the default of critic serve on more than one core).",
    )
    args = parser.parse_args(argv)
    review, _ = pick_reviews(count=1, sample=args.sample)
    with tempfile.TemporaryDirectory(prefix="critic-request-cost-") as scratch:
        runtime = None
        if args.multiprocess:
            if "prometheus_client" in sys.modules:
                raise SystemExit(
                    "request_cost: --multiprocess must be set before prometheus_client is imported"
                )
            runtime = Path(scratch)
            (runtime / "metrics").mkdir()
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(runtime / "metrics")
        try:
            result = asyncio.run(measure(args.bundle, review, args.requests, runtime))
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    print(json.dumps(result))
    print(
        f"{args.bundle.name}: a request {result['request_median_us']:.0f} µs of CPU, the model "
        f"{result['model_median_us']:.0f}, the difference {result['critic_median_us']:.0f} "
        f"(median; mean {result['critic_mean_us']:.0f}); critic's own with the model's answer "
        f"precomputed {result['critic_alone_median_us']:.0f}"
        + (" (as one of several workers)" if runtime else "")
    )
    return result


if __name__ == "__main__":
    main()
