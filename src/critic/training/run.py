"""What a training run takes and gives back, whatever the kind of model: its options, its
result (the model, the metrics, the calibration), the device and the seeds."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from critic.config import RunConfig
from critic.data.prepare import PreparedData
from critic.data.vocab import Vocab
from critic.errors import CriticError
from critic.evaluation.calibration import Calibration
from critic.training.distributed import Processes

Log = Callable[[str], None]
EpochHook = Callable[[dict], None]
"""Called after each epoch with its row of the history (``epoch``, ``train_loss``,
``train_accuracy``, ``val_loss``, ``val_accuracy``, ``seconds``) and ``reviews_per_second``:
how an experiment tracker above training follows a run without training knowing of it."""


@dataclass
class TrainingResult:
    config: RunConfig
    vocab: Vocab | None
    """None for models without a word vocabulary (nbsvm keeps its n-grams itself)."""
    model: object
    """An ``nn.Module``, or a fitted :class:`~critic.models.nbsvm.NBSVM`."""
    metrics: dict
    history: list[dict] = field(default_factory=list)
    calibration: Calibration = field(default_factory=Calibration)


@dataclass(frozen=True)
class RunOptions:
    """How one run is carried out, apart from its settings (the :class:`RunConfig`)."""

    out: Path
    """The run's folder: the checkpoint goes to ``out/checkpoint/``."""
    resume: bool = False
    cache_dir: Path | None = None
    progress: bool = True
    log: Log = print
    prepared: PreparedData | None = None
    """The data already prepared (tests, benchmarks); read and encoded here when None."""
    processes: Processes = field(default_factory=Processes)
    """The processes training together (torchrun); one by default."""
    threads: int | None = None
    """Intra-op threads, fixed (``--threads``); None: sized to the free cores as it runs
    (critic.system.ThreadGovernor)."""
    on_epoch: EpochHook | None = None
    """Told of every epoch as it ends (rank 0 alone under torchrun); not told of the epochs a
    resumed run had done before."""


def training_seconds(metrics: dict) -> float | None:
    """What making a bundle cost: its loop's seconds, the word2vec and language-model
    pre-training before the epochs, and an ensemble's members; None without a loop's figure."""
    if metrics.get("train_seconds") is None:
        return None
    keys = ("train_seconds", "embeddings_seconds", "pretrain_seconds", "member_train_seconds")
    return sum(metrics.get(key) or 0 for key in keys)


def resolve_device(name: str) -> torch.device:
    """``auto`` is the GPU when there is one; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CriticError("--device cuda was asked for, but no CUDA GPU is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_bar(batches, description: str, shown: bool):
    """An epoch's bar (batches, loss and reviews/s set by the loop), or a silent one."""
    from tqdm import tqdm

    return tqdm(
        batches,
        total=len(batches),
        desc=description,
        unit="batch",
        disable=not shown,
        dynamic_ncols=True,
        leave=True,
    )
