"""Small real data: reviews, quick run configs, and files in the formats critic reads."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import torch

from critic.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from critic.models import NEURAL, model_names
from critic.models.encoder import MINILM

FROM_SCRATCH = [name for name in model_names(NEURAL) if name != MINILM]
"""The neural architectures that can be built at any size: the tests that build every one
tiny leave out the pretrained encoder, whose size its weights fix (tests/models/test_encoder.py
checks it the same ways, at its own size)."""

POSITIVE = [
    "A wonderful film. The acting is superb and the story moved me!",
    "I loved every minute; the best movie I have seen this year.",
    "Brilliant, funny and touching. Highly recommended.",
    "Great performances and a beautiful score. A classic.",
]
NEGATIVE = [
    "A boring, stupid mess. I don't recommend it at all.",
    "The worst film I have ever seen; awful acting and no plot.",
    "Terrible. I wanted my two hours back. Not good, not funny.",
    "Dull and predictable; the script is bad and the ending is worse.",
]


def small_run_config(**train_changes) -> RunConfig:
    """Embedded IMDB reviews, a few hundred of them, one quick epoch."""
    return RunConfig(
        data=DataConfig(max_reviews=300, vocab_size=2000, max_length=200),
        model=ModelConfig(),
        train=TrainConfig(**{"epochs": 1, "batch_size": 32, "device": "cpu", **train_changes}),
    )


def small_nbsvm_config(**model_changes) -> RunConfig:
    """The n-gram model on the same few hundred reviews and split as small_run_config."""
    config = small_run_config()
    return config.replace(
        data=config.data.replace(max_length=5000),
        model=ModelConfig(name="nbsvm", **{"min_df": 2, **model_changes}),
    )


def write_aclimdb(root: Path, per_class: int = 6) -> Path:
    """A small folder shaped like the official aclImdb, ratings in the file names."""
    folder = root / "aclImdb"
    for part in ("train", "test"):
        for polarity, texts, ratings in (
            ("pos", POSITIVE, (7, 8, 9, 10)),
            ("neg", NEGATIVE, (1, 2, 3, 4)),
        ):
            target = folder / part / polarity
            target.mkdir(parents=True)
            for i in range(per_class):
                text = f"{texts[i % len(texts)]} ({part} review {i})"
                (target / f"{i}_{ratings[i % len(ratings)]}.txt").write_text(text, encoding="utf-8")
    (folder / "train" / "unsup").mkdir()
    (folder / "train" / "unsup" / "0_0.txt").write_text("unlabelled", encoding="utf-8")
    (folder / "README").write_text("Large Movie Review Dataset (test copy)")
    return folder


def write_aclimdb_tarball(root: Path, per_class: int = 6) -> Path:
    folder = write_aclimdb(root / "src", per_class)
    archive = root / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="aclImdb")
    return archive


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def random_batch(vocab_size=50, batch=6, steps=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    token_ids = torch.randint(2, vocab_size, (batch, steps), generator=generator)
    token_ids[torch.arange(steps).expand(batch, -1) >= lengths.unsqueeze(1)] = 0
    return token_ids, lengths


def predictions(*labels: str) -> list[dict]:
    """What a model answered for one request, one prediction per label: what the endpoint's
    metrics count (EndpointMetrics.observe)."""
    return [{"label": label, "probability": 0.5} for label in labels]


def vader_sdist() -> Path:
    """VADER's source package, which holds the Amazon snippets: `make test` fetches it (from
    PyPI, once) and says where in CRITIC_VADER_SDIST."""
    import pytest

    from critic.data.sources import vader_sdist as where

    path = where()
    if not path.is_file():
        pytest.fail(f"VADER's source package is not at {path}: run `make domains` (make test does)")
    return path
