"""Benchmark: the reference LSTM trained with 1 and with N data-parallel processes (torchrun).

    python bench/distributed_train.py [--runs 1 1:1 2] [--max-reviews N] [--out DIR] [critic train options]

Prepares the data once (so no run pays for it), then runs `critic train --model lstm` once per
entry of --runs: ``P`` is P processes (one: plain `critic train`, with torch's own thread
count; more: `torchrun --nproc_per_node P`, cores / P threads each), ``1:T`` one process with
T threads (OMP_NUM_THREADS). Prints one JSON line per run: wall time (start to bundle
written), CPU time, training reviews/s (the whole group's), epochs, and the bundle's test
accuracy. Other options (e.g. `--epochs 3`) go to every run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher(processes: int) -> list[str]:
    """How to start `critic`: itself for one process, torchrun for several."""
    if processes == 1:
        return [sys.executable, "-m", "critic.cli"]
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
        "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "critic.cli",
    ]  # fmt: skip


def run(spec: str, out: Path, cache: Path, extra: list[str]) -> dict:
    """Train once as ``spec`` says (``P`` or ``1:T``); its figures."""
    processes, _, threads = spec.partition(":")
    processes = int(processes)
    environment = dict(os.environ)
    if threads:
        if processes != 1:
            raise SystemExit(f"{spec}: threads are set for one process only")
        environment["OMP_NUM_THREADS"] = threads
    if out.exists():
        shutil.rmtree(out)
    command = [*launcher(processes), "train", "--out", str(out), "--cache-dir", str(cache)]
    started = time.perf_counter()
    cpu_before = _children_cpu_seconds()
    subprocess.run([*command, "--no-progress", *extra], check=True, env=environment)
    wall = time.perf_counter() - started
    # CPU time of the run (torchrun and its workers included): on a machine shared with other
    # work, the scheduler gives two processes more of it than one, which wall time hides.
    cpu = _children_cpu_seconds() - cpu_before
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "run": spec,
        "processes": processes,
        "options": extra,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "train_seconds": metrics["train_seconds"],
        "epochs": metrics["epochs"],
        "best_epoch": metrics["best_epoch"],
        "threads_per_process": metrics["threads"],
        "train_reviews_per_second": metrics["train_reviews_per_second"],
        "val_accuracy": round(metrics["val_accuracy"], 4),
        "test_accuracy": round(metrics["test_accuracy"], 4),
        "cpu_count": os.cpu_count(),
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/distributed"))
    parser.add_argument("--runs", nargs="+", default=["1", "1:1", "2"])
    parser.add_argument("--max-reviews", type=int, default=None, help="A slice of the data.")
    args, extra = parser.parse_known_args(argv)
    from critic.data.prepare import prepare
    from critic.models import run_config

    data = {} if args.max_reviews is None else {"max_reviews": args.max_reviews}
    extra = ["--model", "lstm", *extra]
    if args.max_reviews is not None:
        extra += ["--max-reviews", str(args.max_reviews)]
    cache = Path(tempfile.mkdtemp(prefix="critic-bench-cache-"))
    rows = []
    try:
        # Prepared once here, then read from the cache by every run (and every rank).
        prepare(run_config("lstm", data=data).data, cache, log=lambda _: None)
        for spec in args.runs:
            figures = run(spec, args.out / spec.replace(":", "x"), cache, extra)
            print(json.dumps(figures), flush=True)
            rows.append(figures)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
