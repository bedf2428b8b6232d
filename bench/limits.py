"""Benchmark: how close `critic serve` comes to what the machine allows (issue 25).

    python bench/limits.py runs/nbsvm runs/lstm runs/attention runs/ensemble [--seconds 10]
    python bench/limits.py runs/nbsvm --seconds 3 --clients 1 64 --out /tmp/limits.json

The yardsticks are measured in the same run, on the same cores, as critic itself:

* **HTTP alone**: bench/bare_server.py, a bare ASGI app that reads the body and answers a
  constant JSON prediction, on the same uvicorn (uvloop, httptools, critic's one-write protocol) with as many workers as
  critic starts: its p50 for one client and its requests/s at the most clients, wrk beside it.
* **The model alone**: ``Predictor.predict`` on the same review in this process, with the
  threads one critic worker gives torch (cores ÷ workers) and critic's backend: a lone
  review's p50, and reviews/s in batches of 64, times the workers (its capacity on the cores).
* **The model and HTTP, served**: bench/bare_server.py with the bundle (``Predictor.predict``
  on the body, nothing else), at the fewest and the most clients. A server's core idles
  between a lone client's requests and the model then costs more than in a tight loop
  (cold caches): critic's lone p50 less this one's is what critic itself adds;
* **critic serve** and bench/naive_server.py (the ten-line server), same bundle, wrk at each
  client count, taking turns.

For each bundle it prints each figure beside its target:

* a lone request's overhead, critic's p50 less the model's and HTTP's: at most 50 µs; and
  critic's p50 less that of the model and HTTP served, against the same 50 µs;
* throughput at the most clients: at least 80% of the limit, the lower of HTTP-alone and
  model-alone capacity (also shown against "model + HTTP", one request costing both);
* throughput that holds: at the most clients, at least 95% of critic's best at fewer;
* p99 at the most clients: no worse than the ten-line server's, and under 50 ms for the
  lstm and nbsvm.

Every answer must be a 200; a run with others is flagged. This machine is shared: read a
figure beside its yardstick, both from one run. Writes every figure as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from serve_load import LUA, pick_reviews, run_wrk
from servers import critic_command, free_port, start, stop

BENCH = Path(__file__).resolve().parent
LEVELS = (1, 8, 32, 64)
OVERHEAD_TARGET_US = 50.0
LIMIT_SHARE_TARGET = 0.80
HOLD_TARGET = 0.95
P99_TARGET_MS = 50.0
P99_TARGET_KINDS = ("lstm", "nbsvm")


def bare_command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "bare_server:app", "--app-dir", str(BENCH),
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--loop", "uvloop", "--http", "critic.serving.protocol:OneWriteProtocol", "--log-level", "warning",
            "--no-access-log"]  # fmt: skip


def model_alone(
    bundle: Path, review: str, workers: int, cores: int, backend: str, seconds: float = 3.0
) -> dict:
    """The Predictor on one critic worker's threads: a lone review's p50 (µs) over about
    ``seconds``, and in batches of 64 (the best of three passes of a third of that), reviews/s
    per worker and over all workers."""
    import torch

    from critic.inference.predictor import Predictor

    torch.set_num_threads(max(1, cores // workers))
    predictor = Predictor.load(bundle, backend=backend)
    for _ in range(50):
        predictor.predict([review])
    lone = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(lone) < 50:
        started = time.perf_counter()
        predictor.predict([review])
        lone.append(time.perf_counter() - started)
    batch = [review] * 64
    predictor.predict(batch)
    best = 0.0
    for _ in range(3):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            predictor.predict(batch)
            count += len(batch)
        best = max(best, count / (time.perf_counter() - started))
    return {
        "model": predictor.bundle.config.model.name if predictor.kind != "ensemble" else "ensemble",
        "kind": predictor.kind,
        "lone_p50_us": statistics.median(lone) * 1e6,
        "reviews_per_second_per_worker": best,
        "capacity": best * workers,
    }


def measure(bundle: Path, args, scratch: Path, review: str, http: dict) -> dict:
    single = scratch / "single.txt"
    single.write_text(review, encoding="utf-8")
    script = scratch / "post.lua"
    script.write_text(LUA, encoding="utf-8")
    model = model_alone(bundle, review, args.workers, args.cores, args.backend, args.model_seconds)
    print(f"limits: {bundle.name} alone: {json.dumps(model)}", file=sys.stderr, flush=True)
    critic_port, naive_port = free_port(), free_port()
    environment = {"CRITIC_WORKERS": str(args.workers), "CRITIC_BACKEND": args.backend}
    naive = [sys.executable, str(BENCH / "naive_server.py"), str(bundle), "--port", str(naive_port)]
    served_port = free_port()
    served_environment = {**environment, "CRITIC_BARE_BUNDLE": str(bundle)}
    servers = {
        "critic": (critic_port, start(critic_command(bundle, critic_port), critic_port, environment)),
        "naive": (naive_port, start(naive, naive_port)),
        "served": (served_port, start(bare_command(served_port, args.workers), served_port,
                                      served_environment)),
    }  # fmt: skip
    runs: dict[str, dict[int, dict]] = {"critic": {}, "naive": {}, "served": {}}
    ends = (min(args.clients), max(args.clients))
    try:
        for clients in args.clients:
            for name, (port, _) in servers.items():
                if name == "served" and clients not in ends:
                    continue  # the yardstick: a lone request, and the most clients
                runs[name][clients] = run_wrk(
                    port, single, "text/plain", clients, args.seconds, script
                )
                print(f"limits: {bundle.name} {name} {clients}: {json.dumps(runs[name][clients])}",
                      file=sys.stderr, flush=True)  # fmt: skip
                settle(servers)
    finally:
        for _, process in servers.values():
            stop(process)
    return judge(bundle, model, http, runs, max(args.clients))


def settle(servers: dict) -> None:
    """Until every server answers /ping: the naive one computes the backlog wrk left on its
    event loop, and it must not overlap the next run."""
    import urllib.request

    for port, _ in servers.values():
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=300).close()


def judge(bundle: Path, model: dict, http: dict, runs: dict, most: int) -> dict:
    critic, naive, served = runs["critic"], runs["naive"], runs["served"]
    lone = critic[min(critic)]
    overhead_us = lone["p50_ms"] * 1e3 - model["lone_p50_us"] - http["lone_p50_us"]
    # Against the model and HTTP served together (bench/bare_server.py with the bundle): the
    # same idle core between a lone client's requests, so only what critic adds is left.
    served_lone_us = served[min(served)]["p50_ms"] * 1e3
    served_overhead_us = lone["p50_ms"] * 1e3 - served_lone_us
    limit = min(http["requests_per_second"], model["capacity"])
    both = 1 / (1 / http["requests_per_second"] + 1 / model["capacity"])
    top = critic[most]["requests_per_second"]
    fewer = [run["requests_per_second"] for clients, run in critic.items() if clients < most]
    best_fewer = max(fewer) if fewer else top
    kind = model["model"]
    p99_limit = min(naive[most]["p99_ms"], P99_TARGET_MS if kind in P99_TARGET_KINDS else 1e12)
    non_200 = sum(run["statuses"]["other"] for server in runs.values() for run in server.values())
    return {
        "bundle": str(bundle),
        "model": kind,
        "model_alone": model,
        "http_alone": http,
        "critic": {str(k): v for k, v in critic.items()},
        "naive": {str(k): v for k, v in naive.items()},
        "overhead_us": overhead_us,
        "overhead_ok": overhead_us <= OVERHEAD_TARGET_US,
        "served": {str(k): v for k, v in served.items()},
        "served_lone_p50_us": served_lone_us,
        "served_overhead_us": served_overhead_us,
        "served_overhead_ok": served_overhead_us <= OVERHEAD_TARGET_US,
        "share_of_served": top / served[most]["requests_per_second"],
        "limit": limit,
        "model_plus_http": both,
        "share_of_limit": top / limit,
        "share_of_model_plus_http": top / both,
        "limit_ok": top >= LIMIT_SHARE_TARGET * limit,
        "hold": top / best_fewer,
        "hold_ok": top >= HOLD_TARGET * best_fewer,
        "p99_ms": critic[most]["p99_ms"],
        "naive_p99_ms": naive[most]["p99_ms"],
        "p99_ok": critic[most]["p99_ms"] <= p99_limit,
        "non_200": non_200,
    }


def markdown(results: list[dict], most: int) -> str:
    def mark(ok: bool) -> str:
        return "yes" if ok else "**no**"

    lines = [
        f"| bundle | lone p50: critic / model / HTTP µs | overhead µs (≤ {OVERHEAD_TARGET_US:g}) "
        f"| lone p50: model + HTTP served µs | overhead over it µs (≤ {OVERHEAD_TARGET_US:g}) "
        f"| {most} clients req/s: critic / limit (model, HTTP) | % of limit (≥ 80) "
        f"| % of model + HTTP | holds: % of best at fewer (≥ 95) "
        f"| served req/s | p99 ms: critic / naive | naive req/s | non-200 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lone = r["critic"][str(min(int(k) for k in r["critic"]))]
        top = r["critic"][str(most)]
        lines.append(
            f"| {Path(r['bundle']).name} ({r['model']}) "
            f"| {lone['p50_ms'] * 1e3:,.0f} / {r['model_alone']['lone_p50_us']:,.0f} / "
            f"{r['http_alone']['lone_p50_us']:,.0f} "
            f"| {r['overhead_us']:,.0f} {mark(r['overhead_ok'])} "
            f"| {r['served_lone_p50_us']:,.0f} "
            f"| {r['served_overhead_us']:,.0f} {mark(r['served_overhead_ok'])} "
            f"| {top['requests_per_second']:,.0f} / {r['limit']:,.0f} "
            f"({r['model_alone']['capacity']:,.0f}, {r['http_alone']['requests_per_second']:,.0f}) "
            f"| {r['share_of_limit']:.0%} {mark(r['limit_ok'])} "
            f"| {r['share_of_model_plus_http']:.0%} "
            f"| {r['hold']:.0%} {mark(r['hold_ok'])} "
            f"| {r['served'][str(most)]['requests_per_second']:,.0f} "
            f"| {r['p99_ms']:.1f} / {r['naive_p99_ms']:.1f} {mark(r['p99_ok'])} "
            f"| {r['naive'][str(most)]['requests_per_second']:,.0f} | {r['non_200']} |"
        )
    return "\n".join(lines)


def http_alone(args, scratch: Path, review: str) -> dict:
    single = scratch / "single.txt"
    single.write_text(review, encoding="utf-8")
    script = scratch / "post.lua"
    script.write_text(LUA, encoding="utf-8")
    port = free_port()
    process = start(bare_command(port, args.workers), port)
    try:
        lone = run_wrk(port, single, "text/plain", min(args.clients), args.seconds, script)
        top = run_wrk(port, single, "text/plain", max(args.clients), args.seconds, script)
    finally:
        stop(process)
    return {"lone_p50_us": lone["p50_ms"] * 1e3, "requests_per_second": top["requests_per_second"],
            "p99_ms": top["p99_ms"]}  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict]:
    from critic.system import available_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each wrk run.")
    parser.add_argument("--clients", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--workers", type=int, default=0, help="0: one per core, as critic serve.")
    parser.add_argument("--backend", default="auto", help="critic serve --backend.")
    parser.add_argument("--model-seconds", type=float, default=3.0, help="Model-alone timing.")
    parser.add_argument("--sample", type=int, help="Pick the review from N embedded ones.")
    parser.add_argument("--out", type=Path, help="Write every figure as JSON here.")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("limits: wrk is not installed; `make wrk` installs Debian's")
    args.cores = available_cores()
    args.workers = args.workers or args.cores
    review, _ = pick_reviews(count=1, sample=args.sample)
    with tempfile.TemporaryDirectory(prefix="critic-limits-") as scratch:
        http = http_alone(args, Path(scratch), review)
        print(f"limits: HTTP alone: {json.dumps(http)}", file=sys.stderr, flush=True)
        results = [measure(b, args, Path(scratch), review, http) for b in args.bundles]
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"{args.workers} worker(s) on {args.cores} core(s), wrk {args.seconds:g} s a level, "
          f"clients {' '.join(map(str, args.clients))}")  # fmt: skip
    print(markdown(results, max(args.clients)))
    return results


if __name__ == "__main__":
    main()
