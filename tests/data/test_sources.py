import numpy as np
import pytest

from critic.data.sources import load_all_reviews, load_embedded, load_source, source_fingerprint
from critic.data.text import has_words
from critic.errors import DataError
from support.data import (
    csv_text,
    vader_sdist,
    write_aclimdb,
    write_aclimdb_tarball,
    write_jsonl,
)


def test_the_embedded_imdb_reviews_are_25000_balanced_and_need_no_download():
    reviews = load_embedded("imdb")
    assert len(reviews) == 25_000
    assert int(reviews.labels.sum()) == 12_500
    assert not reviews.has_ratings


def test_rotten_tomatoes_is_a_separate_named_source():
    parts = load_source("rotten_tomatoes")
    assert list(parts) == ["all"]
    assert len(parts["all"]) == 8_530
    imdb = set(load_source("embedded")["all"].texts[:2000])
    assert not imdb & set(parts["all"].texts)


def test_the_amazon_snippets_are_read_from_vaders_source_package_without_the_neutral_ones(
    monkeypatch,
):
    monkeypatch.setenv("CRITIC_VADER_SDIST", str(vader_sdist()))
    parts = load_source("amazon")
    assert list(parts) == ["all"]
    reviews = parts["all"]
    # 3,708 snippets: 1,725 rated above 0.5, 1,218 below -0.5, 765 neutral and left out, and
    # one positive "!" that has no words to judge.
    assert len(reviews) == 2_942 and int(reviews.labels.sum()) == 1_724
    assert all(has_words(text) and "\t" not in text for text in reviews.texts)
    assert source_fingerprint("amazon") == source_fingerprint("amazon")


def test_the_amazon_source_without_vaders_package_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CRITIC_VADER_SDIST", str(tmp_path / "missing.tar.gz"))
    with pytest.raises(DataError, match="pip download --no-deps --no-binary :all: vader"):
        load_source("amazon")


def test_the_amazon_source_refuses_a_package_that_is_not_vaders(tmp_path, monkeypatch):
    other = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    other.write_bytes(b"not the package")
    monkeypatch.setenv("CRITIC_VADER_SDIST", str(other))
    with pytest.raises(DataError, match="checksum"):
        load_source("amazon")


def test_all_reviews_of_a_source_join_its_parts_in_order(tmp_path):
    folder = write_aclimdb(tmp_path, per_class=3)
    parts = load_source(str(folder))
    everything = load_all_reviews(str(folder))
    assert everything.texts == parts["train"].texts + parts["test"].texts
    assert everything.labels.tolist() == [*parts["train"].labels, *parts["test"].labels]
    assert everything.has_ratings
    assert len(load_all_reviews("rotten_tomatoes")) == 8_530


@pytest.mark.parametrize("form", ["folder", "parent", "tarball"])
def test_aclimdb_reads_train_and_test_with_star_ratings(tmp_path, form):
    if form == "tarball":
        path = write_aclimdb_tarball(tmp_path, per_class=5)
    else:
        folder = write_aclimdb(tmp_path, per_class=5)
        path = folder if form == "folder" else folder.parent
    parts = load_source(str(path))
    assert set(parts) == {"train", "test"}
    for part in parts.values():
        assert len(part) == 10  # the unsup review is not read
        assert part.has_ratings
        assert set(part.ratings[part.labels == 1]) <= {7, 8, 9, 10}
        assert set(part.ratings[part.labels == 0]) <= {1, 2, 3, 4}
    text = next(t for t in parts["test"].texts if "test review 0" in t and "wonderful" in t)
    assert text.startswith("A wonderful film")


def test_aclimdb_tarball_and_folder_give_the_same_reviews(tmp_path):
    tarball = load_source(str(write_aclimdb_tarball(tmp_path / "a", per_class=5)))
    folder = load_source(str(write_aclimdb(tmp_path / "b", per_class=5)))
    assert tarball["train"].texts == folder["train"].texts
    assert np.array_equal(tarball["train"].ratings, folder["train"].ratings)


def test_a_folder_without_aclimdb_reviews_is_a_clear_error(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="no aclImdb reviews"):
        load_source(str(tmp_path))


def test_a_corrupt_tarball_is_a_clear_error(tmp_path):
    archive = tmp_path / "aclImdb_v1.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="cannot read the archive"):
        load_source(str(archive))


def test_csv_with_configurable_columns_and_word_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(
        csv_text(
            [
                ["review", "sentiment", "stars"],
                ["Loved it", "positive", "9"],
                ["Hated it", "NEG", "2"],
                ["", "pos", "8"],
            ]
        )
    )
    reviews = load_source(
        str(path), text_column="review", label_column="sentiment", rating_column="stars"
    )["all"]
    assert reviews.texts == ["Loved it", "Hated it"]  # the empty row carries no review
    assert reviews.labels.tolist() == [1, 0]
    assert reviews.ratings.tolist() == [9, 2]


def test_jsonl_with_configurable_columns(tmp_path):
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [{"body": "Great", "y": 1}, {"body": "Bad", "y": 0}, {"body": "Fine", "y": True}],
    )
    reviews = load_source(str(path), text_column="body", label_column="y")["all"]
    assert reviews.labels.tolist() == [1, 0, 1]


def test_a_missing_column_names_the_columns_there_are(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(csv_text([["review", "label"], ["Loved it", "1"]]))
    with pytest.raises(DataError, match=r"no column 'text'; columns are: review, label"):
        load_source(str(path))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad_label.csv", "text,label\nGood,maybe\n", "label 'maybe' is not 0/1"),
        ("bad.jsonl", '{"text": "ok", "label": 1}\n{"text": \n', "line 2: not valid JSON"),
        ("list.jsonl", "[1, 2]\n", "expected a JSON object"),
        ("empty.csv", "", "is empty"),
        ("only_header.csv", "text,label\n", "holds no reviews"),
        ("bad_rating.csv", "text,label,stars\nGood,1,eleven\n", "rating 'eleven'"),
        ("data.parquet", "x", "cannot tell the format"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_source(str(path), rating_column="stars" if "rating" in name else None)


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_source(str(path))


def test_an_unknown_source_lists_the_embedded_names():
    with pytest.raises(DataError, match="embedded, imdb, rotten_tomatoes"):
        load_source("no/such/place.csv")


def test_the_fingerprint_changes_with_the_content(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("text,label\nGood,1\n")
    before = source_fingerprint(str(path))
    path.write_text("text,label\nBad,0\n")
    assert source_fingerprint(str(path)) != before
    assert source_fingerprint("embedded") != source_fingerprint("rotten_tomatoes")


def crafted_tarball(tmp_path, add):
    """A real aclImdb tarball with one extra member made by ``add(tar)``."""
    import tarfile

    archive = write_aclimdb_tarball(tmp_path)
    crafted = tmp_path / "crafted.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(crafted, "w:gz") as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        add(target)
    return crafted


def _file(name: str):
    import io
    import tarfile

    def add(tar):
        data = b"A review that lives where it should not."
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _link(name: str, target: str, hard: bool = False):
    import tarfile

    def add(tar):
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = target
        tar.addfile(info)

    return add


@pytest.mark.parametrize(
    ("add", "reason"),
    [
        (_file("aclImdb/train/pos/../../../../evil_1_10.txt"), "climbs out of its folder"),
        (_file("/etc/aclImdb/train/pos/0_10.txt"), "has an absolute name"),
        (_link("aclImdb/train/pos/99_10.txt", "/etc/passwd"), "is a link (to '/etc/passwd')"),
        (_link("aclImdb/train/neg/99_1.txt", "aclImdb/train/pos/0_10.txt", hard=True), "is a link"),
    ],
)
def test_a_crafted_tarball_is_refused_before_any_review_is_read(tmp_path, add, reason):
    crafted = crafted_tarball(tmp_path, add)
    with pytest.raises(DataError, match="is refused") as error:
        load_source(str(crafted))
    assert reason in str(error.value)
    assert "\n" not in str(error.value)
