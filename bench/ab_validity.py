"""Benchmark: does the online A/B test keep its promise? One table, written into
docs/benchmarks.md.

    python bench/ab_validity.py                      # 1,000 tests per row (about 10 minutes)
    python bench/ab_validity.py --runs 200 --doc /tmp/benchmarks.md   # a quick try

The A/B view promises that when the variants are equally good, the chance it ever names a
winner is at most alpha however often someone looks. This drives its decision code
(critic.evaluation.abtest.decide, through critic.evaluation.simulate) over seeded simulated
tests whose truth is known, and counts how often a winner was named among variants of equal
accuracy: with a fixed even split and with Thompson sampling moving the traffic every 50 votes
(floor 5%, as ``critic serve --auto-weights-s``), with accuracies that stay put or drift
together over the test (80% to 92% rising, the reverse, or a step halfway), two and four
variants. Beside it, the pooled test the view used before (each pair's pooled counts, one alpha
per comparison), on the same votes.

Then the votes a true difference of 3 points needs (86% against 89%), median over the runs: a
traffic split (every vote on one of the two) against a shadow scored on the live variant's
votes (every vote judges both; they disagree on 10% of reviews).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

from critic.evaluation.simulate import false_winner_rates, votes_to_decide

START_MARKER = "<!-- ab-validity:start (bench/ab_validity.py writes this section) -->"
END_MARKER = "<!-- ab-validity:end -->"
VOTES = 3000
ALPHA = 0.05
ROWS = [
    (traffic, drift, variants)
    for variants in (2, 4)
    for traffic in ("fixed", "adaptive")
    for drift in ("none", "rise", "fall", "step")
]


def _row(arguments) -> dict:
    traffic, drift, variants, runs, seed = arguments
    started = time.perf_counter()
    rates = false_winner_rates(
        runs, VOTES, variants, drift, adaptive=traffic == "adaptive", alpha=ALPHA, seed=seed
    )
    return {
        "traffic": traffic,
        "drift": drift,
        "variants": variants,
        "runs": runs,
        **rates,
        "seconds": time.perf_counter() - started,
    }


def _decide(arguments) -> dict:
    paired, runs, seed = arguments
    median, decided = votes_to_decide(runs, 0.03, paired=paired, seed=seed)
    return {"design": "paired shadow" if paired else "split", "median": median, "decided": decided}


def table(rows: list[dict], decisions: list[dict], runs: int, seconds: float) -> str:
    error = math.sqrt(ALPHA * (1 - ALPHA) / runs)
    lines = [
        START_MARKER,
        "",
        "```sh",
        f"python bench/ab_validity.py --runs {runs}",
        "```",
        "",
        f"False winners at \u03b1 = {ALPHA}: the share of {runs:,} seeded tests of equally "
        f"good variants ({VOTES:,} votes each, the test looking after every vote) in which a "
        f"winner was named. Simulation error at \u03b1: \u00b1{error * 100:.1f} points (one "
        "standard error).",
        "",
        "| traffic | accuracy drift | variants | critic's test | pooled test (before) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        within = "" if row["weighted"] <= ALPHA + 2 * error else " **over \u03b1**"
        lines.append(
            f"| {row['traffic']} | {row['drift']} | {row['variants']} | "
            f"{row['weighted'] * 100:.1f}%{within} | {row['pooled'] * 100:.1f}% |"
        )
    lines += [
        "",
        "Votes to decide a true 3-point difference (86% against 89%, \u03b1 = 0.05), median "
        "over the runs that decided within 20,000 votes:",
        "",
        "| design | votes (all variants together) | decided within 20,000 |",
        "| --- | --- | --- |",
    ]
    for entry in decisions:
        lines.append(
            f"| {entry['design']} | {entry['median']:,.0f} | {entry['decided'] * 100:.0f}% |"
        )
    lines += [
        "",
        "Fixed: an even split throughout. Adaptive: Thompson sampling from the pooled counts "
        "every 50 votes, floor 5%. Drift: all variants' accuracy moves together, 80% to 92% "
        "(rise), 92% to 80% (fall), or 80% then 92% from halfway (step); none: 86% throughout. "
        "critic's test: the mSPRT on inverse-propensity-weighted increments with Holm's "
        "correction across the challengers (critic.evaluation.abtest). Pooled: the mSPRT on "
        "each pair's pooled counts, one \u03b1 per comparison. Paired shadow: the "
        "beta-binomial mixture test on the reviews where the shadow and the live variant "
        "disagree (10% of them).",
        "",
        f"Measured {date.today().isoformat()}, {seconds / 60:.1f} minutes on {os.cpu_count()} "
        "cores.",
        "",
        END_MARKER,
    ]
    return "\n".join(lines)


def write_section(doc: Path, section: str) -> None:
    """Replace the marked section of ``doc``; append one under a heading when it has none."""
    current = doc.read_text(encoding="utf-8") if doc.exists() else ""
    start, end = current.find(START_MARKER), current.find(END_MARKER)
    if start >= 0 and end > start:
        updated = current[:start] + section + current[end + len(END_MARKER) :]
    else:
        heading = "\n## Online A/B decisions: false winners and votes to a decision\n\n"
        updated = current.rstrip("\n") + "\n" + heading + section + "\n"
    doc.write_text(updated, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="simulated tests per row")
    parser.add_argument("--decide-runs", type=int, default=200, help="runs per design")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    if args.runs < 1 or args.decide_runs < 1:
        parser.error("--runs and --decide-runs must be at least 1")
    started = time.perf_counter()
    rows_asked = [(*row, args.runs, args.seed) for row in ROWS]
    designs = [(paired, args.decide_runs, args.seed) for paired in (False, True)]
    if args.processes <= 1:  # in this process (also what the suite's test runs)
        rows, decisions = list(map(_row, rows_asked)), list(map(_decide, designs))
    else:
        with ProcessPoolExecutor(max_workers=args.processes) as pool:
            rows, decisions = list(pool.map(_row, rows_asked)), list(pool.map(_decide, designs))
    for row in rows:
        print(
            f"{row['traffic']:>8} {row['drift']:>5} {row['variants']} variants: "
            f"critic {row['weighted'] * 100:5.1f}%  pooled {row['pooled'] * 100:5.1f}%  "
            f"({row['seconds']:.0f} s)",
            file=sys.stderr,
        )
    section = table(rows, decisions, args.runs, time.perf_counter() - started)
    write_section(args.doc, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
