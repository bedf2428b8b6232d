"""Benchmark: the reference LSTM trained full size on the embedded IMDB split.

    python bench/train_reference.py [--out bench/out/lstm] [--model lstm] [extra critic train options]

Runs `critic train` exactly as `make demo` does (the data preparation is timed separately:
the cache is emptied first), evaluates the bundle on the held-out test split, and prints one
JSON line with the figures that go into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/lstm"))
    parser.add_argument("--model", default="lstm")
    args, extra = parser.parse_known_args(argv)

    cache = Path(tempfile.mkdtemp(prefix="critic-bench-cache-"))
    env = {**os.environ, "CRITIC_CACHE": str(cache)}
    critic = [sys.executable, "-m", "critic.cli"]
    if args.out.exists():
        shutil.rmtree(args.out)
    started = time.perf_counter()
    subprocess.run(
        [*critic, "train", "--model", args.model, "--out", str(args.out), "--no-progress", *extra],
        check=True,
        env=env,
    )
    wall = time.perf_counter() - started
    evaluation = json.loads(
        subprocess.run(
            [*critic, "evaluate", str(args.out), "--split", "test"],
            check=True, capture_output=True, text=True, env=env,
        ).stdout
    )  # fmt: skip
    metrics = json.loads((args.out / "metrics.json").read_text())
    shutil.rmtree(cache, ignore_errors=True)
    figures = {
        "model": args.model,
        "options": extra,
        "wall_seconds": round(wall, 1),
        "prepare_seconds": metrics["prepare_seconds"],
        "train_seconds": metrics["train_seconds"],
        "epochs": metrics["epochs"],
        "best_epoch": metrics["best_epoch"],
        "train_reviews_per_second": metrics["train_reviews_per_second"],
        "val_accuracy": round(metrics["val_accuracy"], 4),
        "test_accuracy": round(evaluation["accuracy"], 4),
        "test_f1": round(evaluation["f1"], 4),
        "test_roc_auc": round(evaluation["roc_auc"], 4),
        "test_loss": round(evaluation["log_loss"], 4),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "torch": metrics["torch"],
        "device": metrics["device"],
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
