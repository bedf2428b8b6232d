import numpy as np

from critic.config import DataConfig
from critic.data.prepare import cache_key, prepare
from critic.data.vocab import PAD_ID


def test_preparing_encodes_every_split_with_the_training_vocabulary(tmp_path):
    config = DataConfig(max_reviews=200, vocab_size=500, max_length=50)
    prepared = prepare(config, tmp_path, log=lambda _: None)
    assert len(prepared.vocab) == 500
    assert {name: len(split) for name, split in prepared.splits.items()} == {
        "train": 160,
        "validation": 20,
        "test": 20,
    }
    for split in prepared.splits.values():
        assert split.lengths.max() <= 50 and split.lengths.min() >= 1
        assert split.tokens.max() < 500 and PAD_ID not in split.tokens
    assert prepared.stats["splits"]["train"]["reviews"] == 160


def test_a_second_run_with_the_same_settings_loads_the_cache(tmp_path):
    config = DataConfig(max_reviews=200, vocab_size=500)
    lines = []
    first = prepare(config, tmp_path, log=lines.append)
    second = prepare(config, tmp_path, log=lines.append)
    assert not first.from_cache and second.from_cache
    assert any("loaded from cache" in line for line in lines)
    assert second.vocab.words == first.vocab.words
    for name, split in first.splits.items():
        assert np.array_equal(split.tokens, second.splits[name].tokens)
        assert np.array_equal(split.offsets, second.splits[name].offsets)
    assert (second.cache_path / "vocab.json").is_file()


def test_other_settings_use_another_cache_entry():
    base = DataConfig(max_reviews=200)
    assert cache_key(base) != cache_key(base.replace(vocab_size=100))
    assert cache_key(base) != cache_key(base.replace(max_length=20))
    assert cache_key(base) != cache_key(base.replace(split_seed=5))
    assert cache_key(base) != cache_key(base.replace(source="rotten_tomatoes"))


def test_a_damaged_cache_is_prepared_again(tmp_path):
    config = DataConfig(max_reviews=200, vocab_size=500)
    first = prepare(config, tmp_path, log=lambda _: None)
    (first.cache_path / "data.npz").write_bytes(b"damaged")
    lines = []
    again = prepare(config, tmp_path, log=lines.append)
    assert not again.from_cache
    assert any("ignoring a broken data cache" in line for line in lines)
