import json

import numpy as np
import pytest

from critic.data.vocab import PAD, PAD_ID, UNK, UNK_ID, Vocab
from critic.errors import BundleError


def test_specials_come_first_and_the_size_includes_them():
    vocab = Vocab.build([["b", "a", "b", "c", "b", "a"]], size=4)
    assert vocab.words == [PAD, UNK, "b", "a"]
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert len(vocab) == 4


def test_ties_are_broken_alphabetically_so_the_vocabulary_is_deterministic():
    assert Vocab.build([["z", "y", "x"]], size=10).words == [PAD, UNK, "x", "y", "z"]


def test_unknown_words_encode_to_the_unknown_id():
    vocab = Vocab.build([["good", "bad"]], size=10)
    ids = vocab.encode(["good", "weird", "bad"])
    assert ids.dtype == np.int32
    assert vocab.decode(ids) == ["good", UNK, "bad"]


def test_json_round_trip(tmp_path):
    vocab = Vocab.build([["n't", "café", "!"]], size=10)
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocab.load(tmp_path / "vocab.json")
    assert loaded.words == vocab.words
    assert json.loads((tmp_path / "vocab.json").read_text())["words"][0] == PAD


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"words": ["a", "b"]}),
        json.dumps({"words": [PAD, UNK, 3]}),
        json.dumps([1]),
    ],
)
def test_a_broken_vocabulary_file_is_a_clear_error(tmp_path, content):
    (tmp_path / "vocab.json").write_text(content)
    with pytest.raises(BundleError):
        Vocab.load(tmp_path / "vocab.json")
