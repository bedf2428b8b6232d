"""bench/robustness.py: each bundle judged on IMDB, Rotten Tomatoes and Amazon, and the table."""

import numpy as np
import pytest

from critic.data.prepare import load_splits
from critic.data.sources import load_all_reviews
from critic.data.split import stratified_sample
from critic.data.text import has_words
from critic.inference.predictor import Predictor
from support.bench import load_bench_script


@pytest.fixture(scope="module")
def robustness():
    return load_bench_script("robustness")


@pytest.fixture(scope="module")
def domains(robustness):
    return robustness.Domains.load(max_reviews=60)


def test_roc_auc_is_the_chance_a_positive_outranks_a_negative_ties_counting_half(robustness):
    assert robustness.roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert robustness.roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=500)
    scores = np.round(rng.normal(size=500) + labels, 1)  # many ties
    pairs = (scores[labels == 1][:, None] > scores[labels == 0][None, :]).mean() + 0.5 * (
        scores[labels == 1][:, None] == scores[labels == 0][None, :]
    ).mean()
    assert robustness.roc_auc(labels, scores) == pytest.approx(pairs)


def test_the_other_domains_are_every_snippet_or_a_stratified_sample(robustness, domains):
    assert len(domains.rotten_tomatoes) == 60 and len(domains.amazon) == 60
    amazon = load_all_reviews("amazon")
    assert all(has_words(text) for text in amazon.texts)  # every one a server would answer
    assert domains.amazon.texts == stratified_sample(amazon, 60, seed=0).texts


def test_one_bundle_is_judged_on_every_domain_through_its_predictor(
    robustness, domains, trained_bundle
):
    row, blended = robustness.measure("lstm", trained_bundle, domains)
    assert blended is None
    predictor = Predictor.load(trained_bundle)
    test = load_splits(predictor.bundle.config.data)["test"]
    assert row["imdb_accuracy"] == pytest.approx(predictor.bundle.metrics["test_accuracy"])
    on_amazon = predictor.predict_proba(domains.amazon.texts)
    assert row["amazon_accuracy"] == pytest.approx(
        np.mean((on_amazon >= 0.5) == domains.amazon.labels)
    )
    assert row["amazon_auc"] == pytest.approx(robustness.roc_auc(domains.amazon.labels, on_amazon))
    on_rt = predictor.predict_proba(domains.rotten_tomatoes.texts)
    assert row["rotten_tomatoes_accuracy"] == pytest.approx(
        np.mean((on_rt >= 0.5) == domains.rotten_tomatoes.labels)
    )
    assert row["imdb_reviews"] == len(test) and row["amazon_reviews"] == 60


def test_vader_calls_positive_what_its_compound_score_puts_at_005_or_over(robustness):
    pytest.importorskip("vaderSentiment")
    lexicon = robustness.Lexicon()
    texts = ["A wonderful, moving film.", "Awful. I hated it.", "It is a film."]
    compound = lexicon.compound(texts)
    assert compound[0] > 0.5 and compound[1] < -0.5 and compound[2] == 0.0
    assert (lexicon.probabilities(texts) >= 0.5).tolist() == [True, False, False]
    assert np.allclose(np.tanh(lexicon.log_odds(texts) / 2), compound, atol=1e-3)


@pytest.mark.slow
def test_recipes_are_trained_per_seed_judged_and_tabled_with_vader_beside_them(
    robustness, tmp_path, capsys
):
    pytest.importorskip("vaderSentiment")
    runs = tmp_path / "runs"
    rows = robustness.main(
        [
            "--runs", str(runs), "--seeds", "0", "1", "--max-reviews", "40",
            "--recipe", "ngrams=--model ngrams --word-dropout 0.2",
            "--recipe", "nbsvm=--model nbsvm --min-df 2",
            "--recipe", "ensemble=ensemble ngrams nbsvm",
            "--common", "--max-reviews 300 --epochs 1 --vocab-size 2000 --max-length 200",
            "--lexicon", "ensemble", "--json", str(tmp_path / "robustness.json"),
        ]
    )  # fmt: skip
    assert [row["name"] for row in rows] == [
        "vader",
        "ngrams",
        "nbsvm",
        "ensemble",
        "ensemble+vader",
    ]
    for seed in (0, 1):
        assert (runs / f"seed-{seed}" / "ensemble" / "bundle.json").is_file()
    ngrams = rows[1]
    assert ngrams["seeds"] == [0, 1] and len(ngrams["runs"]) == 2
    accuracies = [run["rotten_tomatoes_accuracy"] for run in ngrams["runs"]]
    assert ngrams["rotten_tomatoes_accuracy"] == pytest.approx(np.mean(accuracies))
    assert ngrams["rotten_tomatoes_accuracy_sd"] == pytest.approx(np.std(accuracies, ddof=1))
    blended = rows[-1]
    assert len(blended["weights"]) == 2 and min(blended["weights"]) >= 0
    assert rows[0]["seeds"] == [] and rows[0]["train_seconds"] is None
    table = capsys.readouterr().out
    assert "| recipe | seeds | training time | IMDB test accuracy |" in table
    assert "| ensemble+vader | 0, 1 |" in table
    assert (tmp_path / "robustness.json").is_file()
    # Again with --reuse: nothing is trained, the same figures come back.
    again = robustness.main(
        [
            "--runs", str(runs), "--seeds", "0", "1", "--max-reviews", "40", "--reuse",
            "--recipe", "ngrams=--model ngrams --word-dropout 0.2", "--no-vader",
        ]
    )  # fmt: skip
    assert again[0]["imdb_accuracy"] == ngrams["imdb_accuracy"]
    assert "training ngrams" not in capsys.readouterr().out


def test_without_vaders_source_package_it_says_so_in_one_line_before_training(
    robustness, tmp_path, monkeypatch
):
    monkeypatch.setenv("CRITIC_VADER_SDIST", str(tmp_path / "vaderSentiment-3.3.2.tar.gz"))
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as stopped:
        robustness.main(["--runs", str(runs), "--recipe", "nbsvm=--model nbsvm", "--no-vader"])
    message = str(stopped.value)
    assert message.startswith("robustness: the amazon snippets ship in VADER's source package")
    assert "pip download --no-deps --no-binary :all: vaderSentiment==3.3.2" in message
    assert "\n" not in message and not runs.exists()
