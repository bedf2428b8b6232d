"""Data preparation, a step of its own: read, split, tokenise, build the vocabulary, encode.

The result is cached on disk, keyed by a hash of the source's fingerprint and every setting
that changes it, with the vocabulary saved beside the arrays. A second run with the same
settings loads the cache in well under a second instead of redoing the work.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from critic.config import DataConfig
from critic.data.batches import EncodedSplit
from critic.data.sources import Reviews, describe_source, load_source, source_fingerprint
from critic.data.split import split_reviews, stratified_sample
from critic.data.text import TOKENIZER_VERSION, tokenize_many
from critic.data.vocab import UNK_ID, Vocab
from critic.errors import DataError
from critic.fileio import default_cache_dir, replace_folder_atomic

SPLITS = ("train", "validation", "test")
CACHE_FORMAT = 1


@dataclass
class PreparedData:
    vocab: Vocab
    splits: dict[str, EncodedSplit]
    stats: dict
    cache_path: Path | None = None
    from_cache: bool = False


def load_splits(config: DataConfig) -> dict[str, Reviews]:
    """The raw train / validation / test reviews that a data config describes."""
    parts = load_source(
        config.source, config.text_column, config.label_column, config.rating_column
    )
    if config.max_reviews is not None:
        parts = {
            name: stratified_sample(reviews, config.max_reviews, config.split_seed)
            for name, reviews in parts.items()
        }
    return split_reviews(parts, config.validation_fraction, config.test_fraction, config.split_seed)


def cache_key(config: DataConfig) -> str:
    settings = {
        "format": CACHE_FORMAT,
        "tokenizer": TOKENIZER_VERSION,
        "source": source_fingerprint(config.source),
        **{k: v for k, v in config.to_dict().items() if k != "source"},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]


def prepare(config: DataConfig, cache_dir: Path | None = None, *, log=print) -> PreparedData:
    """Encoded splits and vocabulary for ``config``, from the cache when it has them."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / cache_key(config)
    if (path / "data.npz").is_file():
        try:
            prepared = _load_cache(path)
        except (OSError, ValueError, KeyError, DataError) as error:
            log(f"ignoring a broken data cache at {path} ({error}); preparing again")
        else:
            log(f"data: loaded from cache {path}")
            _log_stats(prepared.stats, log)
            return prepared
    started = time.perf_counter()
    log(f"data: reading {describe_source(config.source)}")
    raw = load_splits(config)
    tokenized = {name: tokenize_many(raw[name].texts) for name in SPLITS}
    vocab = Vocab.build(tokenized["train"], config.vocab_size)
    splits = {
        name: EncodedSplit.from_lists(
            [vocab.encode(tokens[: config.max_length]) for tokens in tokenized[name]],
            raw[name].labels,
            raw[name].ratings,
        )
        for name in SPLITS
    }
    # A review whose every character is punctuation has no tokens; it cannot be learned from.
    for name in SPLITS:
        keep = splits[name].lengths > 0
        if not keep.all():
            splits[name] = _subset(splits[name], np.flatnonzero(keep))
    stats = _statistics(config, tokenized, splits, vocab, time.perf_counter() - started)
    prepared = PreparedData(vocab, splits, stats, path, from_cache=False)
    try:
        _save_cache(path, prepared)
    except OSError as error:
        log(f"data: could not write the cache at {path} ({error.strerror}); continuing without it")
    _log_stats(stats, log)
    return prepared


def _subset(split: EncodedSplit, indices: np.ndarray) -> EncodedSplit:
    return EncodedSplit.from_lists(
        [split.review(i) for i in indices], split.labels[indices], split.ratings[indices]
    )


def _statistics(config, tokenized, splits, vocab, seconds) -> dict:
    stats: dict = {"source": describe_source(config.source), "vocab_size": len(vocab), "splits": {}}
    for name in SPLITS:
        full_lengths = np.array([len(t) for t in tokenized[name]])
        split = splits[name]
        stats["splits"][name] = {
            "reviews": len(split),
            "positive_share": round(float(split.labels.mean()), 4) if len(split) else 0.0,
            "mean_tokens": round(float(full_lengths.mean()), 1) if len(full_lengths) else 0.0,
            "p95_tokens": int(np.percentile(full_lengths, 95)) if len(full_lengths) else 0,
            "cut_share": round(float((full_lengths > config.max_length).mean()), 4)
            if len(full_lengths)
            else 0.0,
            "unknown_share": round(float((split.tokens == UNK_ID).mean()), 4)
            if len(split.tokens)
            else 0.0,
            "rated": bool((split.ratings > 0).all()) if len(split) else False,
        }
    total = sum(len(t) for t in tokenized.values())
    stats["prepare_seconds"] = round(seconds, 2)
    stats["reviews_per_second"] = round(total / seconds, 1) if seconds > 0 else None
    return stats


def _log_stats(stats: dict, log) -> None:
    for name, split in stats["splits"].items():
        log(
            f"data: {name:<10} {split['reviews']:>6} reviews, {split['positive_share']:.1%} positive, "
            f"{split['mean_tokens']:.0f} tokens on average (95% under {split['p95_tokens']}), "
            f"{split['cut_share']:.1%} cut, {split['unknown_share']:.1%} unknown tokens"
        )
    log(f"data: vocabulary of {stats['vocab_size']} ids (0 = padding, 1 = unknown)")


def _save_cache(path: Path, prepared: PreparedData) -> None:
    # The whole entry is built in a temporary folder and renamed into place: another run never
    # reads a half-written cache.
    def fill(folder: Path) -> None:
        arrays = {}
        for name, split in prepared.splits.items():
            arrays[f"{name}_tokens"] = split.tokens
            arrays[f"{name}_offsets"] = split.offsets
            arrays[f"{name}_labels"] = split.labels
            arrays[f"{name}_ratings"] = split.ratings
        np.savez(folder / "data.npz", **arrays)
        prepared.vocab.save(folder / "vocab.json")
        (folder / "stats.json").write_text(json.dumps(prepared.stats, indent=2))

    replace_folder_atomic(path, fill)


def _load_cache(path: Path) -> PreparedData:
    with np.load(path / "data.npz", allow_pickle=False) as arrays:
        splits = {
            name: EncodedSplit(
                arrays[f"{name}_tokens"],
                arrays[f"{name}_offsets"],
                arrays[f"{name}_labels"],
                arrays[f"{name}_ratings"],
            )
            for name in SPLITS
        }
    vocab = Vocab.load(path / "vocab.json")
    stats = json.loads((path / "stats.json").read_text())
    return PreparedData(vocab, splits, stats, path, from_cache=True)
