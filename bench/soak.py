"""Soak test: `critic serve` offered about three times what it can answer, for a minute.

    python bench/soak.py runs/lstm [--seconds 60] [--overload 3] [--reviews 100]

Starts `critic serve BUNDLE` on a free loopback port and measures its capacity for requests
of ``--reviews`` reviews (8 clients back to back, 5 s). Then an open-loop client sends such
requests at ``--overload`` times that rate for ``--seconds`` -- new requests keep coming
whatever the answers, as real traffic does -- while the server's memory is sampled. When the
load stops, one single-review request every 50 ms measures how long latency takes to come
back to what it was before. Prints one JSON object: requests, answers by status, p50/p99 of
the accepted ones, the 503s' p99, peak RSS and its growth, and the recovery time.

The promises it checks (docs/reliability.md): only 200s and 503s; p99 of the accepted
requests at most 2 s; RSS growth at most 100 MB; normal latency within 1 s of the load's end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from servers import critic_command, free_port, start, stop

REVIEW = (
    "The film opens well and the cast is strong, but the story loses its way in the middle, "
    "the jokes fall flat and the ending is far too long; still, the music is lovely."
)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (the workers, with --workers)."""
    total = 0
    for candidate in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found]


async def request(port: int, body: bytes, content_type: str, timeout: float) -> tuple[int, float]:
    """One POST /invocations on a fresh connection: its status (0: no answer) and seconds."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(
            b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        await asyncio.wait_for(reader.read(), timeout)
        writer.close()
        status = int(status_line.split()[1])
    except (OSError, asyncio.TimeoutError, IndexError, ValueError):
        status = 0
    return status, time.perf_counter() - started


async def closed_loop(port: int, body: bytes, clients: int, seconds: float) -> float:
    """Requests answered per second by ``clients`` sending back to back: the capacity."""
    answered = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal answered
        while time.monotonic() < deadline:
            status, _ = await request(port, body, "application/json", 60)
            answered += status == 200

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return answered / (time.monotonic() - started)


async def open_loop(port: int, body: bytes, rate: float, seconds: float, pid: int) -> dict:
    """``rate`` requests a second for ``seconds``, whatever the answers; RSS sampled."""
    results: list[tuple[int, float]] = []
    peak = 0
    tasks = []

    async def one() -> None:
        results.append(await request(port, body, "application/json", 30))

    started = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - started < seconds:
        due = int((now - started) * rate) + 1
        for _ in range(due - sent):
            tasks.append(asyncio.ensure_future(one()))
        sent = due
        peak = max(peak, rss_bytes(pid))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    return {"results": results, "peak_rss": max(peak, rss_bytes(pid)), "sent": sent}


async def single_latency(port: int) -> float:
    _, seconds = await request(port, REVIEW.encode(), "text/plain", 30)
    return seconds


async def recovery(port: int, normal: float, limit: float = 30.0) -> float:
    """Seconds from the load's end until a lone request is as quick as before (within 2x,
    3 in a row)."""
    started = time.monotonic()
    quick = 0
    while time.monotonic() - started < limit:
        seconds = await single_latency(port)
        quick = quick + 1 if seconds <= max(2 * normal, normal + 0.005) else 0
        if quick == 3:
            return round(time.monotonic() - started - 2 * 0.05, 3)
        await asyncio.sleep(0.05)
    return float("inf")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def soak(port: int, pid: int, args) -> dict:
    body = json.dumps({"instances": [f"{REVIEW} ({n})" for n in range(args.reviews)]}).encode()
    normal = statistics.median([await single_latency(port) for _ in range(20)])
    capacity = await closed_loop(port, body, clients=8, seconds=args.capacity_seconds)
    rss_before = rss_bytes(pid)
    load = await open_loop(port, body, args.overload * capacity, args.seconds, pid)
    recovered = await recovery(port, normal)
    statuses: dict[str, int] = {}
    for status, _ in load["results"]:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    accepted = [seconds for status, seconds in load["results"] if status == 200]
    refused = [seconds for status, seconds in load["results"] if status == 503]
    return {
        "bundle": str(args.bundle),
        "reviews_per_request": args.reviews,
        "capacity_requests_per_second": round(capacity, 2),
        "offered_requests_per_second": round(args.overload * capacity, 2),
        "seconds": args.seconds,
        "requests": load["sent"],
        "statuses": statuses,
        "accepted_p50_s": percentile(accepted, 0.5),
        "accepted_p99_s": percentile(accepted, 0.99),
        "refused_p99_s": percentile(refused, 0.99),
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_peak_mb": round(load["peak_rss"] / 2**20, 1),
        "rss_growth_mb": round((load["peak_rss"] - rss_before) / 2**20, 1),
        "normal_latency_s": round(normal, 4),
        "recovery_s": recovered,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--overload", type=float, default=3.0, help="Offered load / capacity.")
    parser.add_argument("--reviews", type=int, default=100, help="Reviews per request.")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--capacity-seconds", type=float, default=5.0, help="Length of the capacity run."
    )
    args = parser.parse_args(argv)
    port = free_port()
    server = start(critic_command(args.bundle, port), port, {"CRITIC_WORKERS": str(args.workers)})
    try:
        report = asyncio.run(soak(port, server.pid, args))
    finally:
        stop(server)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
