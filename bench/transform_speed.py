"""Benchmark: critic transform against the Predictor's own offline speed, in the same run.

    python bench/transform_speed.py runs/lstm runs/nbsvm runs/attention --reviews 2000
    python bench/transform_speed.py runs/nbsvm --rss-lines 1000000   # RSS of a million lines

For each bundle, N reviews drawn from the embedded IMDB data are scored twice, alternately,
``--repeats`` times each: by ``Predictor.predict`` on batches of ``--batch-size`` held in
memory (the offline figure), and by :func:`critic.apps.batch.transform_file` over the same
reviews as a text file, one a line (read, predicted, written, checkpointed). The best of each
is kept; the target is a ratio of at least 0.90.

``--rss-lines M`` also writes a file of M lines (the reviews repeated) and transforms it in a
child process with the first bundle, reporting the child's peak resident memory (the target
is under 1 GB) and its reviews/s.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from critic.apps.batch import TransformSettings, transform_file
from critic.data.sources import load_embedded
from critic.inference.predictor import Predictor


def draw_reviews(count: int, seed: int = 0) -> list[str]:
    """``count`` embedded IMDB reviews (drawn with replacement past 25,000), one line each."""
    texts = load_embedded("imdb").texts
    generator = random.Random(seed)
    return [" ".join(generator.choice(texts).split()) for _ in range(count)]


def offline_seconds(predictor: Predictor, reviews: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(reviews), batch_size):
        predictor.predict(reviews[start : start + batch_size])
    return time.perf_counter() - started


def transform_seconds(predictor: Predictor, source: Path, out: Path, batch_size: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    settings = TransformSettings(batch_size=batch_size)
    started = time.perf_counter()
    result = transform_file(predictor, source, out, settings)
    seconds = time.perf_counter() - started
    if result.errors:
        raise SystemExit(f"{result.errors} reviews could not be answered")
    return seconds


def measure(bundle: Path, reviews: list[str], source: Path, args: argparse.Namespace) -> dict:
    predictor = Predictor.load(bundle)
    predictor.predict(reviews[: args.batch_size])  # warm up: first-call allocations, caches
    out = source.parent / f"out-{bundle.name}"
    offline, through_files = [], []
    for _ in range(args.repeats):  # alternated, so that a busy moment hits both alike
        offline.append(offline_seconds(predictor, reviews, args.batch_size))
        through_files.append(transform_seconds(predictor, source, out, args.batch_size))
    offline_rps = len(reviews) / min(offline)
    transform_rps = len(reviews) / min(through_files)
    return {
        "model": predictor.name,
        "bundle": str(bundle),
        "reviews": len(reviews),
        "batch_size": args.batch_size,
        "offline_reviews_per_second": round(offline_rps, 1),
        "transform_reviews_per_second": round(transform_rps, 1),
        "ratio": round(transform_rps / offline_rps, 3),
    }


_CHILD = """
import sys, time
from pathlib import Path
from critic.apps.batch import TransformSettings, transform_files
bundle, source, out, batch_size = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
started = time.perf_counter()
[result] = transform_files(bundle, [source], out, TransformSettings(batch_size=batch_size), show_progress=False)
seconds = time.perf_counter() - started
# The peak of this program's own memory (VmHWM belongs to the memory exec gave it): the rusage
# a parent reads also counts the moment between fork and exec, when the child is a copy of
# the parent -- the suite's whole process, for a test.
try:
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    import resource
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(result.records, seconds, peak_kib)
"""


def measure_rss(
    bundle: Path, reviews: list[str], lines: int, folder: Path, batch_size: int
) -> dict:
    """Transform a file of ``lines`` lines in a child process: its peak RSS and its speed."""
    source = folder / "million.txt"
    with open(source, "w", encoding="utf-8") as handle:
        for number in range(lines):
            handle.write(reviews[number % len(reviews)] + "\n")
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, str(bundle), str(source), str(folder / "rss"), str(batch_size)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    # The child's own peak, which it reports: getrusage(RUSAGE_CHILDREN) here would be the
    # largest of every child this process ever had, each counted from its fork.
    records, seconds, peak = completed.stdout.split()
    peak_kib = int(peak)
    return {
        "bundle": str(bundle),
        "lines": lines,
        "input_mb": round(source.stat().st_size / 1e6, 1),
        "records": int(records),
        "seconds": round(float(seconds), 1),
        "reviews_per_second": round(int(records) / float(seconds), 1),
        "peak_rss_mb": round(peak_kib / 1024, 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-lines", type=int, default=0)
    args = parser.parse_args(argv)

    reviews = draw_reviews(args.reviews)
    rows = []
    with tempfile.TemporaryDirectory(prefix="critic-transform-bench-") as scratch:
        folder = Path(scratch)
        source = folder / "reviews.txt"
        source.write_text("".join(review + "\n" for review in reviews), encoding="utf-8")
        for bundle in args.bundles:
            row = measure(bundle, reviews, source, args)
            print(json.dumps(row), flush=True)
            rows.append(row)
        print("| model | offline reviews/s | transform reviews/s | ratio |")
        print("| --- | --- | --- | --- |")
        for row in rows:
            print(
                f"| {row['model']} | {row['offline_reviews_per_second']:,.0f} | "
                f"{row['transform_reviews_per_second']:,.0f} | {row['ratio']:.2f} |"
            )
        if args.rss_lines:
            memory = measure_rss(args.bundles[0], reviews, args.rss_lines, folder, args.batch_size)
            print(json.dumps(memory), flush=True)
            rows.append(memory)
    return rows


if __name__ == "__main__":
    main()
