"""Benchmark: latency and throughput of `critic serve` on this machine.

    python bench/serve_latency.py runs/lstm [--requests 600] [--seconds 60] [--batch-wait-ms 0]

Starts `critic serve BUNDLE` on a free loopback port, then sends single-review text/plain
requests at concurrency 1, 8 and 64 (keep-alive connections, one per client thread), and
100-review JSON requests one at a time. Every loop is bounded in count and in time. Prints
one JSON line per run: p50/p99 latency, requests/s and reviews/s.

Client and server share the machine's cores, as they would behind a load balancer on one
host; the figures are what this machine sustains end to end, client overhead included.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from critic.config import DataConfig
from critic.data.prepare import load_splits


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(
    port: int,
    bodies: list[bytes],
    content_type: str,
    concurrency: int,
    total: int,
    seconds: float,
    reviews_per_request: int = 1,
) -> dict:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(total))
    deadline = time.monotonic() + seconds

    def client() -> None:
        nonlocal errors
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            body = bodies[index % len(bodies)]
            started = time.perf_counter()
            connection.request(
                "POST", "/invocations", body=body, headers={"Content-Type": content_type}
            )
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors += response.status != 200
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "requests_per_second": round(len(latencies) / wall, 1),
        # From the unrounded rate: 100 × a rounded rate would carry its rounding error × 100.
        "reviews_per_second": round(len(latencies) * reviews_per_request / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", type=Path)
    parser.add_argument(
        "--requests", type=int, default=600, help="single-review requests per concurrency level"
    )
    parser.add_argument("--batch-requests", type=int, default=30, help="100-review requests")
    parser.add_argument("--seconds", type=float, default=60, help="time limit of each run")
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=None,
        help="passed to critic serve (its default, 5 ms, when left out)",
    )
    args = parser.parse_args()

    reviews = load_splits(DataConfig())["test"].texts
    port = free_port()
    command = [sys.executable, "-m", "critic.cli", "serve", str(args.bundle), "--port", str(port)]
    if args.batch_wait_ms is not None:
        command += ["--batch-wait-ms", str(args.batch_wait_ms)]
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ}
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        singles = [review.encode() for review in reviews[:500]]
        load(port, singles[:20], "text/plain", 1, 20, 30)  # warm-up
        for concurrency in (1, 8, 64):
            result = load(port, singles, "text/plain", concurrency, args.requests, args.seconds)
            print(
                json.dumps({"run": "single review", "concurrency": concurrency, **result}),
                flush=True,
            )
        batches = [
            json.dumps({"instances": reviews[i : i + 100]}).encode() for i in range(0, 1000, 100)
        ]
        result = load(port, batches, "application/json", 1, args.batch_requests, args.seconds, 100)
        print(
            json.dumps({"run": "100 reviews per request", "concurrency": 1, **result}), flush=True
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
