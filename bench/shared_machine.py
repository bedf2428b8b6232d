"""Benchmark: training on a machine that is doing something else (issue 30).

    python bench/shared_machine.py                       # lstm and gru, 6,000 reviews, 1 epoch
    python bench/shared_machine.py --models lstm --reviews 3000
    python bench/shared_machine.py --env spin=OMP_WAIT_POLICY=ACTIVE,CRITIC_THREADS=2 \
        --env passive=OMP_WAIT_POLICY=PASSIVE,CRITIC_THREADS=2

For each model and each setting (a name and the environment changes that make it), one
epoch of `critic train` is timed -- the epoch time the training itself records in the
bundle's metrics.json, so data preparation and start-up do not count -- in three situations,
all in this one run:

* **alone**;
* **beside a busy process**: a pure-Python loop that holds one core the whole time;
* **two side by side**: two trainings started together (each one's epoch is timed).

It prints each time and its slowdown against the same setting alone, and one JSON line with
every figure. The default settings are ``critic`` (what critic chooses by itself) and
``today`` (what it did before it chose: a thread a core, OpenMP's default waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SETTINGS = {
    "critic": {},
    # What critic train did before it chose: torch's default, a thread a core, waiting as
    # OpenMP does by default (spinning a while, then sleeping).
    "today": {"OMP_WAIT_POLICY": "", "CRITIC_THREADS": str(len(os.sched_getaffinity(0)))},
}
BUSY_LOOP = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


def critic_command() -> list[str]:
    return [str(Path(sys.executable).parent / "critic")]


def train(model: str, reviews: int, env_changes: dict[str, str], out: Path) -> subprocess.Popen:
    env = {**os.environ}
    for name, value in env_changes.items():
        if value == "":
            env.pop(name, None)
        else:
            env[name] = value
    command = [
        *critic_command(), "train", "--model", model, "--max-reviews", str(reviews),
        "--epochs", "1", "--seed", "0", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def epoch_seconds(process: subprocess.Popen, out: Path) -> float:
    output, _ = process.communicate(timeout=3600)
    if process.returncode != 0:
        raise SystemExit(f"critic train failed ({process.returncode}):\n{output[-3000:]}")
    history = json.loads((out / "metrics.json").read_text())["history"]
    chosen = [
        line for line in output.splitlines() if line.startswith("train: ") and "thread(s)" in line
    ]
    if chosen:
        print(f"    {chosen[0].strip()}")
    return float(history[-1]["seconds"])


def measure(model: str, reviews: int, setting: dict[str, str], scratch: Path) -> dict:
    figures = {}
    figures["alone"] = epoch_seconds(train(model, reviews, setting, scratch / "a"), scratch / "a")
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(0.5)  # the loop holds its core before the training starts
        figures["beside_busy"] = epoch_seconds(
            train(model, reviews, setting, scratch / "b"), scratch / "b"
        )
    finally:
        busy.kill()
        busy.wait()
    pair = [train(model, reviews, setting, scratch / f"p{n}") for n in range(2)]
    figures["side_by_side"] = [
        epoch_seconds(process, scratch / f"p{n}") for n, process in enumerate(pair)
    ]
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--reviews", type=int, default=6000)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VAR=VALUE[,VAR=VALUE]",
        help="A setting to measure: its name and environment changes (VAR= removes VAR).",
    )
    args = parser.parse_args(argv)
    settings = DEFAULT_SETTINGS
    if args.env:
        settings = {}
        for text in args.env:
            name, _, changes = text.partition("=")
            settings[name] = dict(
                change.split("=", 1) for change in changes.split(",") if "=" in change
            )
    results: dict = {"cores": len(os.sched_getaffinity(0)), "reviews": args.reviews,
                     "python": platform.python_version(), "figures": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="critic-shared-") as scratch:
        for model in args.models:
            for name, setting in settings.items():
                print(f"{model}, {name} {setting or ''}", flush=True)
                figures = measure(model, args.reviews, setting, Path(scratch) / f"{model}-{name}")
                alone = figures["alone"]
                pair = figures["side_by_side"]
                print(
                    f"  alone {alone:.1f} s | beside a busy process {figures['beside_busy']:.1f} s "
                    f"({figures['beside_busy'] / alone:.2f}x) | two side by side "
                    f"{pair[0]:.1f} s and {pair[1]:.1f} s ({max(pair) / alone:.2f}x)",
                    flush=True,
                )
                results["figures"][f"{model}/{name}"] = figures
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
