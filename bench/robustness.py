"""Benchmark: how well the recipes do off movie reviews (issue 26), as a Markdown table.

    python bench/robustness.py --runs /tmp/robust --seeds 0 1 2 --reuse     # the recipes below
    python bench/robustness.py --recipe ngrams-wd='--model ngrams --word-dropout 0.3' --seeds 0 1
    python bench/robustness.py --link /tmp/m26 --seeds 0 --reuse   # seed 0's bundles from there
    python bench/robustness.py --lexicon ensemble --seeds 0 --reuse   # + the ensemble with VADER

Each recipe is a name and its `critic train` options (or "ensemble A B ...", the recipes' own
bundles of that seed assembled by `critic ensemble`), as in bench/models_table.py; each is
trained once per seed into RUNS/seed-S/NAME (with --reuse, a bundle already there is taken as
it is; with --link FOLDER, seed 0's bundle FOLDER/NAME is linked in first when RUNS has none).
Every bundle is judged, through the Predictor a server would use, on:

* IMDB: the bundle's own held-out test split (critic's 2,500 embedded reviews), what it was
  trained for;
* Rotten Tomatoes: all 8,530 snippets (one-sentence critics' quotes; films, but never trained on);
* Amazon: the 2,942 labelled product-review snippets of VADER's ground truth with a word in
  them (of 2,943; Hutto and Gilbert 2014; ``--source amazon``): not films at all. Accuracy, and
  ROC AUC: how well the scores rank positive above negative whatever the threshold, since a
  model trained on balanced IMDB has no reason to put its threshold where 59% positive
  snippets want it.

The VADER lexicon (vaderSentiment, no training) is the reference row: positive when its
compound score is at least 0.05, as VADER's authors suggest. With ``--lexicon NAME`` a row
NAME+vader is added too: the recipe's bundle and VADER's compound score (as log-odds,
``2 atanh``) combined as an ensemble combines its members, one non-negative weight each and a
bias fitted on the bundle's IMDB validation split: VADER as a member or a prior, without any
review of the other domains in the fit.

Every figure is the mean over the seeds with its standard deviation (n - 1) in points.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import torch
from models_table import duration, parse_recipes, percent_with_spread, train_recipe
from models_table import summarise as summarise_runs

from critic.data.prepare import load_splits
from critic.data.sources import Reviews, load_all_reviews
from critic.data.split import stratified_sample
from critic.errors import CriticError
from critic.fileio import write_text_atomic
from critic.inference.ensemble import fit_weights
from critic.inference.predictor import Predictor
from critic.inference.scoring import weighted_log_odds
from critic.training.run import training_seconds

# name -> `critic train` options, or "ensemble A B ..." of the recipes named (the same seed's).
# The served model's recipe and its members, and the attempts of issue 26 that earned a row.
DEFAULT_RECIPES: dict[str, str] = {
    "nbsvm": "--model nbsvm",
    "ngrams": "--model ngrams",
    "attention": "--model attention",
    "ensemble": "ensemble nbsvm attention ngrams",
}
DOMAINS = ("imdb", "rotten_tomatoes", "amazon")
VADER = "vader"
# VADER's own cut: a compound score of 0.05 or more is positive (its README).
VADER_POSITIVE = 0.05


class Domains:
    """The reviews every bundle is judged on besides its own test split."""

    def __init__(self, rotten_tomatoes: Reviews, amazon: Reviews):
        self.rotten_tomatoes = rotten_tomatoes
        self.amazon = amazon

    @classmethod
    def load(cls, max_reviews: int | None = None) -> Domains:
        """Every Rotten Tomatoes and Amazon snippet, or a stratified sample of each."""
        domains = [load_all_reviews(source) for source in ("rotten_tomatoes", "amazon")]
        if max_reviews is not None:
            domains = [stratified_sample(d, min(max_reviews, len(d)), seed=0) for d in domains]
        return cls(*domains)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The chance that a random positive scores above a random negative (ties count half)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(int)
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def judged(name: str, probabilities: dict[str, np.ndarray], reviews: dict[str, Reviews]) -> dict:
    """Accuracy on each domain's reviews and ROC AUC on Amazon's, of ``probabilities`` (domain
    -> each review's probability of positive)."""
    row: dict = {"name": name}
    for domain in DOMAINS:
        labels, scores = reviews[domain].labels, np.asarray(probabilities[domain], np.float64)
        row[f"{domain}_accuracy"] = float(np.mean((scores >= 0.5) == labels))
        row[f"{domain}_reviews"] = len(labels)
    row["amazon_auc"] = roc_auc(reviews["amazon"].labels, probabilities["amazon"])
    return row


class Lexicon:
    """VADER's compound score (-1..1) of each text (vaderSentiment, imported when first used)."""

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()
        self._known: dict[str, float] = {}

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        scores = []
        for text in texts:
            if text not in self._known:
                self._known[text] = self._analyzer.polarity_scores(text)["compound"]
            scores.append(self._known[text])
        return np.array(scores, dtype=np.float64)

    def log_odds(self, texts: Sequence[str]) -> np.ndarray:
        """The compound score as log-odds, ``2 atanh(c) = log((1 + c) / (1 - c))``."""
        return 2 * np.arctanh(np.clip(self.compound(texts), -0.999, 0.999))

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """0.5 and over where VADER calls a text positive (compound >= 0.05), below else; the
        ranking is the compound score's."""
        compound = self.compound(texts)
        return np.clip(0.5 + (compound - VADER_POSITIVE) / 2, 0.0, 1.0)


def measure(
    name: str, folder: Path, domains: Domains, lexicon: Lexicon | None = None
) -> tuple[dict, dict | None]:
    """One bundle's row (the figures of :func:`judged`, its training time and where it is)
    and, given ``lexicon``, the row of the bundle and VADER combined: a non-negative weight
    each and a bias, fitted on the bundle's IMDB validation split only (as `critic ensemble`
    fits its members). Each domain is scored by the bundle once."""
    predictor = Predictor.load(folder)
    splits = load_splits(predictor.bundle.config.data)
    reviews = {
        "imdb": splits["test"],
        "rotten_tomatoes": domains.rotten_tomatoes,
        "amazon": domains.amazon,
    }
    logits = {domain: predictor.predict_logits(reviews[domain].texts) for domain in DOMAINS}
    row = judged(name, {d: 1 / (1 + np.exp(-logits[d])) for d in DOMAINS}, reviews)
    row["train_seconds"] = training_seconds(predictor.bundle.metrics)
    row["bundle"] = str(folder)
    if lexicon is None:
        return row, None
    validation = splits["validation"]
    validation_members = np.stack(
        [predictor.predict_logits(validation.texts), lexicon.log_odds(validation.texts)], axis=1
    )
    weights, bias = fit_weights(validation_members, validation.labels)
    combined = {}
    for domain in DOMAINS:
        members = np.stack([logits[domain], lexicon.log_odds(reviews[domain].texts)], axis=1)
        combined[domain] = 1 / (1 + np.exp(-weighted_log_odds(members, weights, bias)))
    blended = judged(f"{name}+{VADER}", combined, reviews)
    blended.update(
        weights=[float(w) for w in weights], train_seconds=row["train_seconds"], bundle=str(folder)
    )
    return row, blended


FIGURES = ("imdb_accuracy", "rotten_tomatoes_accuracy", "amazon_accuracy", "amazon_auc")


def summarise(runs: list[dict]) -> dict:
    """One row from its runs (one per seed): each figure's mean and sd (n - 1, None alone),
    the mean training time and, for a blend with the lexicon, the mean weights."""
    summary = summarise_runs(runs, FIGURES, ("train_seconds",), ("bundle", "seed", "weights"))
    if "weights" in runs[0]:
        summary["weights"] = np.mean([run["weights"] for run in runs], axis=0).tolist()
    return summary


def _figure(row: dict, key: str, percent: bool = True) -> str:
    if percent:
        return percent_with_spread(row, key)
    sd = row.get(f"{key}_sd")
    return f"{row[key]:.3f}" + ("" if sd is None else f" ± {sd:.3f}")


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| recipe | seeds | training time | IMDB test accuracy | Rotten Tomatoes accuracy "
        "| Amazon accuracy | Amazon ROC AUC |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        seeds = ", ".join(str(s) for s in row.get("seeds") or []) or "–"
        lines.append(
            f"| {row['name']} | {seeds} | {duration(row.get('train_seconds'))} | "
            f"{_figure(row, 'imdb_accuracy')} | **{_figure(row, 'rotten_tomatoes_accuracy')}** | "
            f"{_figure(row, 'amazon_accuracy')} | {_figure(row, 'amazon_auc', percent=False)} |"
        )
    return "\n".join(lines)


def _bundle_folder(runs: Path, name: str, seed: int, link: Path | None) -> Path:
    folder = runs / f"seed-{seed}" / name
    if link is not None and seed == 0 and not folder.exists():
        source = link / name
        if (source / "bundle.json").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.symlink_to(source.resolve(), target_is_directory=True)
            print(f"robustness: {folder} -> {source}", flush=True)
    return folder


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--recipe", action="append", default=[], metavar="NAME=OPTIONS",
        help="a recipe: name and critic train options, or 'ensemble A B ...' (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--recipes", type=Path, help="JSON file of recipes: {name: options} or [{name, args}]"
    )
    parser.add_argument("--runs", type=Path, default=Path("bench/out/robustness"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S")
    parser.add_argument(
        "--reuse", action="store_true", help="take a bundle already in RUNS/seed-S/NAME as it is"
    )
    parser.add_argument(
        "--link", type=Path, help="a folder of seed 0's bundles (FOLDER/NAME) to link in"
    )
    parser.add_argument(
        "--common", default="", help="critic train options added to every recipe (quick tries)"
    )
    parser.add_argument(
        "--lexicon", action="append", default=[], metavar="NAME",
        help="also judge recipe NAME combined with VADER (repeatable)",
    )  # fmt: skip
    parser.add_argument("--no-vader", action="store_true", help="leave out VADER's reference row")
    parser.add_argument(
        "--max-reviews", type=int, help="a stratified sample of each other domain (quick tries)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure, unrounded, here")
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> list[dict]:
    """Train (or reuse) every recipe for every seed, judge each bundle, print the table."""
    recipes = parse_recipes(args.recipe, args.recipes) if args.recipe or args.recipes else {
        name: shlex.split(options) for name, options in DEFAULT_RECIPES.items()
    }  # fmt: skip
    unknown = sorted(set(args.lexicon) - set(recipes))
    if unknown:
        raise SystemExit(f"--lexicon {', '.join(unknown)}: not one of the recipes")
    common = shlex.split(args.common)
    try:
        domains = Domains.load(args.max_reviews)
    except CriticError as error:  # e.g. VADER's source package not fetched yet: one line
        raise SystemExit(f"robustness: {error}") from None
    lexicon = Lexicon() if args.lexicon or not args.no_vader else None
    rows: list[dict] = []
    blended: list[dict] = []
    for name, arguments in recipes.items():
        runs, with_lexicon = [], []
        for seed in args.seeds:
            folder = _bundle_folder(args.runs, name, seed, args.link)
            if args.reuse and (folder / "bundle.json").is_file():
                print(f"robustness: reusing {folder}", flush=True)
            else:
                train_recipe(name, arguments, common, folder, seed)
            started = time.perf_counter()
            row, blended_row = measure(
                name, folder, domains, lexicon if name in args.lexicon else None
            )
            row["seed"] = seed
            runs.append(row)
            print(
                f"robustness: {name} seed {seed} judged in {time.perf_counter() - started:.0f} s: "
                + json.dumps({k: row[k] for k in FIGURES}),
                flush=True,
            )
            if blended_row is not None:
                with_lexicon.append({**blended_row, "seed": seed})
        rows.append(summarise(runs))
        if with_lexicon:
            blended.append(summarise(with_lexicon))
    rows.extend(blended)
    if lexicon is not None and not args.no_vader:
        # No training; its IMDB figure is over the test split of the first recipe's bundle.
        first = args.runs / f"seed-{args.seeds[0]}" / next(iter(recipes))
        rows.insert(0, summarise([_vader_row(first, domains, lexicon)]))
        rows[0]["seeds"] = []
    print(markdown_table(rows))
    print(
        f"\nMeasured {date.today().isoformat()} on {os.cpu_count()} CPU core(s), torch "
        f"{torch.__version__}; {rows[-1]['rotten_tomatoes_reviews']:,} Rotten Tomatoes and "
        f"{rows[-1]['amazon_reviews']:,} Amazon snippets."
    )
    if args.json is not None:
        command = shlex.join(["python", "bench/robustness.py", *sys.argv[1:]])
        payload = {"command": command, "date": date.today().isoformat(), "rows": rows}
        write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    return rows


def _vader_row(folder: Path, domains: Domains, lexicon: Lexicon) -> dict:
    """VADER alone, on the IMDB test split of the bundle in ``folder``."""
    test = load_splits(Predictor.load(folder).bundle.config.data)["test"]
    reviews = {"imdb": test, "rotten_tomatoes": domains.rotten_tomatoes, "amazon": domains.amazon}
    row = judged(VADER, {d: lexicon.probabilities(reviews[d].texts) for d in DOMAINS}, reviews)
    row["train_seconds"] = None
    row["seed"] = None
    return row


if __name__ == "__main__":
    main()
