"""Benchmark: one table of every model recipe, written into docs/benchmarks.md.

    python bench/models_table.py                                  # the default recipes below
    python bench/models_table.py --recipe big='--model lstm --vocab-size 20000' --recipe lstm='--model lstm'
    python bench/models_table.py --recipes recipes.json --reuse  # {"name": "critic train options", ...}
    python bench/models_table.py --common '--max-reviews 2000 --epochs 1' --rt-max-reviews 1000 \\
        --doc /tmp/benchmarks.md --json /tmp/models.json          # a quick try
    python bench/models_table.py --seeds 0 1 2                    # every figure a mean ± sd
    python bench/models_table.py --seeds 0 1 2 --track            # ... each run logged to MLflow

Each recipe is a name and the `critic train` options that make it. The script trains each one
into RUNS/NAME (or, with --reuse, takes the bundle already there), then judges every bundle
the same way, through the Predictor a server would use:

* vocabulary size, embeddings (none, or the word vectors' file), parameters, training time
  (the training loop's own clock, from metrics.json), validation accuracy (best epoch);
* test accuracy on the bundle's own held-out test split (critic's 2,500 embedded reviews);
* ECE (15 bins): metrics.json's ``test_ece`` when the bundle has it, else computed here from
  the test predictions;
* accuracy on every Rotten Tomatoes snippet (a second domain, never trained on);
* reviews/s at inference: ``Predictor.predict_proba`` over the test split in its batches,
  the fastest of three passes.

With ``--seeds``, every recipe is trained once per seed (``critic train --seed S``, into
RUNS/seed-S/NAME; an ensemble of that seed's members) and each figure is the mean over the
seeds, accuracies and ECE with their standard deviation (n - 1), so that a figure is what
a user gets on a fresh clone rather than one lucky run. The data split stays the same
(``--split-seed`` is not the seed): the seeds vary the weights' start, the shuffling, dropout
and word2vec's start.

With --track (critic[tracking]), every recipe and seed is an MLflow run (``critic train
--track``, named RECIPE seed S; CRITIC_TRACKING_URI or MLFLOW_TRACKING_URI say where, else
``sqlite:///runs/mlflow.db``), and the figures measured here are logged to it as ``bench/...``:
``mlflow ui`` then compares the seeds of a recipe side by side.

The table goes into DOC between the marker comments below (a re-run replaces it; without the
markers a section is appended) and, with every figure unrounded, into JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from critic.data.prepare import load_splits
from critic.data.sources import load_all_reviews
from critic.data.split import stratified_sample
from critic.evaluation.calibration import expected_calibration_error
from critic.evaluation.compare import score_reviews
from critic.fileio import write_text_atomic
from critic.inference.predictor import Predictor
from critic.system import ThreadGovernor
from critic.training.run import training_seconds

# name -> `critic train` options. The reference LSTM only, for now. Add the other models here
# as they land, one line each, e.g.:
#   "gru": "--model gru",
#   "bilstm": "--model bilstm --vocab-size 20000 --num-layers 2 --dropout 0.3",
#   "cnn-lstm": "--model cnn-lstm",
#   "attention": "--model attention --embeddings runs/w2v.txt",
#   "nbsvm": "--model nbsvm",
#   "ensemble": "--model ensemble ...",
# Each model with its own recipe (critic models); "ensemble A B ..." assembles the runs named.
DEFAULT_RECIPES: dict[str, str] = {
    "lstm": "--model lstm",
    "gru": "--model gru",
    "bilstm": "--model bilstm",
    "cnn-lstm": "--model cnn-lstm",
    "attention": "--model attention",
    "attention-ngrams": "--model attention-ngrams",
    "ngrams": "--model ngrams",
    "nbsvm": "--model nbsvm",
    "ensemble": "ensemble nbsvm attention ngrams",
    # Issue 26: general-text vectors (critic[glove]) instead of word2vec of the training split:
    # Amazon's snippets 71.8% instead of 67.1% (ROC AUC 0.788, 0.745), the rest unchanged.
    "cnn-lstm-glove": "--model cnn-lstm --embeddings glove-6b-50d",
}

START_MARKER = (
    "<!-- models-table:start (written by bench/models_table.py; edits inside are replaced) -->"
)
END_MARKER = "<!-- models-table:end -->"
SECTION_TITLE = "## Every model"
# metrics.json keys that may already hold the test split's ECE (a calibrated bundle's own).
ECE_KEYS = ("test_ece_after", "test_ece", "ece")


def parse_recipes(recipe_options: list[str], recipes_file: Path | None) -> dict[str, list[str]]:
    """Recipes from --recipes FILE and --recipe NAME=OPTIONS; the defaults when neither is given."""
    recipes: dict[str, str | list[str]] = {}
    if recipes_file is not None:
        loaded = json.loads(recipes_file.read_text(encoding="utf-8"))
        if isinstance(loaded, list):
            loaded = {item["name"]: item["args"] for item in loaded}
        if not isinstance(loaded, dict):
            raise SystemExit(f"{recipes_file}: expected an object of name -> critic train options")
        recipes.update(loaded)
    for option in recipe_options:
        name, separator, arguments = option.partition("=")
        if not separator or not name.strip():
            raise SystemExit(f"--recipe {option!r}: expected NAME='critic train options'")
        recipes[name.strip()] = arguments
    if not recipes:
        recipes = dict(DEFAULT_RECIPES)
    return {
        name: shlex.split(arguments) if isinstance(arguments, str) else [str(a) for a in arguments]
        for name, arguments in recipes.items()
    }


def train_recipe(
    name: str,
    arguments: list[str],
    common: list[str],
    folder: Path,
    seed: int | None = None,
    track: bool = False,
) -> float:
    """`critic train` for one recipe (`critic ensemble` for "ensemble A B ...", of the members
    beside it); the wall time in seconds."""
    if arguments[:1] == ["ensemble"]:
        # "ensemble A B --no-short-reviews": the names are members, the options critic ensemble's.
        members = [str(folder.parent / word) for word in arguments[1:] if not word.startswith("-")]
        options = [word for word in arguments[1:] if word.startswith("-")]
        command = [sys.executable, "-m", "critic.cli", "ensemble", *members, "--out", str(folder)]
        command += options
    else:
        command = [sys.executable, "-m", "critic.cli", "train", "--out", str(folder)]
        command += ["--no-progress", *arguments, *common]
        if seed is not None:
            command += ["--seed", str(seed)]
    if track:
        command += ["--track", "--run-name", f"{name} seed {seed if seed is not None else 0}"]
    print(f"models_table: training {name}: {shlex.join(command[3:])}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def log_to_run(folder: Path, figures: dict) -> None:
    """The figures measured here, into the MLflow run that trained the bundle (if tracked)."""
    from critic.tracking.runs import TrackedRun, numbers
    from critic.tracking.settings import TrackingSettings

    run = TrackedRun.of_bundle(TrackingSettings.from_env(), folder)
    if run is None:
        print(f"models_table: {folder} records no MLflow run (reused?): not logged", flush=True)
        return
    run.log_metrics(numbers(figures, "bench/"))


def embeddings_of(config: dict) -> str:
    """ "none", or the name of the word-vector file a model's embedding was started from."""
    for section in config.values():
        if not isinstance(section, dict):
            continue
        for key, value in section.items():
            if ("embeddings" in key or "pretrained" in key) and isinstance(value, str) and value:
                return Path(value).name
    return "none"


def measure(name: str, arguments: list[str], folder: Path, rotten_tomatoes) -> dict:
    """Every figure of the table for one trained bundle."""
    predictor = Predictor.load(folder)
    bundle = predictor.bundle
    metrics = bundle.metrics
    test = load_splits(bundle.config.data)["test"]
    tested = score_reviews(predictor, test.texts, repeats=3)
    test_accuracy = float(np.mean((tested.probabilities >= 0.5) == test.labels))
    stored_ece = next((metrics[k] for k in ECE_KEYS if isinstance(metrics.get(k), float)), None)
    on_rt = score_reviews(predictor, rotten_tomatoes.texts)
    parameters = metrics.get("parameters")
    if parameters is None and isinstance(bundle.model, torch.nn.Module):
        parameters = sum(p.numel() for p in bundle.model.parameters())
    vocab = getattr(bundle, "vocab", None)
    kind = predictor.kind
    if kind == "nbsvm":
        vocabulary = f"{bundle.config.model.vocab_size:,} n-grams"
    elif kind == "ensemble":
        vocabulary = "its members'"
    else:
        vocabulary = f"{len(vocab) if vocab is not None else bundle.config.data.vocab_size:,}"
    train_seconds = training_seconds(metrics)  # word2vec, pre-training and members included
    return {
        "name": name,
        "recipe": shlex.join(arguments),
        "model": predictor.name,
        "vocabulary": vocabulary,
        "embeddings": embeddings_of(bundle.config.to_dict()),
        "parameters": parameters,
        "train_seconds": train_seconds,
        "train_device": metrics.get("device"),
        "epochs": metrics.get("epochs"),
        "val_accuracy": metrics.get("val_accuracy"),
        "test_accuracy": test_accuracy,
        "test_reviews": len(test),
        "ece": stored_ece
        if stored_ece is not None
        else expected_calibration_error(test.labels, tested.probabilities, bins=15),
        "ece_from": "metrics.json" if stored_ece is not None else "test predictions",
        "rotten_tomatoes_accuracy": float(
            np.mean((on_rt.probabilities >= 0.5) == rotten_tomatoes.labels)
        ),
        "rotten_tomatoes_reviews": len(rotten_tomatoes),
        "reviews_per_second": tested.reviews_per_second,
        "bundle": str(folder),
    }


# The figures that vary from seed to seed and are shown as mean ± sd; the others as the mean.
SPREAD = ("val_accuracy", "test_accuracy", "ece", "rotten_tomatoes_accuracy")
AVERAGED = ("train_seconds", "train_wall_seconds", "epochs", "reviews_per_second")


def summarise(
    runs: list[dict],
    spread: tuple[str, ...] = SPREAD,
    averaged: tuple[str, ...] = AVERAGED,
    left_out: tuple[str, ...] = ("seed", "bundle"),
) -> dict:
    """One recipe's row from its runs (one per seed): the means of the figures in ``spread``
    and ``averaged``, and the sample standard deviation (n - 1) of those in ``spread``, None
    with a single run; the other keys of the first run but ``left_out`` as they are."""
    summary = {key: value for key, value in runs[0].items() if key not in left_out}
    for key in (*spread, *averaged):
        values = [run[key] for run in runs if run.get(key) is not None]
        summary[key] = float(np.mean(values)) if values else None
        if key in spread:
            summary[f"{key}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    summary["seeds"] = [run.get("seed") for run in runs]
    summary["runs"] = runs
    return summary


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def percent_with_spread(row: dict, key: str) -> str:
    """A percentage with its seeds' standard deviation in points, when there is one."""
    sd = row.get(f"{key}_sd")
    return _percent(row[key]) + ("" if sd is None else f" ± {100 * sd:.2f}")


def duration(seconds) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| model | vocabulary | embeddings | parameters | training time | validation accuracy "
        "| test accuracy | ECE | Rotten Tomatoes accuracy | reviews/s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        parameters = "–" if row["parameters"] is None else f"{row['parameters']:,}"
        ece_sd = row.get("ece_sd")
        lines.append(
            f"| {row['name']} | {row['vocabulary']} | {row['embeddings']} | {parameters} | "
            f"{duration(row['train_seconds'])} | {percent_with_spread(row, 'val_accuracy')} | "
            f"**{percent_with_spread(row, 'test_accuracy')}** | {row['ece']:.4f}"
            f"{'' if ece_sd is None else f' ± {ece_sd:.4f}'} | "
            f"{percent_with_spread(row, 'rotten_tomatoes_accuracy')} | {row['reviews_per_second']:,.0f} |"
        )
    return "\n".join(lines)


def section(rows: list[dict], command: str) -> str:
    """The text between the markers: the table, the recipes, and how it was measured."""

    several = any(len(row.get("seeds") or []) > 1 for row in rows)

    def command_of(recipe: str) -> str:
        words = recipe.split()
        if words[:1] == ["ensemble"]:
            named = " ".join(f"RUNS/{w}" if not w.startswith("-") else w for w in words[1:])
            return f"critic ensemble {named} --out RUNS/NAME"
        return f"critic train {recipe} --out RUNS/NAME" + (" --seed S" if several else "")

    recipes = "\n".join(f"* `{row['name']}`: `{command_of(row['recipe'])}`" for row in rows)
    seeds = sorted({tuple(row.get("seeds") or [None]) for row in rows})
    if seeds == [(None,)] or seeds == [(0,)]:
        over = "One run per recipe (seed 0). "
    else:
        listed = "; ".join(", ".join(str(seed) for seed in group) for group in seeds)
        over = (
            f"Every figure is the mean over seeds {listed} (`critic train --seed S`; the same "
            "data split), ± the standard deviation between them in points (n - 1); training "
            "time and reviews/s are means. "
        )
    test_reviews = sorted({row["test_reviews"] for row in rows})
    rt_reviews = sorted({row["rotten_tomatoes_reviews"] for row in rows})
    return "\n".join(
        [
            START_MARKER,
            "",
            "```sh",
            command,
            "```",
            "",
            markdown_table(rows),
            "",
            over + f"Measured {date.today().isoformat()} on {os.cpu_count()} CPU core(s), "
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s). "
            f"Test accuracy: each bundle's held-out test split "
            f"({', '.join(f'{n:,}' for n in test_reviews)} reviews); ECE: 15 bins of the "
            f"predicted label's confidence; Rotten Tomatoes: "
            f"{', '.join(f'{n:,}' for n in rt_reviews)} snippets, never trained on; reviews/s: "
            "`Predictor.predict_proba` over the test split in batches, tokenising included, "
            "fastest of 3 passes; "
            "training time: the training loops' own clocks in metrics.json (word2vec before the "
            "epochs and an ensemble's members included), on "
            f"{', '.join(sorted({str(row['train_device']) for row in rows if row['train_device']}))}.",
            "",
            "Recipes:",
            "",
            recipes,
            "",
            END_MARKER,
        ]
    )


def write_into_doc(doc: Path, text: str) -> None:
    """Replace the marked section of ``doc``; append one when it has no markers yet."""
    current = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    start = current.find(START_MARKER.split(" (")[0])
    end = current.find(END_MARKER)
    if start != -1 and end > start:
        updated = current[:start] + text + current[end + len(END_MARKER) :]
    else:
        updated = f"{current.rstrip()}\n\n{SECTION_TITLE}\n\n{text}\n"
    write_text_atomic(doc, updated)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--recipe", action="append", default=[], metavar="NAME=OPTIONS",
        help="a recipe: name and critic train options, e.g. lstm='--model lstm' (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--recipes", type=Path, help="JSON file of recipes: {name: options} or [{name, args}]"
    )
    parser.add_argument("--runs", type=Path, default=Path("bench/out/models"))
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, metavar="S",
        help="train every recipe once per seed, into RUNS/seed-S/NAME; figures are mean ± sd",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", action="store_true", help="take a bundle already in RUNS/NAME as it is"
    )
    parser.add_argument(
        "--common", default="", help="critic train options added to every recipe (quick tries)"
    )
    parser.add_argument(
        "--rt-max-reviews", type=int, help="a stratified sample of the Rotten Tomatoes snippets"
    )
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--no-doc", action="store_true", help="write only the JSON")
    parser.add_argument("--json", type=Path, default=Path("docs/models_table.json"))
    parser.add_argument(
        "--track",
        action="store_true",
        help="log every recipe and seed to MLflow (critic[tracking])",
    )
    args = parser.parse_args(argv)

    recipes = parse_recipes(args.recipe, args.recipes)
    common = shlex.split(args.common)
    rotten_tomatoes = load_all_reviews("rotten_tomatoes")
    if args.rt_max_reviews is not None:
        rotten_tomatoes = stratified_sample(rotten_tomatoes, args.rt_max_reviews, seed=0)

    rows = []
    for name, arguments in recipes.items():
        runs = []
        for seed in args.seeds or [None]:
            folder = args.runs / name if seed is None else args.runs / f"seed-{seed}" / name
            wall = None
            if args.reuse and (folder / "bundle.json").is_file():
                print(f"models_table: reusing {folder}", flush=True)
            else:
                wall = train_recipe(name, arguments, common, folder, seed, args.track)
            # Judged in this process, on the threads the machine leaves free as judging starts
            # (a training this script ran has ended by then), kept for the whole measurement:
            # reviews/s is a speed, timed on one thread count (critic.system.ThreadGovernor).
            ThreadGovernor(
                log=lambda line: print(f"models_table: {line}", flush=True),
                what=f"judge {name}",
                adapt=False,
            ).start()
            run = measure(name, [*arguments, *common], folder, rotten_tomatoes)
            run["seed"] = seed if seed is not None else 0
            run["train_wall_seconds"] = wall
            if args.track:
                log_to_run(folder, run)
            runs.append(run)
            print(json.dumps(run), flush=True)
        rows.append(summarise(runs))

    command = shlex.join(
        ["python", "bench/models_table.py", *(sys.argv[1:] if argv is None else argv)]
    )
    table = markdown_table(rows)
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        args.json,
        json.dumps(
            {
                "command": command,
                "date": date.today().isoformat(),
                "cpu_count": os.cpu_count(),
                "machine": platform.machine(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "models": rows,
            },
            indent=2,
        )
        + "\n",
    )
    if not args.no_doc:
        write_into_doc(args.doc, section(rows, command))
        print(f"models_table: wrote the table into {args.doc} and {args.json}")
    return rows


if __name__ == "__main__":
    main()
