"""Benchmark: `critic serve` against the ten-line server a user would write instead.

    python bench/serve_load.py runs/nbsvm runs/lstm [--seconds 10] [--rounds 3] [--workers 1]

For each bundle, starts `critic serve BUNDLE` and bench/naive_server.py (same bundle, same
uvicorn) on free loopback ports and drives both with wrk (Debian's package: `make wrk`):
one typical 230-word review as text/plain at 1, 8 and 64 clients, then 100-review JSON
requests at 1 and 4 clients. The two servers take turns, level by level, for ``--rounds``
rounds, and each figure is the median over rounds: this machine is shared and noisy, so a
claim is the ratio of two figures measured side by side, with the figures beside it. The
Predictor's own offline reviews/s (batches of 100, in this process) is measured in the same
run as the yardstick for the 100-review requests.

Prints a Markdown table and writes every run as JSON lines (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from servers import critic_command, free_port, start, stop

from critic.sagemaker.autoscaling import SAFETY_FACTOR, suggested_target

BENCH = Path(__file__).resolve().parent
LUA = """
local f = io.open(os.getenv("CRITIC_BODY_FILE"), "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = os.getenv("CRITIC_CONTENT_TYPE")
"""
SINGLE_LEVELS = (1, 8, 64)
HUNDRED_LEVELS = (1, 4)


def start_servers(bundle: Path, workers: int) -> dict[str, tuple[int, subprocess.Popen]]:
    """critic and the naive server for one bundle, each on its own port."""
    critic_port, naive_port = free_port(), free_port()
    environment = {"CRITIC_WORKERS": str(workers)}
    naive = [sys.executable, str(BENCH / "naive_server.py"), str(bundle), "--port", str(naive_port)]
    return {
        "critic": (
            critic_port,
            start(critic_command(bundle, critic_port), critic_port, environment),
        ),
        "naive": (naive_port, start(naive, naive_port)),
    }


def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def parse_wrk(output: str) -> dict:
    """Requests/s, p50 and p99 (ms), and the answers by status, from wrk --latency's report."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _milliseconds(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _milliseconds(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    # wrk counts the answers that are not 2xx/3xx itself (a Lua counter would live in each
    # of its threads' own interpreter, out of reach of the report).
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    other = int(refused.group(1)) if refused else 0
    statuses = {"2xx/3xx": total - other, "other": other}
    errors = re.search(r"Socket errors: (.*)$", output, re.M)
    return {"requests_per_second": rate, "p50_ms": p50, "p99_ms": p99, "statuses": statuses,
            "socket_errors": errors.group(1) if errors else None}  # fmt: skip


def run_wrk(port: int, body_file: Path, content_type: str, clients: int, seconds: float,
            script: Path) -> dict:  # fmt: skip
    threads = min(clients, 2)
    command = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", "--latency",
               "--timeout", "30s", "-s", str(script), f"http://127.0.0.1:{port}/invocations"]  # fmt: skip
    environment = {**os.environ, "CRITIC_BODY_FILE": str(body_file),
                   "CRITIC_CONTENT_TYPE": content_type}  # fmt: skip
    output = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=seconds + 60, check=True
    ).stdout
    return parse_wrk(output)


def offline_reviews_per_second(bundle: Path, reviews: list[str], rounds: int) -> float:
    """The Predictor alone, in this process: 100-review batches, best of ``rounds`` passes."""
    from critic.inference.predictor import Predictor

    predictor = Predictor.load(bundle)
    predictor.predict(reviews[:100])
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for first in range(0, len(reviews), 100):
            predictor.predict(reviews[first : first + 100])
        best = max(best, len(reviews) / (time.perf_counter() - started))
    return best


def pick_reviews(count: int = 1000, sample: int | None = None) -> tuple[str, list[str]]:
    """A review of the median length (230 words) and ``count`` test reviews (of a stratified
    ``sample`` of the embedded reviews, for a quick run)."""
    from critic.config import DataConfig
    from critic.data.prepare import load_splits

    texts = list(load_splits(DataConfig(max_reviews=sample))["test"].texts)
    typical = min(texts, key=lambda text: (abs(len(text.split()) - 230), text))
    return typical, texts[:count]


def measure_bundle(bundle: Path, args, scratch: Path, typical: str, reviews: list[str]) -> list:
    single = scratch / "single.txt"
    single.write_text(typical, encoding="utf-8")
    hundred = scratch / "hundred.json"
    hundred.write_text(json.dumps({"instances": reviews[:100]}), encoding="utf-8")
    script = scratch / "post.lua"
    script.write_text(LUA, encoding="utf-8")
    cases = [("single", n, single, "text/plain", 1) for n in args.clients]
    cases += [("hundred", n, hundred, "application/json", 100) for n in args.hundred_clients]
    servers = start_servers(bundle, args.workers)
    runs = []
    try:
        offline = offline_reviews_per_second(bundle, reviews, args.rounds)
        for round_number in range(args.rounds):
            for kind, clients, body, content_type, per_request in cases:
                for server, (port, _) in servers.items():
                    result = run_wrk(port, body, content_type, clients, args.seconds, script)
                    # The naive server computes on its event loop, the requests wrk left in
                    # flight included: /ping answers once that backlog is done, so that it
                    # never overlaps the next run (critic drops requests whose client left).
                    for other_port, _ in servers.values():
                        urllib.request.urlopen(
                            f"http://127.0.0.1:{other_port}/ping", timeout=300
                        ).close()
                    result.update(bundle=str(bundle), server=server, request=kind,
                                  clients=clients, round=round_number,
                                  reviews_per_second=result["requests_per_second"] * per_request,
                                  offline_reviews_per_second=offline)  # fmt: skip
                    runs.append(result)
                    print(json.dumps(result), file=sys.stderr, flush=True)
    finally:
        for _, process in servers.values():
            stop(process)
    return runs


def summarise(runs: list[dict]) -> list[dict]:
    """Per bundle, request kind and client count: medians over rounds, critic beside naive."""
    rows = []
    keys = sorted({(r["bundle"], r["request"], r["clients"]) for r in runs},
                  key=lambda k: (k[0], k[1] != "single", k[2]))  # fmt: skip
    for bundle, request, clients in keys:
        row = {"bundle": bundle, "request": request, "clients": clients}
        for server in ("critic", "naive"):
            mine = [r for r in runs if (r["bundle"], r["request"], r["clients"], r["server"])
                    == (bundle, request, clients, server)]  # fmt: skip
            for field in ("requests_per_second", "reviews_per_second", "p50_ms", "p99_ms"):
                row[f"{server}_{field}"] = statistics.median(r[field] for r in mine)
            row[f"{server}_non_200"] = sum(r["statuses"]["other"] for r in mine)
            row["offline_reviews_per_second"] = mine[0]["offline_reviews_per_second"]
        row["throughput_ratio"] = (
            row["critic_requests_per_second"] / row["naive_requests_per_second"]
        )
        row["p50_ratio"] = row["critic_p50_ms"] / row["naive_p50_ms"]
        row["critic_share_of_offline"] = (
            row["critic_reviews_per_second"] / row["offline_reviews_per_second"]
        )
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| bundle | request | clients | critic req/s | critic p50 / p99 ms | naive req/s "
        "| naive p50 / p99 ms | throughput × | p50 × | critic reviews/s (% of offline) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {Path(r['bundle']).name} | {r['request']} | {r['clients']} "
            f"| {r['critic_requests_per_second']:,.0f} "
            f"| {r['critic_p50_ms']:.2f} / {r['critic_p99_ms']:.2f} "
            f"| {r['naive_requests_per_second']:,.0f} "
            f"| {r['naive_p50_ms']:.2f} / {r['naive_p99_ms']:.2f} "
            f"| {r['throughput_ratio']:.2f} | {r['p50_ratio']:.2f} "
            f"| {r['critic_reviews_per_second']:,.0f} ({r['critic_share_of_offline']:.0%}) |"
        )
    return "\n".join(lines)


def scaling_hints(rows: list[dict]) -> list[str]:
    """Per bundle: the most single-review requests/s this machine answered as one instance, and
    the autoscaling target it suggests (AWS's guidance: max RPS x 0.5 safety factor x 60)."""
    most: dict[str, float] = {}
    for row in rows:
        if row["request"] == "single":
            rps = row["critic_requests_per_second"]
            most[row["bundle"]] = max(rps, most.get(row["bundle"], 0.0))
    return [
        f"{Path(bundle).name}: one instance answered at most {rps:,.0f} requests/s; suggested "
        f"--target-invocations {suggested_target(rps):,.0f} (x {SAFETY_FACTOR} safety x 60 s)"
        for bundle, rps in most.items()
        if rps > 0
    ]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each wrk run.")
    parser.add_argument("--rounds", type=int, default=3, help="Turns each server takes.")
    parser.add_argument("--clients", type=int, nargs="+", default=list(SINGLE_LEVELS))
    parser.add_argument("--hundred-clients", type=int, nargs="*", default=list(HUNDRED_LEVELS))
    parser.add_argument("--workers", type=int, default=1, help="critic serve --workers.")
    parser.add_argument("--out", type=Path, help="Write every run as JSON lines here.")
    parser.add_argument("--sample", type=int, help="Pick the reviews from N embedded ones.")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("serve_load: wrk is not installed; `make wrk` installs Debian's")
    typical, reviews = pick_reviews(sample=args.sample)
    runs = []
    with tempfile.TemporaryDirectory(prefix="critic-load-") as scratch:
        for bundle in args.bundles:
            runs += measure_bundle(bundle, args, Path(scratch), typical, reviews)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in runs), encoding="utf-8")
    rows = summarise(runs)
    print(markdown(rows))
    print("\n".join(scaling_hints(rows)))
    return rows


if __name__ == "__main__":
    main()
