"""Benchmark: what a shadow variant (and data capture) costs the live answer.

    python bench/shadow_overhead.py runs/lstm --shadow runs/attention [--seconds 10] [--rounds 3]

Starts four `critic serve LIVE` on free loopback ports -- plain, with ``--shadow
shadow=SHADOW`` (every request copied), with ``--capture-dir`` (every request captured), and
with both -- and
drives each with wrk: one typical 230-word review as text/plain, at 1 and 8 clients. The
servers take turns, level by level, for ``--rounds`` rounds; each figure is the median over
rounds (this machine is shared and noisy: a claim is the ratio of figures measured side by
side). The copies the shadow had to drop, and the records the capture dropped, are read from
the servers after the runs.

Before that, in this process, what the hooks cost the request path itself, which a loaded
machine blurs less: the microseconds of ``Shadows.offer`` and ``CaptureWriter.offer`` (the
only calls a request makes), of comparing a shadow's answers on the event loop, and the CPU
the capture's thread spends per record (fastest of five passes each).

Prints a Markdown table and writes every run as JSON lines (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from serve_load import LUA, pick_reviews, run_wrk
from servers import critic_command, free_port, start, stop

LEVELS = (1, 8)
SETUPS = ("plain", "shadow", "capture", "shadow+capture")


def _fastest(run, count: int, passes: int = 5) -> float:
    """Microseconds per call of ``run(count)``, the fastest of ``passes``."""
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        run(count)
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def hook_costs(live: Path, shadow: Path, review: str, scratch: Path, count: int = 2000) -> dict:
    """What one request pays for a shadow and for capture, in microseconds (in this process)."""
    from prometheus_client import CollectorRegistry

    from critic.inference.predictor import Predictor
    from critic.serving.codec import encode_predictions
    from critic.serving.settings import ServerSettings
    from critic.serving.sidecar.capture import CaptureConfig, CaptureWriter
    from critic.serving.sidecar.shadow import ShadowSpec, start_shadows

    predictions = Predictor.load(live).predict([review])
    answer = encode_predictions(predictions, "application/json")
    writer = CaptureWriter(CaptureConfig(scratch / "hooks", "bench"), max_queued=10**6)

    def capture(n):
        for _ in range(n):
            writer.offer("AllTraffic", review.encode(), "text/plain", answer,
                         "application/json", "id", [review])  # fmt: skip
        writer.flush(600)

    cpu = time.process_time()
    capture(count)
    capture_cpu = (time.process_time() - cpu) / count * 1e6
    offer_capture = _fastest(lambda n: [writer.offer("AllTraffic", b"x", "text/plain", answer,
                             "application/json", "id", ["x"]) for _ in range(n)], count)  # fmt: skip
    writer.close()

    async def shadow_costs() -> tuple[float, float]:
        settings = ServerSettings(shadow_queue=1)
        shadows = start_shadows([ShadowSpec("s", shadow)], settings, CollectorRegistry())
        mine = shadows.shadows["s"]
        offer = _fastest(lambda n: [shadows.offer("AllTraffic", [review], predictions)
                                    for _ in range(n)], count)  # fmt: skip
        await asyncio.sleep(0.5)  # the copies' tasks run: almost all dropped at the full queue
        answers = mine.process.predict([review])
        compare = _fastest(lambda n: [shadows._compare(mine, "AllTraffic", [review],
                           predictions, answers) for _ in range(n)], count)  # fmt: skip
        await shadows.stop(5)
        return offer, compare

    offer_shadow, compare = asyncio.run(shadow_costs())
    return {"shadow_offer_us": offer_shadow, "shadow_compare_us": compare,
            "capture_offer_us": offer_capture, "capture_cpu_per_record_us": capture_cpu}  # fmt: skip


def start_servers(
    live: Path, shadow: Path, capture: Path
) -> dict[str, tuple[int, subprocess.Popen]]:
    """The three set-ups of one live bundle, each on its own port."""
    servers = {}
    for setup in SETUPS:
        port = free_port()
        command = critic_command(live, port)
        if "shadow" in setup:
            command += ["--shadow", f"shadow={shadow}"]
        if "capture" in setup:
            command += ["--capture-dir", str(capture / setup)]
        servers[setup] = (port, start(command, port))
    return servers


def shadow_figures(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/ab/shadows", timeout=60) as answer:
        return json.load(answer)


def measure(args, scratch: Path, typical: str) -> tuple[list[dict], dict]:
    body = scratch / "single.txt"
    body.write_text(typical, encoding="utf-8")
    script = scratch / "post.lua"
    script.write_text(LUA, encoding="utf-8")
    servers = start_servers(args.live, args.shadow, scratch / "capture")
    runs = []
    try:
        for round_number in range(args.rounds):
            for clients in args.clients:
                for setup, (port, _) in servers.items():
                    result = run_wrk(port, body, "text/plain", clients, args.seconds, script)
                    result.update(setup=setup, clients=clients, round=round_number)
                    runs.append(result)
                    print(json.dumps(result), file=sys.stderr, flush=True)
        figures = {setup: shadow_figures(port) for setup, (port, _) in servers.items()}
    finally:
        for _, process in servers.values():
            stop(process)
    return runs, figures


def summarise(runs: list[dict]) -> list[dict]:
    """Per client count and set-up: medians over rounds, and the ratio to the plain server."""
    rows = []
    for clients in sorted({r["clients"] for r in runs}):
        plain = None
        for setup in SETUPS:
            mine = [r for r in runs if (r["clients"], r["setup"]) == (clients, setup)]
            row = {"clients": clients, "setup": setup}
            for field in ("requests_per_second", "p50_ms", "p99_ms"):
                row[field] = statistics.median(r[field] for r in mine)
            row["non_200"] = sum(r["statuses"]["other"] for r in mine)
            plain = plain or row
            row["p50_ratio"] = row["p50_ms"] / plain["p50_ms"]
            row["p99_ratio"] = row["p99_ms"] / plain["p99_ms"]
            row["throughput_ratio"] = row["requests_per_second"] / plain["requests_per_second"]
            rows.append(row)
    return rows


def markdown(rows: list[dict], figures: dict, hooks: dict) -> str:
    lines = [
        f"On the request path: Shadows.offer {hooks['shadow_offer_us']:.1f} us, "
        f"CaptureWriter.offer {hooks['capture_offer_us']:.1f} us a request; comparing a "
        f"shadow's answer {hooks['shadow_compare_us']:.1f} us a review (event loop, after the "
        f"answer); the capture thread {hooks['capture_cpu_per_record_us']:.0f} us of CPU a "
        "record.",
        "",
        "| clients | set-up | req/s | p50 ms | p99 ms | p50 × | p99 × | req/s × |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['clients']} | {r['setup']} | {r['requests_per_second']:,.0f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p50_ratio']:.2f} "
            f"| {r['p99_ratio']:.2f} | {r['throughput_ratio']:.2f} |"
        )
    for setup, payload in figures.items():
        notes = [
            f"the shadow ({shadow['model']}) got {shadow['copies']:,} copies, answered "
            f"{shadow['answered']:,} (pass p50 {shadow['pass_ms']['p50']} ms), dropped "
            f"{shadow['dropped']:,}"
            for shadow in payload["shadows"]
        ]
        if payload["capture"]:
            capture = payload["capture"]
            notes.append(f"capture wrote {capture['captured']:,} records, dropped "
                         f"{capture['dropped']:,}")  # fmt: skip
        if notes:
            lines.append(f"\n{setup}: " + "; ".join(notes) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("live", type=Path, help="The bundle answering the live traffic.")
    parser.add_argument("--shadow", type=Path, required=True, help="The shadow's bundle.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each wrk run.")
    parser.add_argument("--rounds", type=int, default=3, help="Turns each server takes.")
    parser.add_argument("--clients", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--out", type=Path, help="Write every run as JSON lines here.")
    parser.add_argument("--sample", type=int, help="Pick the review from N embedded ones.")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("shadow_overhead: wrk is not installed; `make wrk` installs Debian's")
    typical, _ = pick_reviews(sample=args.sample)
    with tempfile.TemporaryDirectory(prefix="critic-shadow-") as scratch:
        hooks = hook_costs(args.live, args.shadow, typical, Path(scratch))
        print(json.dumps(hooks), file=sys.stderr, flush=True)
        runs, figures = measure(args, Path(scratch), typical)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in runs), encoding="utf-8")
    rows = summarise(runs)
    print(markdown(rows, figures, hooks))
    return rows


if __name__ == "__main__":
    main()
