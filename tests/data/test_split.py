from collections import Counter

import numpy as np

from critic.config import DataConfig
from critic.data.prepare import load_splits
from critic.data.sources import Reviews, load_source
from critic.data.split import split_reviews, stratified_sample
from support.data import write_aclimdb


def test_the_embedded_split_is_20000_2500_2500_stratified_and_disjoint():
    splits = load_splits(DataConfig())
    assert {name: len(part) for name, part in splits.items()} == {
        "train": 20_000,
        "validation": 2_500,
        "test": 2_500,
    }
    for part in splits.values():
        assert part.labels.mean() == 0.5
    held_out = set(splits["validation"].texts) | set(splits["test"].texts)
    assert not held_out & set(splits["train"].texts)
    assert not set(splits["validation"].texts) & set(splits["test"].texts)


def test_the_split_is_deterministic_and_depends_on_the_seed():
    first = load_splits(DataConfig(max_reviews=500))
    second = load_splits(DataConfig(max_reviews=500))
    other = load_splits(DataConfig(max_reviews=500, split_seed=99))
    assert first["test"].texts == second["test"].texts
    assert first["test"].texts != other["test"].texts


def test_reviews_repeated_word_for_word_all_stay_in_train():
    texts = [f"review {i}" for i in range(100)] + ["the same words"] * 4
    labels = np.array([i % 2 for i in range(100)] + [1, 1, 1, 1])
    splits = split_reviews({"all": Reviews(texts, labels)}, 0.1, 0.1, seed=3)
    assert Counter(splits["train"].texts)["the same words"] == 4


def test_aclimdb_keeps_its_own_test_set_and_takes_validation_from_train(tmp_path):
    parts = load_source(str(write_aclimdb(tmp_path, per_class=10)))
    splits = split_reviews(parts, 0.2, 0.1, seed=0)
    assert splits["test"].texts == parts["test"].texts
    assert len(splits["validation"]) == 4 and len(splits["train"]) == 16
    assert set(splits["validation"].texts) <= set(parts["train"].texts)
    assert splits["validation"].labels.mean() == 0.5


def test_a_stratified_sample_keeps_the_label_shares():
    reviews = Reviews([str(i) for i in range(1000)], np.array([1] * 800 + [0] * 200))
    sample = stratified_sample(reviews, 100, seed=1)
    assert len(sample) == 100
    assert sample.labels.sum() == 80
