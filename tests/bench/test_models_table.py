"""bench/models_table.py: recipes, the figures of one bundle, and the section it keeps in a doc."""

import numpy as np
import pytest

from critic.data.prepare import load_splits
from critic.data.sources import load_all_reviews
from critic.data.split import stratified_sample
from critic.evaluation.calibration import expected_calibration_error
from critic.inference.predictor import Predictor
from support.bench import load_bench_script


@pytest.fixture(scope="module")
def models_table():
    return load_bench_script("models_table")


def test_recipes_come_from_options_a_file_or_the_defaults(models_table, tmp_path):
    assert models_table.parse_recipes([], None) == {
        name: args.split() for name, args in models_table.DEFAULT_RECIPES.items()
    }
    (tmp_path / "recipes.json").write_text('{"gru": "--model gru", "big": ["--vocab-size", 20000]}')
    recipes = models_table.parse_recipes(
        ["lstm=--model lstm --dropout 0.2", "big=--vocab-size 30000"], tmp_path / "recipes.json"
    )
    assert recipes == {
        "gru": ["--model", "gru"],
        "big": ["--vocab-size", "30000"],  # an option given later wins
        "lstm": ["--model", "lstm", "--dropout", "0.2"],
    }
    with pytest.raises(SystemExit, match="NAME="):
        models_table.parse_recipes(["no-equals-sign"], None)


def test_one_bundle_is_measured_through_its_predictor(models_table, trained_bundle):
    rotten = stratified_sample(load_all_reviews("rotten_tomatoes"), 60, seed=0)
    row = models_table.measure("lstm", ["--model", "lstm"], trained_bundle, rotten)
    predictor = Predictor.load(trained_bundle)
    test = load_splits(predictor.bundle.config.data)["test"]
    probabilities = predictor.predict_proba(test.texts)
    assert row["test_accuracy"] == pytest.approx(((probabilities >= 0.5) == test.labels).mean())
    assert row["test_accuracy"] == pytest.approx(predictor.bundle.metrics["test_accuracy"])
    # A calibrated bundle: the ECE of its calibrated scores, as training measured it.
    scores = predictor.predict_scores(test.texts)
    assert row["ece"] == pytest.approx(expected_calibration_error(test.labels, scores), abs=1e-6)
    assert row["ece_from"] == "metrics.json"
    assert row["train_seconds"] == pytest.approx(predictor.bundle.metrics["train_seconds"])
    on_rt = predictor.predict_proba(rotten.texts)
    assert row["rotten_tomatoes_accuracy"] == pytest.approx(
        np.mean((on_rt >= 0.5) == rotten.labels)
    )
    assert row["vocabulary"] == "2,000" and row["embeddings"] == "none"
    assert row["parameters"] == sum(p.numel() for p in predictor.model.parameters())
    assert row["reviews_per_second"] > 0


def test_the_table_replaces_its_own_section_and_nothing_else(models_table, tmp_path):
    row = {
        "name": "lstm", "recipe": "--model lstm", "vocabulary": "5,000", "embeddings": "none",
        "parameters": 213701, "train_seconds": 293.0, "train_device": "cpu",
        "val_accuracy": 0.8644, "test_accuracy": 0.8628, "test_reviews": 2500, "ece": 0.0123,
        "rotten_tomatoes_accuracy": 0.71, "rotten_tomatoes_reviews": 8530,
        "reviews_per_second": 1090.4,
    }  # fmt: skip
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nKept.\n")
    models_table.write_into_doc(doc, models_table.section([row], "python bench/models_table.py"))
    first = doc.read_text()
    assert first.startswith("# Benchmarks\n\nKept.\n") and "## Every model" in first
    assert (
        "| lstm | 5,000 | none | 213,701 | 4.9 min | 86.44% | **86.28%** | 0.0123 | 71.00% | 1,090 |"
        in first
    )
    doc.write_text(first + "\n## Later section\n\nAlso kept.\n")
    models_table.write_into_doc(
        doc, models_table.section([{**row, "name": "gru"}], "python bench/models_table.py")
    )
    second = doc.read_text()
    assert second.count("models-table:start") == 1 and second.count("## Every model") == 1
    assert "| gru |" in second and "| lstm |" not in second
    assert second.endswith("## Later section\n\nAlso kept.\n")


def test_runs_over_seeds_become_one_row_of_means_and_standard_deviations(models_table, tmp_path):
    def run(seed, test_accuracy, seconds):
        return {
            "name": "gru", "recipe": "--model gru", "vocabulary": "5,000", "embeddings": "none",
            "parameters": 200301, "train_seconds": seconds, "train_wall_seconds": seconds + 5,
            "train_device": "cpu", "epochs": 4, "val_accuracy": test_accuracy - 0.01,
            "test_accuracy": test_accuracy, "test_reviews": 2500, "ece": 0.01 * (seed + 1),
            "rotten_tomatoes_accuracy": 0.68, "rotten_tomatoes_reviews": 8530,
            "reviews_per_second": 2000.0 + seed, "seed": seed, "bundle": f"runs/seed-{seed}/gru",
        }  # fmt: skip

    runs = [run(0, 0.880, 240.0), run(1, 0.884, 250.0), run(2, 0.888, 260.0)]
    row = models_table.summarise(runs)
    assert row["test_accuracy"] == pytest.approx(0.884)
    assert row["test_accuracy_sd"] == pytest.approx(0.004)  # n - 1: sqrt((16 + 0 + 16) / 2) / 1000
    assert row["ece"] == pytest.approx(0.02) and row["ece_sd"] == pytest.approx(0.01)
    assert row["rotten_tomatoes_accuracy_sd"] == pytest.approx(0.0)
    assert row["train_seconds"] == 250.0 and row["reviews_per_second"] == 2001.0
    assert row["seeds"] == [0, 1, 2] and row["runs"] == runs and "bundle" not in row
    text = models_table.section([row], "python bench/models_table.py --seeds 0 1 2")
    assert (
        "| gru | 5,000 | none | 200,301 | 4.2 min | 87.40% ± 0.40 | **88.40% ± 0.40** "
        "| 0.0200 ± 0.0100 | 68.00% ± 0.00 | 2,001 |" in text
    )
    assert "mean over seeds 0, 1, 2" in text
    assert "`critic train --model gru --out RUNS/NAME --seed S`" in text
    # One seed: plain figures, no spread.
    alone = models_table.summarise(runs[:1])
    assert alone["test_accuracy_sd"] is None
    assert "| **88.00%** |" in models_table.markdown_table([alone])
